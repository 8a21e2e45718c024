#include "twinrt/runtime/messages.hpp"

#include <string>
#include <tuple>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <gtest/gtest.h>

namespace twinrt::runtime {
namespace {

// Every field of every message set to something other than its default, so
// that a field an inspect overload forgets comes back different.

twins::sample a_sample(int n) {
  return {"acme/press-" + std::to_string(n), "temp_c", 1700000000000 + n, 21.5 + n, "plc-7",
          static_cast<uint64_t>(40 + n)};
}

twins::contribution a_contribution() {
  twins::contribution c;
  c.sums = {{"energy_kwh", 12.5}, {"stock/SKU-1", 3}};
  c.counts = {4, 3, 2, 1};
  c.score_sum = 281.5;
  c.score_count = 3;
  c.worst_id = "acme/press-2";
  c.worst_status = twins::health_status::alarm;
  c.latest_ts_ms = 1700000000123;
  return c;
}

twins::twin_state a_state() {
  twins::twin_state st;
  st.version = 17;
  st.model_version = 3;
  st.channels["temp_c"] = {71.25, 1700000000100};
  st.sources[{"temp_c", "plc-7"}] = 41;
  st.energy_kwh = 9.5;
  st.stock["SKU-1"] = 12;
  st.status = twins::health_status::warning;
  st.score = 77;
  st.last_data_ms = 1700000000100;
  st.created_ms = 1699999999000;
  st.own = a_contribution();
  return st;
}

event an_event() {
  return {5, "alert.raised", "acme/press-1", "press", twins::severity::critical, 1700000000200,
          R"({"rule":"hot"})"};
}

alert_record a_record() {
  alert_record r;
  r.id = 9;
  r.twin = "acme/press-1";
  r.kind = "press";
  r.rule = "hot";
  r.value = "temp_c";
  r.message = "too hot";
  r.event = "prediction";
  r.sev = twins::severity::critical;
  r.state = twins::alert_phase::acknowledged;
  r.raised_ms = 1;
  r.raised_value = 2.5;
  r.acked_ms = 3;
  r.acked_by = "ops";
  r.note = "on it";
  r.cleared_ms = 4;
  r.cleared_value = 5.5;
  return r;
}

twin_outbox an_outbox() {
  return {{an_event()}, {a_record()}};
}

auto fields(const twins::sample& x) {
  return std::tie(x.twin, x.channel, x.ts_ms, x.value, x.source, x.seq);
}
auto fields(const twins::rejection& x) {
  return std::tie(x.index, x.reason, x.message);
}
auto fields(const alert_record& x) {
  return std::tie(x.id, x.twin, x.kind, x.rule, x.value, x.message, x.event, x.sev, x.state,
                  x.raised_ms, x.raised_value, x.acked_ms, x.acked_by, x.note, x.cleared_ms,
                  x.cleared_value);
}
auto fields(const watch_entry& x) {
  return std::tie(x.id, x.last_data_ms, x.status);
}

template <class T>
bool same_list(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (fields(a[i]) != fields(b[i]))
      return false;
  return true;
}

bool same(const twin_outbox& a, const twin_outbox& b) {
  return a.events == b.events && same_list(a.alerts, b.alerts);
}

class Messages : public ::testing::Test {
protected:
  Messages() : sys_(configured()) {}

  static caf::actor_system_config& configured() {
    static caf::actor_system_config cfg; // outlives the system built from it
    static bool done = [] {
      cfg.set("scheduler.max-threads", size_t{1});
      cfg.set("logger.verbosity", caf::atom("quiet"));
      add_message_types(cfg);
      return true;
    }();
    (void) done;
    return cfg;
  }

  // Sends `x` through CAF's binary serializer inside a message, as the
  // middleman does: the receiving side finds the type by its registered
  // name, so an unregistered type fails here.
  template <class Atom, class T>
  T round_trip(Atom atom, const T& x) {
    std::vector<char> buf;
    auto out = caf::make_message(atom, x);
    caf::binary_serializer sink{sys_, buf};
    EXPECT_FALSE(sink(out));
    caf::message in;
    caf::binary_deserializer source{sys_, buf};
    EXPECT_FALSE(source(in));
    EXPECT_TRUE((in.match_elements<Atom, T>())) << caf::to_string(in);
    if (!in.match_elements<Atom, T>())
      return T{};
    return in.get_as<T>(1);
  }

