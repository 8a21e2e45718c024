#include "twinrt/twins/names.hpp"

#include <gtest/gtest.h>

namespace twinrt::twins {
namespace {

TEST(Names, TwinIdsOfNamedPartsAreTaken) {
  for (std::string id : {std::string("acme"), std::string("acme/plant-1/line_2/press.7"),
                         std::string("a/b.c/..d"), std::string(512, 'x')})
    EXPECT_FALSE(twin_id_refusal(id)) << id << ": " << *twin_id_refusal(id);
}

TEST(Names, EachTwinIdRuleSaysWhatIsWrong) {
  struct {
    std::string id;
    std::string says;
  } cases[] = {
    {"", "twin id is empty"},
    {"/acme", "has an empty part"},
    {"acme/", "has an empty part"},
    {"acme//x", "has an empty part"},
    {"acme/./x", "has a '.' part"},
    {"acme/..", "has a '..' part"},
    {std::string("acme\0x", 6), "has the byte '\\x00'"},
    {"acme x", "has the byte ' '"},
    {std::string(513, 'x'), "twin id of 513 bytes is over the limit of 512"},
  };
  for (auto& c : cases) {
    auto why = twin_id_refusal(c.id);
    ASSERT_TRUE(why) << c.id;
    EXPECT_NE(why->find(c.says), std::string::npos) << *why;
    EXPECT_LT(why->size(), 300u);
  }
}

TEST(Names, ChannelAndSkuLimits) {
  EXPECT_FALSE(channel_refusal("temperature_c"));
  EXPECT_FALSE(channel_refusal("$offline"));
  EXPECT_FALSE(channel_refusal("receipt/SKU-0001"));
  EXPECT_FALSE(channel_refusal("receipt/" + std::string(64, 'S')));
  EXPECT_FALSE(channel_refusal("receipt/")) << "an empty SKU is the model's to refuse";
  EXPECT_NE(channel_refusal("receipt/" + std::string(65, 'S'))->find("SKU of 65 bytes"),
            std::string::npos);
  EXPECT_NE(channel_refusal(std::string(65, 'c'))->find("channel name of 65 bytes"),
            std::string::npos);
  EXPECT_NE(channel_refusal("receipt/SKU 1")->find("has the byte ' '"), std::string::npos);
  EXPECT_NE(channel_refusal("")->find("channel name is empty"), std::string::npos);
}

TEST(Names, PrintableCutsAndEscapes) {
  EXPECT_EQ(printable("abc"), "abc");
  EXPECT_EQ(printable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(printable(std::string(100, 'x'), 4), "xxxx... (100 bytes)");
}

} // namespace
} // namespace twinrt::twins
