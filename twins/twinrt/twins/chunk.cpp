#include "twinrt/twins/chunk.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <boost/crc.hpp>

#include "twinrt/twins/varint.hpp"

namespace twinrt::twins {

// Layout of a sealed chunk (format 1). Varints are LEB128; bit streams are
// written most significant bit first and padded with zero bits to a byte.
//
//   format                  1 byte
//   flags                   1 byte: in_order, decimal, decimal_dod, has_source, has_seq
//   count                   varint
//   first point's ts        varint, zigzag
//   first point - earliest  varint (0 when in order)
//   latest - earliest       varint
//   [decimal] scale, rice k 1 byte each
//   [has_source] sources    varint n, then n times varint length + bytes
//   runs                    varint n, then n times varint length, source (0: none), version
//   ts stream length        varint bytes
//   [has_seq] value length  varint bytes
//   ts stream, value stream, [seq stream]
//   CRC-32                  4 bytes, little-endian, over everything before it
//
// Timestamp and seq codes (on the zigzag of a signed difference):
//   0 -> '0'; < 2^7 -> '10'+7 bits; < 2^10 -> '110'+10; < 2^14 -> '1110'+14;
//   < 2^24 -> '11110'+24; otherwise '11111'+64.
// Values, XOR: first value 64 bits; then '0' (same value), '10' + the
// meaningful bits within the previous window, or '11' + 5 bits of leading
// zeros + 6 bits of (length - 1) + the meaningful bits.
// Values, decimal: the first mantissa in the timestamp code, then each delta
// (or delta-of-delta) zigzagged in a Rice code with parameter k: q = zz >> k
// ones, a zero, the k low bits; q >= 32 is 32 ones and the 64 bits of zz.

namespace {

constexpr uint8_t flag_in_order = 1, flag_decimal = 2, flag_decimal_dod = 4,
                  flag_has_source = 8, flag_has_seq = 16, known_flags = 31;
constexpr unsigned rice_escape = 32;
constexpr int max_scale = 9;
constexpr double pow10[max_scale + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
constexpr double max_mantissa = 9007199254740992.0; // 2^53

const std::string prefix = "history chunk: ";

int64_t as_signed(uint64_t u) {
  int64_t s;
  std::memcpy(&s, &u, sizeof s);
  return s;
}

uint64_t bits_of(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

double double_of(uint64_t b) {
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// Timestamps map onto unsigned integers in the same order.
uint64_t ordered(int64_t ts) {
  return static_cast<uint64_t>(ts) ^ (uint64_t{1} << 63);
}

uint32_t crc32_of(const char* data, size_t size) {
  boost::crc_32_type crc;
  crc.process_bytes(data, size);
  return crc.checksum();
}

// The value of `v` at `scale` decimals, when it is exactly that decimal
// number read back the way the decoder reads it.
std::optional<int64_t> mantissa(double v, int scale) {
  double x = v * pow10[scale];
  if (!(std::fabs(x) <= max_mantissa))
    return std::nullopt; // NaN too
  auto m = static_cast<int64_t>(std::nearbyint(x));
  if (bits_of(static_cast<double>(m) / pow10[scale]) != bits_of(v))
    return std::nullopt; // -0.0 too: it reads back as +0.0
  return m;
}

unsigned code_bits(uint64_t zz) {
  if (zz == 0)
    return 1;
  if (zz < (uint64_t{1} << 7))
    return 2 + 7;
  if (zz < (uint64_t{1} << 10))
    return 3 + 10;
  if (zz < (uint64_t{1} << 14))
    return 4 + 14;
  if (zz < (uint64_t{1} << 24))
    return 5 + 24;
  return 5 + 64;
}

uint64_t rice_bits(uint64_t zz, unsigned k) {
  uint64_t q = zz >> k;
  return q < rice_escape ? q + 1 + k : rice_escape + 64;
}

// A byte reader over the header with bounds checks.
struct byte_reader {
  const uint8_t* p;
  size_t left;
  bool ok = true;

  uint8_t byte() {
    if (left == 0) {
      ok = false;
      return 0;
    }
    --left;
    return *p++;
  }
  uint64_t varint() {
    auto v = read_varint(p, left);
    if (v.bytes == 0) {
      ok = false;
      return 0;
    }
    p += v.bytes;
    left -= v.bytes;
    return v.value;
  }
};

} // namespace

bool chunk_point::operator==(const chunk_point& o) const {
  return ts_ms == o.ts_ms && bits_of(value) == bits_of(o.value)
         && model_version == o.model_version && source == o.source && seq == o.seq;
}

// ---------------------------------------------------------------- encoder

void internal::bit_writer::put(uint64_t v, unsigned count) {
  if (count > 56) {
    put(v >> 32, count - 32);
    put(v & 0xffffffffu, 32);
    return;
  }
  if (count == 0)
    return;
  v &= (uint64_t{1} << count) - 1;
  acc = (acc << count) | v;
  n += count;
  while (n >= 8) {
    n -= 8;
    bytes.push_back(static_cast<char>((acc >> n) & 0xff));
  }
  acc &= (uint64_t{1} << n) - 1;
}

std::string internal::bit_writer::finished() const {
  std::string out = bytes;
  if (n > 0)
    out.push_back(static_cast<char>((acc << (8 - n)) & 0xff));
  return out;
}

namespace {

template <class Bits>
void put_code(Bits& b, uint64_t zz) {
  if (zz == 0) {
    b.put(0, 1);
  } else if (zz < (uint64_t{1} << 7)) {
    b.put(0b10, 2);
    b.put(zz, 7);
  } else if (zz < (uint64_t{1} << 10)) {
    b.put(0b110, 3);
    b.put(zz, 10);
  } else if (zz < (uint64_t{1} << 14)) {
    b.put(0b1110, 4);
    b.put(zz, 14);
  } else if (zz < (uint64_t{1} << 24)) {
    b.put(0b11110, 5);
    b.put(zz, 24);
  } else {
    b.put(0b11111, 5);
    b.put(zz, 64);
  }
}

template <class Bits>
void put_rice(Bits& b, uint64_t zz, unsigned k) {
  uint64_t q = zz >> k;
  if (q < rice_escape) {
    b.put(((uint64_t{1} << q) - 1) << 1, static_cast<unsigned>(q) + 1);
    b.put(zz, k);
  } else {
    b.put((uint64_t{1} << rice_escape) - 1, rice_escape);
    b.put(zz, 64);
  }
}

} // namespace

std::optional<std::string> chunk_encoder::append(int64_t ts_ms, double value,
                                                 uint32_t model_version, std::string_view source,
                                                 uint64_t seq) {
  if (count_ >= max_points)
    return prefix + "the chunk holds " + std::to_string(max_points)
           + " points already: seal it and start another";
  uint32_t src = 0;
  if (!source.empty()) {
    if (auto i = source_index_.find(source); i != source_index_.end()) {
      src = i->second;
    } else {
      if (sources_.size() > max_sources)
        return prefix + "the chunk names " + std::to_string(max_sources)
               + " sources already: seal it and start another";
      src = static_cast<uint32_t>(sources_.size());
      sources_.emplace_back(source);
      source_index_.emplace(std::string(source), src);
      last_seq_.push_back(0);
    }
  }

  // Timestamps: delta-of-delta, all in unsigned arithmetic (wraps, never
  // overflows); the first point's timestamp goes into the header.
  if (count_ == 0) {
    first_ts_ = min_ts_ = max_ts_ = ts_ms;
  } else {
    uint64_t delta = static_cast<uint64_t>(ts_ms) - static_cast<uint64_t>(prev_ts_);
    put_code(ts_, zigzag(delta - prev_delta_));
    prev_delta_ = delta;
    if (ts_ms < prev_ts_)
      in_order_ = false;
    min_ts_ = std::min(min_ts_, ts_ms);
    max_ts_ = std::max(max_ts_, ts_ms);
  }
  prev_ts_ = ts_ms;

  // Values: Gorilla XOR.
  uint64_t vb = bits_of(value);
  if (count_ == 0) {
    xor_.put(vb, 64);
  } else if (uint64_t x = vb ^ prev_bits_; x == 0) {
    xor_.put(0, 1);
  } else {
    auto lead = std::min(31u, static_cast<unsigned>(__builtin_clzll(x)));
    auto trail = static_cast<unsigned>(__builtin_ctzll(x));
    if (window_ && lead >= lead_ && trail >= trail_) {
      xor_.put(0b10, 2);
      xor_.put(x >> trail_, 64 - lead_ - trail_);
    } else {
      unsigned len = 64 - lead - trail;
      xor_.put(0b11, 2);
      xor_.put(lead, 5);
      xor_.put(len - 1, 6);
      xor_.put(x >> trail, len);
      lead_ = lead;
      trail_ = trail;
      window_ = true;
    }
  }
  prev_bits_ = vb;
  if (scale_ >= 0 && !mantissa(value, scale_)) {
    int s = scale_ + 1;
    while (s <= max_scale && !mantissa(value, s))
      ++s;
    scale_ = s <= max_scale ? s : -1;
  }

  if (!runs_.empty() && runs_.back().source == src && runs_.back().model_version == model_version)
    ++runs_.back().length;
  else
    runs_.push_back(run{1, src, model_version});

  // seq: per source, the step from the one before, minus one.
  put_code(seq_, zigzag(seq - last_seq_[src] - 1));
  last_seq_[src] = seq;
  any_seq_ = any_seq_ || seq != 0;

  ++count_;
  return std::nullopt;
}

size_t chunk_encoder::open_bytes() const {
  size_t n = ts_.bytes.size() + xor_.bytes.size() + seq_.bytes.size() + 3
             + runs_.size() * sizeof(run);
  for (auto& s : sources_)
    n += s.size();
  return n;
}

std::string chunk_encoder::snapshot() const {
  if (count_ == 0)
    return {};
  return encode(false);
}

std::string chunk_encoder::seal() {
  auto out = snapshot();
  *this = chunk_encoder();
  return out;
}

std::string chunk_encoder::encode(bool sorted_already) const {
  std::string value_stream = xor_.finished();
  uint8_t flags = 0;
  uint8_t scale = 0, k = 0;

  // Out of order: sort (stably) and encode again, in order.
  if (!in_order_ && !sorted_already) {
    auto unsorted = encode(true);
    auto points = chunk_reader::read_all(unsorted, true);
    if (!std::holds_alternative<std::vector<chunk_point>>(points))
      throw std::logic_error("chunk_encoder: cannot read its own chunk back: "
                             + std::get<std::string>(points));
    auto& v = std::get<std::vector<chunk_point>>(points);
    std::stable_sort(v.begin(), v.end(),
                     [](const chunk_point& a, const chunk_point& b) { return a.ts_ms < b.ts_ms; });
    chunk_encoder sorted;
    for (auto& p : v)
      sorted.append(p);
    return sorted.encode(true);
  }
  if (in_order_)
    flags |= flag_in_order;

  // Decimal values: the mantissas' deltas or delta-of-deltas in a Rice code,
  // when that is smaller than the XOR stream.
  if (scale_ >= 0 && count_ > 1) {
    std::vector<int64_t> m;
    m.reserve(count_);
    internal::bit_reader r{reinterpret_cast<const uint8_t*>(value_stream.data()),
                               value_stream.size() * 8};
    uint64_t prev = 0;
    unsigned lead = 0, len = 0;
    bool ok = true;
    for (uint32_t i = 0; i < count_ && ok; ++i) {
      // the XOR stream read back (see chunk_reader::next_value)
      if (i == 0) {
        prev = r.get(64);
      } else if (r.get(1) != 0) {
        if (r.get(1) != 0) {
          lead = static_cast<unsigned>(r.get(5));
          len = static_cast<unsigned>(r.get(6)) + 1;
        }
        prev ^= r.get(len) << (64 - lead - len);
      }
      auto mi = mantissa(double_of(prev), scale_);
      ok = mi.has_value();
      if (ok)
        m.push_back(*mi);
    }
    if (ok && !r.overrun) {
      std::vector<uint64_t> d(count_ - 1), dd(count_ - 1);
      uint64_t prev_d = 0;
      for (uint32_t i = 1; i < count_; ++i) {
        uint64_t di = static_cast<uint64_t>(m[i]) - static_cast<uint64_t>(m[i - 1]);
        d[i - 1] = zigzag(di);
        dd[i - 1] = zigzag(di - prev_d);
        prev_d = di;
      }
      // The best Rice parameter lies near log2 of the mean: try a few around it.
      auto best_k = [](const std::vector<uint64_t>& z) {
        double mean = 0;
        for (auto x : z)
          mean += static_cast<double>(x);
        mean /= static_cast<double>(z.size());
        int centre = mean < 1 ? 0 : static_cast<int>(std::log2(mean));
        unsigned best = 0;
        uint64_t best_bits = UINT64_MAX;
        for (int kk = std::max(0, centre - 3); kk <= std::min(63, centre + 3); ++kk) {
          uint64_t total = 0;
          for (auto x : z)
            total += rice_bits(x, static_cast<unsigned>(kk));
          if (total < best_bits) {
            best_bits = total;
            best = static_cast<unsigned>(kk);
          }
        }
        return std::pair{best, best_bits};
      };
      auto [kd, bits_d] = best_k(d);
      auto [kdd, bits_dd] = best_k(dd);
      bool dod = bits_dd < bits_d;
      uint64_t bits = code_bits(zigzag(static_cast<uint64_t>(m[0]))) + (dod ? bits_dd : bits_d);
      if (bits + 16 < value_stream.size() * 8) {
        internal::bit_writer b;
        put_code(b, zigzag(static_cast<uint64_t>(m[0])));
        k = static_cast<uint8_t>(dod ? kdd : kd);
        for (auto x : dod ? dd : d)
          put_rice(b, x, k);
        value_stream = b.finished();
        scale = static_cast<uint8_t>(scale_);
        flags |= flag_decimal | (dod ? flag_decimal_dod : 0);
      }
    }
  }

  bool has_source = sources_.size() > 1;
  if (has_source)
    flags |= flag_has_source;
  if (any_seq_)
    flags |= flag_has_seq;

  std::string out;
  out.reserve(32 + value_stream.size() + ts_.bytes.size() + (any_seq_ ? seq_.bytes.size() : 0));
  out.push_back(static_cast<char>(chunk_format));
  out.push_back(static_cast<char>(flags));
  put_varint(out, count_);
  put_varint(out, zigzag(static_cast<uint64_t>(first_ts_)));
  put_varint(out, ordered(first_ts_) - ordered(min_ts_));
  put_varint(out, ordered(max_ts_) - ordered(min_ts_));
  if (flags & flag_decimal) {
    out.push_back(static_cast<char>(scale));
    out.push_back(static_cast<char>(k));
  }
  if (has_source) {
    put_varint(out, sources_.size() - 1);
    for (size_t i = 1; i < sources_.size(); ++i) {
      put_varint(out, sources_[i].size());
      out += sources_[i];
    }
  }
  put_varint(out, runs_.size());
  for (auto& r : runs_) {
    put_varint(out, r.length);
    put_varint(out, r.source);
    put_varint(out, r.model_version);
  }
  auto ts_stream = ts_.finished();
  put_varint(out, ts_stream.size());
  if (any_seq_)
    put_varint(out, value_stream.size());
  out += ts_stream;
  out += value_stream;
  if (any_seq_)
    out += seq_.finished();
  uint32_t crc = crc32_of(out.data(), out.size());
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return out;
}

// ---------------------------------------------------------------- reader

uint64_t internal::bit_reader::peek64() const {
  // The 64 bits from pos on (zero bits past the end).
  size_t byte = pos >> 3;
  size_t bytes = (size_bits + 7) >> 3;
  uint64_t w = 0;
  if (byte + 8 <= bytes) {
    std::memcpy(&w, data + byte, 8);
    w = __builtin_bswap64(w);
  } else {
    for (size_t i = 0; i < 8; ++i)
      w = (w << 8) | (byte + i < bytes ? data[byte + i] : 0);
  }
  unsigned off = pos & 7;
  if (off == 0)
    return w;
  uint8_t extra = byte + 8 < bytes ? data[byte + 8] : 0;
  return (w << off) | (extra >> (8 - off));
}

uint64_t internal::bit_reader::get(unsigned count) {
  if (count == 0)
    return 0;
  if (count > left()) {
    overrun = true;
    pos = size_bits;
    return 0;
  }
  uint64_t v = peek64() >> (64 - count);
  pos += count;
  return v;
}

namespace {

// The timestamp/seq code; sets r.overrun when the stream ends early.
template <class Reader>
uint64_t get_code(Reader& r) {
  if (r.left() == 0) {
    r.overrun = true;
    return 0;
  }
  uint64_t w = r.peek64();
  auto ones = static_cast<unsigned>(__builtin_clzll(~w | 1)); // leading ones, at most 63
  if (ones == 0) {
    r.skip(1);
    return 0;
  }
  static constexpr unsigned width[] = {0, 7, 10, 14, 24, 64};
  unsigned prefix_bits = ones >= 5 ? 5 : ones + 1;
  if (prefix_bits > r.left()) {
    r.overrun = true;
    r.pos = r.size_bits;
    return 0;
  }
  r.skip(prefix_bits);
  return r.get(width[std::min(ones, 5u)]);
}

template <class Reader>
uint64_t get_rice(Reader& r, unsigned k) {
  uint64_t w = r.peek64();
  auto ones = static_cast<unsigned>(__builtin_clzll(~w | 1));
  if (ones >= rice_escape) {
    if (rice_escape > r.left()) {
      r.overrun = true;
      r.pos = r.size_bits;
      return 0;
    }
    r.skip(rice_escape);
    return r.get(64);
  }
  if (ones + 1 > r.left()) {
    r.overrun = true;
    r.pos = r.size_bits;
    return 0;
  }
  r.skip(ones + 1);
  return (static_cast<uint64_t>(ones) << k) | r.get(k);
}

} // namespace

bool chunk_reader::fail(std::string why) {
  if (error_.empty())
    error_ = prefix + std::move(why);
  read_ = header_.count;
  return false;
}

std::variant<chunk_reader, std::string> chunk_reader::open(std::string_view bytes,
                                                          bool unsorted) {
  constexpr size_t smallest = 2 + 4 + 4; // format, flags, 4 one-byte varints, CRC
  if (bytes.size() < smallest)
    return prefix + std::to_string(bytes.size()) + " bytes, shorter than the smallest chunk ("
           + std::to_string(smallest) + ")";
  size_t body = bytes.size() - 4;
  auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  uint32_t stored = 0;
  for (int i = 0; i < 4; ++i)
    stored |= static_cast<uint32_t>(data[body + i]) << (8 * i);
  uint32_t computed = crc32_of(bytes.data(), body);
  if (stored != computed) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "CRC-32 mismatch (stored %08x, computed %08x) over %zu bytes",
                  stored, computed, bytes.size());
    return prefix + buf;
  }

  chunk_reader c;
  byte_reader h{data, body};
  c.header_.format = h.byte();
  if (c.header_.format != chunk_format)
    return prefix + "format version " + std::to_string(c.header_.format)
           + " is not known (this build reads " + std::to_string(chunk_format) + ")";
  uint8_t flags = h.byte();
  if (flags & ~known_flags)
    return prefix + "unknown flags " + std::to_string(flags);
  c.in_order_ = flags & flag_in_order;
  c.decimal_ = flags & flag_decimal;
  c.decimal_dod_ = flags & flag_decimal_dod;
  c.header_.has_source = flags & flag_has_source;
  c.header_.has_seq = flags & flag_has_seq;
  if (c.decimal_dod_ && !c.decimal_)
    return prefix + "flags " + std::to_string(flags) + " name delta-of-delta decimals without decimals";
  uint64_t count = h.varint();
  uint64_t first = unzigzag(h.varint());
  uint64_t before = h.varint();
  uint64_t span = h.varint();
  if (!h.ok)
    return prefix + "the header ends early";
  if (count == 0 || count > chunk_encoder::max_points)
    return prefix + "count " + std::to_string(count) + " is not within 1.."
           + std::to_string(chunk_encoder::max_points);
  c.header_.count = static_cast<uint32_t>(count);
  // earliest <= first point <= latest, without wrapping around
  uint64_t ufirst = ordered(as_signed(first));
  if (before > ufirst || span > UINT64_MAX - (ufirst - before) || ufirst - before + span < ufirst)
    return prefix + "timestamp range does not hold its first point";
  if (!c.in_order_ && !unsorted)
    return prefix + "flags " + std::to_string(flags) + " do not say the points are in time order";
  if (c.in_order_ && before != 0)
    return prefix + "an in-order chunk whose first point is not its earliest";
  uint64_t umin = ufirst - before;
  c.header_.first_ts_ms = as_signed(umin ^ (uint64_t{1} << 63));
  c.header_.last_ts_ms = as_signed((umin + span) ^ (uint64_t{1} << 63));
  c.point_.ts_ms = as_signed(first);
  if (c.decimal_) {
    c.scale_ = h.byte();
    c.rice_k_ = h.byte();
    if (c.scale_ > max_scale || c.rice_k_ > 63)
      return prefix + "decimal scale " + std::to_string(c.scale_) + " or Rice parameter "
             + std::to_string(c.rice_k_) + " out of range";
  }
  c.sources_.emplace_back();
  if (c.header_.has_source) {
    uint64_t n = h.varint();
    if (!h.ok || n == 0 || n > chunk_encoder::max_sources)
      return prefix + "source count " + std::to_string(n) + " is not within 1.."
             + std::to_string(chunk_encoder::max_sources);
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t len = h.varint();
      if (!h.ok || len > h.left)
        return prefix + "source " + std::to_string(i) + " runs past the end of the header";
      c.sources_.emplace_back(reinterpret_cast<const char*>(h.p), len);
      h.p += len;
      h.left -= len;
    }
  }
  c.last_seq_.assign(c.sources_.size(), 0);
  uint64_t runs = h.varint();
  if (!h.ok || runs == 0 || runs > count)
    return prefix + std::to_string(runs) + " source/version runs for " + std::to_string(count)
           + " points";
  uint64_t total = 0;
  for (uint64_t i = 0; i < runs; ++i) {
    uint64_t len = h.varint(), src = h.varint(), version = h.varint();
    if (!h.ok)
      return prefix + "the source/version runs end early";
    if (len == 0 || len > count || src >= c.sources_.size() || version > UINT32_MAX)
      return prefix + "source/version run " + std::to_string(i) + " is out of range";
    total += len;
    c.run_lengths_.push_back(static_cast<uint32_t>(len));
    c.run_sources_.push_back(static_cast<uint32_t>(src));
    c.run_versions_.push_back(static_cast<uint32_t>(version));
  }
  if (total != count)
    return prefix + "source/version runs cover " + std::to_string(total) + " points, not "
           + std::to_string(count);
  uint64_t ts_len = h.varint();
  uint64_t value_len = c.header_.has_seq ? h.varint() : 0;
  if (!h.ok)
    return prefix + "the stream lengths end early";
  if (ts_len > h.left || value_len > h.left - ts_len)
    return prefix + "streams longer than the chunk";
  if (!c.header_.has_seq)
    value_len = h.left - ts_len;
  c.ts_ = bit_reader{h.p, ts_len * 8};
  c.values_ = bit_reader{h.p + ts_len, value_len * 8};
  c.seq_ = bit_reader{h.p + ts_len + value_len, (h.left - ts_len - value_len) * 8};
  if (!c.header_.has_seq && c.seq_.size_bits != 0)
    return prefix + "bytes after the value stream";
  if (count - 1 > c.ts_.size_bits)
    return prefix + std::to_string(count) + " points in a " + std::to_string(ts_len)
           + "-byte timestamp stream";
  return c;
}

bool chunk_reader::next_value(double& v) {
  auto& r = values_;
  if (!decimal_) {
    if (read_ == 0) {
      prev_bits_ = r.get(64);
    } else if (r.get(1) != 0) {
      if (r.get(1) != 0) {
        lead_ = static_cast<unsigned>(r.get(5));
        len_ = static_cast<unsigned>(r.get(6)) + 1;
        if (lead_ + len_ > 64)
          return fail("point " + std::to_string(read_) + ": XOR window past 64 bits");
      } else if (len_ == 0) {
        return fail("point " + std::to_string(read_) + ": XOR refers to no earlier window");
      }
      prev_bits_ ^= r.get(len_) << (64 - lead_ - len_);
    }
    v = double_of(prev_bits_);
    return true;
  }
  uint64_t m;
  if (read_ == 0) {
    m = unzigzag(get_code(r));
  } else {
    uint64_t d = unzigzag(get_rice(r, rice_k_));
    if (decimal_dod_) {
      prev_dm_ = as_signed(static_cast<uint64_t>(prev_dm_) + d);
      d = static_cast<uint64_t>(prev_dm_);
    }
    m = static_cast<uint64_t>(prev_m_) + d;
  }
  prev_m_ = as_signed(m);
  if (prev_m_ > static_cast<int64_t>(max_mantissa) || prev_m_ < -static_cast<int64_t>(max_mantissa))
    return fail("point " + std::to_string(read_) + ": decimal mantissa out of range");
  v = static_cast<double>(prev_m_) / pow10[scale_];
  return true;
}

bool chunk_reader::finish() {
  // What is left of each stream is its padding: fewer than 8 zero bits.
  for (auto* s : {&ts_, &values_, &seq_}) {
    if (s->left() >= 8 || (s->left() > 0 && s->get(static_cast<unsigned>(s->left())) != 0))
      return fail("bits after the last point");
  }
  if (point_.ts_ms != header_.last_ts_ms && in_order_)
    return fail("the last point's time " + std::to_string(point_.ts_ms)
                + " is not the header's latest " + std::to_string(header_.last_ts_ms));
  return true;
}

const chunk_point* chunk_reader::next() {
  if (read_ >= header_.count)
    return nullptr;
  if (run_left_ == 0) {
    if (read_ > 0)
      ++run_;
    run_left_ = run_lengths_[run_];
    point_.model_version = run_versions_[run_];
    point_.source = sources_[run_sources_[run_]];
  }
  --run_left_;
  if (read_ > 0) {
    uint64_t dod = unzigzag(get_code(ts_));
    prev_delta_ += dod;
    int64_t prev = point_.ts_ms;
    point_.ts_ms = as_signed(static_cast<uint64_t>(prev) + prev_delta_);
    if (in_order_ && point_.ts_ms < prev) {
      fail("point " + std::to_string(read_) + " is earlier than the one before");
      return nullptr;
    }
    if (point_.ts_ms < header_.first_ts_ms || point_.ts_ms > header_.last_ts_ms) {
      fail("point " + std::to_string(read_) + " lies outside the header's time range");
      return nullptr;
    }
  }
  if (!next_value(point_.value))
    return nullptr;
  if (header_.has_seq) {
    auto src = run_sources_[run_];
    point_.seq = last_seq_[src] + 1 + unzigzag(get_code(seq_));
    last_seq_[src] = point_.seq;
  }
  if (ts_.overrun || values_.overrun || seq_.overrun) {
    fail("point " + std::to_string(read_) + ": a stream ends early");
    return nullptr;
  }
  if (++read_ == header_.count && !finish())
    return nullptr;
  return &point_;
}

std::variant<std::vector<chunk_point>, std::string> decode_chunk(std::string_view bytes) {
  return chunk_reader::read_all(bytes, false);
}

std::variant<std::vector<chunk_point>, std::string> chunk_reader::read_all(std::string_view bytes,
                                                                           bool unsorted) {
  auto opened = open(bytes, unsorted);
  if (auto* why = std::get_if<std::string>(&opened))
    return *why;
  auto& r = std::get<chunk_reader>(opened);
  std::vector<chunk_point> out;
  out.reserve(r.header().count);
  while (auto* p = r.next())
    out.push_back(*p);
  if (!r.error().empty())
    return r.error();
  return out;
}

} // namespace twinrt::twins