  caf::actor_system sys_;
};

TEST_F(Messages, EveryTypeHasAnIdAndARegisteredName) {
  auto& types = sys_.types();
  EXPECT_EQ(caf::type_id<apply_request>::value, caf::first_custom_type_id + 1);
  EXPECT_STREQ(caf::type_name<apply_request>::value, "twinrt::runtime::apply_request");
  for (auto* name : {"twinrt::runtime::sample_batch", "twinrt::runtime::apply_request",
                     "twinrt::runtime::apply_reply", "twinrt::runtime::contrib_msg",
                     "twinrt::runtime::persist_msg", "twinrt::runtime::ack_request",
                     "twinrt::runtime::passivate_reply", "twinrt::runtime::watch_list",
                     "twinrt::runtime::twin_view", "twinrt::runtime::alert_record",
                     "twinrt::twins::ingest_result"})
    EXPECT_NE(types.make_value(name), nullptr) << name;
}

TEST_F(Messages, SampleBatchKeepsEverySampleAndCopiesShareThem) {
  sample_batch b({a_sample(1), a_sample(2)});
  auto copy = b;
  EXPECT_EQ(&copy.samples(), &b.samples()); // no samples copied locally
  auto back = round_trip(ingest_atom::value, b);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(fields(back[0]), fields(b[0]));
  EXPECT_EQ(fields(back[1]), fields(b[1]));
  EXPECT_EQ(round_trip(ingest_atom::value, sample_batch{}).size(), 0u);
}

TEST_F(Messages, ApplyRequestRoundTrips) {
  apply_request r{sample_batch({a_sample(1), a_sample(2), a_sample(3)}), {0, 2}, 1700000000999};
  auto back = round_trip(apply_atom::value, r);
  ASSERT_EQ(back.batch.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(fields(back.batch[i]), fields(r.batch[i]));
  EXPECT_EQ(back.indices, r.indices);
  EXPECT_EQ(back.now_ms, r.now_ms);
}

TEST_F(Messages, ApplyReplyRoundTrips) {
  apply_reply r;
  r.number = 77;
  r.model_version = 4;
  r.applied = {0, 2};
  r.rejected = {{1, twins::reject_reason::out_of_range, "sample 1 for a.b: out of range"}};
  r.state_bytes = std::string("\0\1state", 7);
  r.last_data_ms = 1700000000100;
  r.status = twins::health_status::stale;
  r.out = an_outbox();
  auto back = round_trip(apply_atom::value, r);
  EXPECT_EQ(back.number, r.number);
  EXPECT_EQ(back.model_version, r.model_version);
  EXPECT_EQ(back.applied, r.applied);
  EXPECT_TRUE(same_list(back.rejected, r.rejected));
  EXPECT_EQ(back.state_bytes, r.state_bytes);
  EXPECT_EQ(back.last_data_ms, r.last_data_ms);
  EXPECT_EQ(back.status, r.status);
  EXPECT_TRUE(same(back.out, r.out));
}

TEST_F(Messages, ContributionRoundTrips) {
  contrib_msg m{"acme/line-1", "acme/press-1", 12, a_contribution(), 1700000000050};
  auto back = round_trip(contrib_atom::value, m);
  EXPECT_EQ(back.parent, m.parent);
  EXPECT_EQ(back.child, m.child);
  EXPECT_EQ(back.version, m.version);
  EXPECT_EQ(back.value, m.value);
  EXPECT_EQ(back.oldest_ts_ms, m.oldest_ts_ms);
}

TEST_F(Messages, PersistRoundTrips) {
  persist_msg m{"acme/press-1", 77, "state", 1700000000100, twins::health_status::alarm,
                an_outbox()};
  auto back = round_trip(persist_atom::value, m);
  EXPECT_EQ(back.id, m.id);
  EXPECT_EQ(back.number, m.number);
  EXPECT_EQ(back.state_bytes, m.state_bytes);
  EXPECT_EQ(back.last_data_ms, m.last_data_ms);
  EXPECT_EQ(back.status, m.status);
  EXPECT_TRUE(same(back.out, m.out));
}

TEST_F(Messages, AcknowledgementAndItsAnswerRoundTrip) {
  ack_request r{"acme/press-1", 9, "ops", "on it"};
  auto back = round_trip(ack_atom::value, r);
  EXPECT_EQ(std::tie(back.twin, back.alert, back.by, back.note),
            std::tie(r.twin, r.alert, r.by, r.note));
  EXPECT_EQ(fields(round_trip(ack_atom::value, a_record())), fields(a_record()));
}

TEST_F(Messages, PassivateReplyCarriesTheWholeState) {
  passivate_reply r{true, a_state()};
  auto back = round_trip(passivate_atom::value, r);
  EXPECT_TRUE(back.quit);
  EXPECT_EQ(back.state, r.state);
}

TEST_F(Messages, WatchListRoundTrips) {
  watch_list l{{"acme/press-1", 1700000000100, twins::health_status::stale},
               {"acme/press-2", 1700000000200, twins::health_status::warning}};
  EXPECT_TRUE(same_list(round_trip(watch_atom::value, l), l));
}

TEST_F(Messages, TwinViewRoundTrips) {
  twin_view v{{"acme/press-1", 77, "press", "acme/line-1"}, 3, a_state(), true};
  auto back = round_trip(get_atom::value, v);
  EXPECT_EQ(std::tie(back.meta.id, back.meta.number, back.meta.kind, back.meta.parent),
            std::tie(v.meta.id, v.meta.number, v.meta.kind, v.meta.parent));
  EXPECT_EQ(back.children, v.children);
  EXPECT_EQ(back.state, v.state);
  EXPECT_EQ(back.active, v.active);
}

TEST_F(Messages, IngestResultRoundTrips) {
  twins::ingest_result r{5, {{3, twins::reject_reason::unknown_twin, "sample 3 for x.y: no twin x"}}};
  auto back = round_trip(ingest_atom::value, r);
  EXPECT_EQ(back.accepted, r.accepted);
  EXPECT_TRUE(same_list(back.rejected, r.rejected));
}

TEST_F(Messages, CorruptStateBytesAreRefusedNotLoaded) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys_, buf};
  std::string garbage = "not a state";
  ASSERT_FALSE(sink(garbage));
  twins::twin_state st;
  caf::binary_deserializer source{sys_, buf};
  EXPECT_TRUE(source(st)); // an error
  EXPECT_EQ(st, twins::twin_state{});
}

} // namespace
} // namespace twinrt::runtime
