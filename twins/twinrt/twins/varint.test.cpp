#include "twinrt/twins/varint.hpp"

#include <cstdint>
#include <limits>
#include <string>

#include <gtest/gtest.h>

namespace twinrt::twins {
namespace {

TEST(Varint, ValuesAtEachLengthReadBackWithTheirSize) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  struct {
    uint64_t v;
    size_t bytes;
  } cases[] = {{0, 1},         {1, 1},         {127, 1},
               {128, 2},       {16383, 2},     {16384, 3},
               {1u << 31, 5},  {uint64_t{1} << 62, 9},
               {uint64_t{1} << 63, 10},        {max, 10}};
  for (auto c : cases) {
    std::string s;
    put_varint(s, c.v);
    EXPECT_EQ(s.size(), c.bytes) << c.v;
    s += "\x05"; // what follows is not read
    auto r = read_varint(s.data(), s.size());
    EXPECT_EQ(r.value, c.v);
    EXPECT_EQ(r.bytes, c.bytes) << c.v;
  }
}

TEST(Varint, ACutOrOverlongVarintIsNone) {
  std::string max;
  put_varint(max, std::numeric_limits<uint64_t>::max());
  for (size_t n = 0; n < max.size(); ++n)
    EXPECT_EQ(read_varint(max.data(), n).bytes, 0u) << n << " of " << max.size() << " bytes";
  // A tenth byte above 1 holds bits past 64; an eleventh byte is too many.
  std::string over = max.substr(0, 9) + "\x02";
  EXPECT_EQ(read_varint(over.data(), over.size()).bytes, 0u);
  std::string eleven = max.substr(0, 9) + "\x81\x00";
  EXPECT_EQ(read_varint(eleven.data(), eleven.size()).bytes, 0u);
  // Zero bits in padding bytes are allowed (a longer spelling of 1).
  std::string padded("\x81\x80\x00", 3);
  EXPECT_EQ(read_varint(padded.data(), padded.size()).value, 1u);
  EXPECT_EQ(read_varint(padded.data(), padded.size()).bytes, 3u);
}

TEST(Varint, ZigzagMakesSmallDifferencesSmall) {
  auto d = [](int64_t v) { return static_cast<uint64_t>(v); };
  EXPECT_EQ(zigzag(d(0)), 0u);
  EXPECT_EQ(zigzag(d(-1)), 1u);
  EXPECT_EQ(zigzag(d(1)), 2u);
  EXPECT_EQ(zigzag(d(-2)), 3u);
  EXPECT_EQ(zigzag(d(std::numeric_limits<int64_t>::max())), ~uint64_t{1});
  EXPECT_EQ(zigzag(d(std::numeric_limits<int64_t>::min())), ~uint64_t{0});
  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{12345}, int64_t{-98765},
                    std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()})
    EXPECT_EQ(unzigzag(zigzag(d(v))), d(v)) << v;
}

} // namespace
} // namespace twinrt::twins
