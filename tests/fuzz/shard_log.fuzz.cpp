// Fuzz target for the shard log's record decoder (storage::decode_log_record)
// and the check read_log makes of each record (shard_log::check): a mutated or
// cut record must be refused, never crash, overflow or allocate without bound.
// Input: one byte, then the record. When the byte is odd, the record's CRC-32
// is set to match what comes before it first, so mutations reach the tables
// and the samples instead of stopping at the checksum.
// Beyond not crashing: a refusal is errc::corrupt_record, "stored shard log
// record: ..."; check() and the decoder agree on the frame; a record that
// decodes, written again by the builder the batches use, decodes to the same
// shard, sequence and samples.
//
// The seeds in corpus/shard_log/ are records the committer wrote to a real
// RocksDB and read_log read back (one byte 0 in front): one sample; a batch of
// several twins, channels and sources with model versions; extreme times and
// seqs; special values (NaN, infinities, -0.0); a long id and channel; and
// some of them with byte 1 and a byte changed.

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/crc.hpp>

#include "twinrt/runtime/errc.hpp"
#include "twinrt/runtime/storage.hpp"
#include "twinrt/runtime/storage/shard_log.hpp"

using namespace twinrt::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) != 0 && bytes.size() >= shard_log::trailer_size) {
    boost::crc_32_type crc;
    auto body_end = bytes.size() - shard_log::trailer_size;
    crc.process_bytes(bytes.data(), body_end);
    uint32_t c = crc.checksum();
    for (int i = 0; i < 4; ++i)
      bytes[body_end + i] = static_cast<char>((c >> (8 * (3 - i))) & 0xff);
  }
  auto r = storage::decode_log_record(bytes);
  if (!r) {
    if (code_of(r.error()) != errc::corrupt_record
        || describe(r.error()).rfind("stored shard log record: ", 0) != 0)
      __builtin_trap();
    return 0;
  }
  // The frame decoded: check() passes it as the record it says it is, and
  // refuses it as any other.
  if (shard_log::check(bytes, r->shard, r->seq) || !shard_log::check(bytes, r->shard, r->seq + 1))
    __builtin_trap();
  shard_log::builder b;
  for (auto& s : r->samples)
    b.add(s.twin, s.model_version, s.channel, s.ts_ms, s.value, s.source, s.seq);
  auto head = shard_log::header(r->shard, r->seq);
  auto body = b.body();
  auto again = storage::decode_log_record(head + body + shard_log::trailer(head, body));
  if (!again || again->shard != r->shard || again->seq != r->seq
      || again->samples != r->samples)
    __builtin_trap();
  return 0;
}
