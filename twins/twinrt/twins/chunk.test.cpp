#include "twinrt/twins/chunk.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include <boost/crc.hpp>
#include <gtest/gtest.h>

namespace twinrt::twins {

void PrintTo(const chunk_point& p, std::ostream* os) {
  uint64_t b;
  std::memcpy(&b, &p.value, sizeof b);
  *os << "{ts " << p.ts_ms << ", value " << p.value << " (bits " << std::hex << b << std::dec
      << "), v" << p.model_version << ", source '" << p.source << "', seq " << p.seq << "}";
}

namespace {

std::string seal(const std::vector<chunk_point>& points) {
  chunk_encoder enc;
  for (auto& p : points) {
    auto refused = enc.append(p);
    EXPECT_FALSE(refused) << *refused;
  }
  return enc.seal();
}

std::vector<chunk_point> decoded(const std::string& bytes) {
  auto r = decode_chunk(bytes);
  if (auto* why = std::get_if<std::string>(&r)) {
    ADD_FAILURE() << "refused: " << *why;
    return {};
  }
  return std::get<std::vector<chunk_point>>(r);
}

std::string refusal(const std::string& bytes) {
  auto r = decode_chunk(bytes);
  if (auto* why = std::get_if<std::string>(&r))
    return *why;
  return "";
}

// Sets the CRC of a chunk whose body was changed, so the decoder looks past it.
void recrc(std::string& bytes) {
  boost::crc_32_type crc;
  crc.process_bytes(bytes.data(), bytes.size() - 4);
  uint32_t c = crc.checksum();
  for (int i = 0; i < 4; ++i)
    bytes[bytes.size() - 4 + i] = static_cast<char>((c >> (8 * i)) & 0xff);
}

chunk_header header_of(const std::string& bytes) {
  auto r = chunk_reader::open(bytes);
  if (auto* why = std::get_if<std::string>(&r)) {
    ADD_FAILURE() << "refused: " << *why;
    return {};
  }
  return std::get<chunk_reader>(r).header();
}

double from_bits(uint64_t b) {
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

uint64_t to_bits(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

std::vector<chunk_point> one_hertz(size_t n, int64_t start = 1'764'748'800'000) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0, 0.3);
  std::vector<chunk_point> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back({start + static_cast<int64_t>(i) * 1000, 2.5 + noise(rng), 3, "", 0});
  return out;
}

TEST(Chunk, RegularOneHertzPointsRoundTripExactly) {
  auto points = one_hertz(120);
  auto bytes = seal(points);
  EXPECT_EQ(decoded(bytes), points);
}

TEST(Chunk, ConstantValueAtOneHertzCostsAboutTwoBitsAPoint) {
  std::vector<chunk_point> points;
  for (int i = 0; i < 120; ++i)
    points.push_back({1'764'748'800'000 + i * 1000LL, 21.7, 1, "", 0});
  auto bytes = seal(points);
  EXPECT_EQ(decoded(bytes), points);
  // a bit for the time and one for the value, plus the header, the first value and the CRC
  EXPECT_LT(bytes.size(), 120u * 2 / 8 + 32);
}

TEST(Chunk, HeaderTellsCountAndTimeRange) {
  auto points = one_hertz(120);
  auto bytes = seal(points);
  auto r = chunk_reader::open(bytes);
  ASSERT_TRUE(std::holds_alternative<chunk_reader>(r)) << std::get<std::string>(r);
  auto& h = std::get<chunk_reader>(r).header();
  EXPECT_EQ(h.format, chunk_format);
  EXPECT_EQ(h.count, 120u);
  EXPECT_EQ(h.first_ts_ms, points.front().ts_ms);
  EXPECT_EQ(h.last_ts_ms, points.back().ts_ms);
  EXPECT_FALSE(h.has_source);
  EXPECT_FALSE(h.has_seq);
}

TEST(Chunk, IrregularTimestampsRoundTripExactly) {
  std::mt19937_64 rng(11);
  std::vector<chunk_point> points;
  int64_t ts = 1'700'000'000'000;
  for (int i = 0; i < 2000; ++i) {
    switch (rng() % 5) {
      case 0: ts += 1000 + static_cast<int64_t>(rng() % 41) - 20; break; // jitter
      case 1: ts += static_cast<int64_t>(rng() % 100'000'000); break;  // a gap
      case 2: break;                                                  // same millisecond
      case 3: ts += 1; break;
      default: ts += static_cast<int64_t>(rng() % 5000); break;
    }
    points.push_back({ts, static_cast<double>(rng() % 1000) / 7, 1, "", 0});
  }
  EXPECT_EQ(decoded(seal(points)), points);
}

TEST(Chunk, OutOfOrderPointsAreSortedByTimeAtSeal) {
  std::vector<chunk_point> points{{5000, 5, 1, "a", 1}, {1000, 1, 1, "a", 2},
                                  {3000, 3, 2, "b", 9}, {1000, 1.5, 1, "b", 10},
                                  {9000, 9, 1, "", 0},  {-2000, -2, 1, "a", 3}};
  auto bytes = seal(points);
  // Sorted by time; the two points at 1000 ms keep the order they came in.
  std::vector<chunk_point> expected{{-2000, -2, 1, "a", 3}, {1000, 1, 1, "a", 2},
                                    {1000, 1.5, 1, "b", 10}, {3000, 3, 2, "b", 9},
                                    {5000, 5, 1, "a", 1},    {9000, 9, 1, "", 0}};
  EXPECT_EQ(decoded(bytes), expected);
  auto h = header_of(bytes);
  EXPECT_EQ(h.first_ts_ms, -2000);
  EXPECT_EQ(h.last_ts_ms, 9000);
}

TEST(Chunk, NanInfinityAndNegativeZeroKeepTheirBits) {
  std::vector<double> values{std::numeric_limits<double>::quiet_NaN(),
                             -std::numeric_limits<double>::quiet_NaN(),
                             from_bits(0x7ff4000000000001), // signalling NaN with a payload
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             -0.0,
                             0.0,
                             -0.0,
                             std::numeric_limits<double>::denorm_min(),
                             std::numeric_limits<double>::max(),
                             std::numeric_limits<double>::lowest(),
                             std::numeric_limits<double>::epsilon(),
                             1.0,
                             std::numeric_limits<double>::quiet_NaN()};
  std::vector<chunk_point> points;
  for (size_t i = 0; i < values.size(); ++i)
    points.push_back({static_cast<int64_t>(i) * 1000, values[i], 1, "", 0});
  auto back = decoded(seal(points));
  ASSERT_EQ(back.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(to_bits(back[i].value), to_bits(values[i])) << "point " << i;
}

TEST(Chunk, NegativeZeroAmongDecimalsIsNotReadBackAsPlusZero) {
  // Decimal values would pick the decimal code, which cannot hold -0.0.
  std::vector<chunk_point> points;
  for (int i = 0; i < 50; ++i)
    points.push_back({i * 1000, i == 20 ? -0.0 : i * 0.5, 1, "", 0});
  auto back = decoded(seal(points));
  ASSERT_EQ(back.size(), points.size());
  EXPECT_TRUE(std::signbit(back[20].value));
  EXPECT_EQ(back, points);
}

TEST(Chunk, HugeAndNegativeTimestampsRoundTripWithoutOverflow) {
  constexpr auto lo = std::numeric_limits<int64_t>::min();
  constexpr auto hi = std::numeric_limits<int64_t>::max();
  std::vector<chunk_point> points{{lo, 1, 1, "", 0},     {lo + 1, 2, 1, "", 0},
                                  {-1, 3, 1, "", 0},     {0, 4, 1, "", 0},
                                  {1, 5, 1, "", 0},      {hi / 2, 6, 1, "", 0},
                                  {hi - 1, 7, 1, "", 0}, {hi, 8, 1, "", 0},
                                  {hi, 9, 1, "", 0}};
  auto bytes = seal(points);
  EXPECT_EQ(decoded(bytes), points);
  auto h = header_of(bytes);
  EXPECT_EQ(h.first_ts_ms, lo);
  EXPECT_EQ(h.last_ts_ms, hi);

  // Out of order across the whole range too.
  std::vector<chunk_point> jumping{{hi, 1, 1, "", 0}, {lo, 2, 1, "", 0}, {hi, 3, 1, "", 0},
                                   {-5, 4, 1, "", 0}, {lo, 5, 1, "", 0}};
  std::vector<chunk_point> sorted{{lo, 2, 1, "", 0}, {lo, 5, 1, "", 0}, {-5, 4, 1, "", 0},
                                  {hi, 1, 1, "", 0}, {hi, 3, 1, "", 0}};
  EXPECT_EQ(decoded(seal(jumping)), sorted);
}

TEST(Chunk, SinglePointRoundTrips) {
  std::vector<chunk_point> points{{1'764'748'800'123, 42.125, 7, "plc-1", 99}};
  auto bytes = seal(points);
  EXPECT_EQ(decoded(bytes), points);
  auto h = header_of(bytes);
  EXPECT_EQ(h.count, 1u);
  EXPECT_EQ(h.first_ts_ms, h.last_ts_ms);
}

TEST(Chunk, TenThousandRandomPointsRoundTrip) {
  std::mt19937_64 rng(3);
  std::vector<chunk_point> points;
  int64_t ts = 1'600'000'000'000;
  for (int i = 0; i < 10'000; ++i) {
    ts += static_cast<int64_t>(rng() % 3000);
    points.push_back({ts, from_bits(rng()), static_cast<uint32_t>(i / 2500), "", 0});
  }
  EXPECT_EQ(decoded(seal(points)), points);
}

TEST(Chunk, DecimalValuesTakeTheDecimalCodeAndRoundTrip) {
  // A sensor reporting 0.01 mm/s resolution: the XOR code spends most of a
  // double on each value, the decimal code about a byte.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0, 0.3);
  std::vector<chunk_point> points;
  for (int i = 0; i < 10'000; ++i)
    points.push_back({1'700'000'000'000 + i * 1000LL,
                      std::round((2.5 + noise(rng)) * 100) / 100, 1, "", 0});
  auto bytes = seal(points);
  EXPECT_EQ(decoded(bytes), points);
  EXPECT_LT(bytes.size(), 10'000u * 2);
}

TEST(Chunk, CounterRoundTripsInAFewBitsAPoint) {
  std::vector<chunk_point> points;
  for (int i = 0; i < 10'000; ++i)
    points.push_back({1'700'000'000'000 + i * 1000LL, 1e6 + 3.0 * i, 1, "", 0});
  auto bytes = seal(points);
  EXPECT_EQ(decoded(bytes), points);
  EXPECT_LT(bytes.size(), 10'000u / 2); // under 4 bits a point
}

TEST(Chunk, LargeAndTinyValuesRoundTrip) {
  std::vector<double> values{1e300, -1e300, 1e-300, 123456789012345.6, 9007199254740993.0,
                             1e15, 0.000001, 123.456789, -5e-324, 4.9e-324};
  std::vector<chunk_point> points;
  for (size_t i = 0; i < values.size() * 10; ++i)
    points.push_back({static_cast<int64_t>(i), values[i % values.size()], 1, "", 0});
  EXPECT_EQ(decoded(seal(points)), points);
}

TEST(Chunk, SourcesSeqsAndModelVersionsRoundTrip) {
  std::vector<chunk_point> points;
  for (int i = 0; i < 500; ++i) {
    std::string source = i % 3 == 0 ? "gateway-a" : i % 3 == 1 ? "gateway-b" : "";
    uint64_t seq = source.empty() ? 0 : 1000 + static_cast<uint64_t>(i) * (i % 7 == 0 ? 5 : 1);
    if (i == 250)
      seq = std::numeric_limits<uint64_t>::max();
    points.push_back({i * 1000LL, i * 0.25, static_cast<uint32_t>(1 + i / 200), source, seq});
  }
  auto bytes = seal(points);
  EXPECT_EQ(decoded(bytes), points);
  auto h = header_of(bytes);
  EXPECT_TRUE(h.has_source);
  EXPECT_TRUE(h.has_seq);
}

TEST(Chunk, SeqCountingUpFromOneSourceCostsABitAPoint) {
  std::vector<chunk_point> with, without;
  for (int i = 0; i < 1000; ++i) {
    with.push_back({i * 1000LL, 1, 1, "plc-7", 5000 + static_cast<uint64_t>(i)});
    without.push_back({i * 1000LL, 1, 1, "plc-7", 0});
  }
  auto a = seal(with), b = seal(without);
  EXPECT_EQ(decoded(a), with);
  EXPECT_LE(a.size(), b.size() + 1000 / 8 + 4);
}

TEST(Chunk, SnapshotKeepsThePointsAndSealEmptiesTheEncoder) {
  chunk_encoder enc;
  EXPECT_EQ(enc.snapshot(), "");
  for (auto& p : one_hertz(10))
    enc.append(p);
  auto snap = enc.snapshot();
  EXPECT_EQ(decoded(snap).size(), 10u);
  EXPECT_EQ(enc.size(), 10u);
  EXPECT_EQ(enc.seal(), snap);
  EXPECT_TRUE(enc.empty());
  EXPECT_EQ(enc.seal(), "");
  // A reused encoder starts afresh.
  auto next = one_hertz(5, 42);
  for (auto& p : next)
    enc.append(p);
  EXPECT_EQ(decoded(enc.seal()), next);
}

TEST(Chunk, TooManySourcesAreRefusedAndTheChunkStaysUsable) {
  chunk_encoder enc;
  for (uint32_t i = 0; i < chunk_encoder::max_sources; ++i)
    ASSERT_FALSE(enc.append(i, 1, 1, "s" + std::to_string(i), 1));
  auto refused = enc.append(99'999, 1, 1, "one-too-many", 1);
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->find("sources"), std::string::npos) << *refused;
  EXPECT_EQ(enc.size(), chunk_encoder::max_sources);
  EXPECT_FALSE(enc.append(100'000, 2, 1, "s0", 2)); // a known source still goes in
  EXPECT_EQ(decoded(enc.seal()).size(), chunk_encoder::max_sources + 1);
}

TEST(Chunk, EveryFlippedBitIsRefusedWithAReason) {
  std::vector<chunk_point> points;
  for (int i = 0; i < 120; ++i)
    points.push_back({i * 1000LL, i * 0.1, 1, i < 60 ? "a" : "b", static_cast<uint64_t>(i)});
  auto bytes = seal(points);
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    auto bad = bytes;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    auto why = refusal(bad);
    ASSERT_NE(why, "") << "bit " << bit;
    EXPECT_NE(why.find("CRC-32 mismatch"), std::string::npos) << why;
  }
}

TEST(Chunk, TruncatedAndEmptyBytesAreRefused) {
  auto bytes = seal(one_hertz(120));
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_NE(refusal(bytes.substr(0, n)), "") << n << " bytes";
  EXPECT_NE(refusal("").find("shorter than the smallest chunk"), std::string::npos);
  EXPECT_NE(refusal(bytes + "x"), "");
}

TEST(Chunk, UnknownFormatVersionIsRefusedByName) {
  auto bytes = seal(one_hertz(3));
  bytes[0] = 9;
  recrc(bytes);
  EXPECT_NE(refusal(bytes).find("format version 9 is not known"), std::string::npos)
    << refusal(bytes);
}

TEST(Chunk, AChunkNotMarkedInTimeOrderIsRefused) {
  auto bytes = seal(one_hertz(3));
  ASSERT_EQ(bytes[1] & 1, 1); // flags: in order
  bytes[1] = static_cast<char>(bytes[1] & ~1);
  recrc(bytes);
  EXPECT_NE(refusal(bytes).find("not say the points are in time order"), std::string::npos)
    << refusal(bytes);
}

TEST(Chunk, ACountTheStreamsCannotHoldIsRefused) {
  auto bytes = seal(one_hertz(3));
  ASSERT_EQ(bytes[2], 3); // count, one varint byte
  bytes[2] = 100;
  recrc(bytes);
  EXPECT_NE(refusal(bytes), "");
}

TEST(Chunk, CorruptBodiesWithAValidCrcAreRefusedNotCrashed) {
  // Each byte of the body changed to the edge values and some others, with
  // the CRC fixed up: the decoder must refuse or decode, never read out of
  // bounds or overflow (ASan/UBSan). The fuzz target goes further.
  std::vector<chunk_point> points;
  for (int i = 0; i < 40; ++i)
    points.push_back({i * 997LL, i % 5 == 0 ? 1.5 : i * 0.01, static_cast<uint32_t>(i / 20),
                      i % 2 ? "x" : "", static_cast<uint64_t>(i)});
  auto bytes = seal(points);
  size_t refused = 0, read = 0;
  for (size_t at = 0; at + 4 < bytes.size(); ++at) {
    auto was = static_cast<uint8_t>(bytes[at]);
    for (int b : {0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, was ^ 1, was ^ 2, was ^ 0x40, was ^ 0x80,
                  was + 1, was - 1, was + 17, was * 3}) {
      auto bad = bytes;
      bad[at] = static_cast<char>(b & 0xff);
      recrc(bad);
      auto r = decode_chunk(bad);
      if (std::holds_alternative<std::string>(r)) {
        EXPECT_EQ(std::get<std::string>(r).rfind("history chunk: ", 0), 0u);
        ++refused;
      } else {
        ++read;
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(read, 0u); // some changes are just other valid chunks
}

} // namespace
} // namespace twinrt::twins
