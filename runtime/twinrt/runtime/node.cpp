// A node's end, the operator API it serves, the ingest path and what it
// tells about itself. node_start.cpp starts it; node_twins.cpp and
// node_reads.cpp hold the rest of node.hpp.

#include "twinrt/runtime/node.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include <caf/send.hpp>

#include "twinrt/runtime/internal/local_messages.hpp"
#include "twinrt/runtime/internal/node_impl.hpp"

namespace twinrt::runtime {

using namespace internal;

node::impl::~impl() {
  metrics.reset();
  rpc.reset();
  router.reset();
  if (sys) {
    for (auto& s : ctx->shards)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(gate, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(bridge, caf::exit_reason::user_shutdown);
    gate = nullptr;
    bridge = nullptr;
    // Twins are linked to their shard and go with it; until the last one
    // is gone they may still address shards, so the list stays.
    sys->await_all_actors_done();
    ctx->shards.clear();
    ctx->directory.reset();
    sys.reset();
  }
}

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}

node::~node() {
  impl_->rpc.reset();     // no call may reach a node that is going
  impl_->metrics.reset(); // before anything a scrape reads goes away
}

caf::error node::serve_rpc() {
  auto& cfg = impl_->ctx->cfg;
  if (cfg.rpc_address.empty() || impl_->rpc)
    return {};
  std::vector<rpc_token> tokens;
  for (auto& t : cfg.rpc_tokens)
    tokens.push_back({t.name, t.secret, t.role, t.scope, t.secret_hash});
  auto r = rpc_server::start(*this, cfg.rpc_address, std::move(tokens));
  if (!r)
    return std::move(r.error());
  impl_->rpc = std::move(*r);
  return {};
}

std::string node::rpc_address() const {
  return impl_->rpc ? impl_->rpc->address() : std::string();
}

caf::expected<twins::ingest_result> node::ingest(std::vector<twins::sample> batch) {
  sample_batch shared{std::move(batch)};
  return impl_->ask<twins::ingest_result>(impl_->gate, ingest_atom::value, shared);
}

caf::expected<twins::ingest_result> node::ingest_waiting(std::vector<twins::sample> batch) {
  sample_batch shared{std::move(batch)};
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    auto r = impl_->ask<twins::ingest_result>(impl_->gate, ingest_atom::value, shared);
    if (r || code_of(r.error()) != errc::overloaded)
      return r;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(50'000));
  }
}

void node::ingest_async(std::vector<twins::sample> batch,
                        std::function<void(caf::expected<twins::ingest_result>)> done) {
  sample_batch shared{std::move(batch)};
  caf::anon_send(impl_->bridge, ingest_atom::value, impl_->gate, shared,
                 std::make_shared<ingest_done>(std::move(done)));
}

size_t node::twin_count() const {
  return impl_->ctx->cat.size();
}

std::string node::metrics_address() const {
  return impl_->metrics ? impl_->metrics->address() : std::string();
}

void node::passivate_all() {
  for (auto& s : impl_->ctx->shards)
    caf::anon_send(s, passivate_atom::value);
}

int64_t node::active_twins() const {
  return impl_->probe.active_twins();
}

void node::add_event_sink(sink_settings settings, std::unique_ptr<event_sink> sink,
                          std::vector<event_filter> routes) {
  impl_->router->add_sink(std::move(settings), std::move(sink), std::move(routes));
}

std::vector<sink_status> node::event_sinks() const {
  return impl_->router->status();
}

runtime_probe& node::probe() {
  return impl_->probe;
}

const node_config& node::config() const {
  return impl_->ctx->cfg;
}

const shard_directory& node::directory() const {
  return *impl_->ctx->directory;
}

storage& node::store() {
  return *impl_->ctx->db;
}

caf::actor_system& node::system() {
  return *impl_->sys;
}

} // namespace twinrt::runtime
