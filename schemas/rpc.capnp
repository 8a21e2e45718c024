@0xf1b58e387bb061f1;
# The operator API of a twinrt node, served over Cap'n Proto RPC.
#
# Connect, take the bootstrap capability (a Gateway) and log in with a token.
# What comes back are capabilities that can do only what the token allows:
# a read token's Writer refuses every call; a token scoped to a twin sees
# nothing outside that twin's subtree. A subtree (of a scope, a query, a watch,
# an alert list) is a twin and the twins below it in the rollup tree, as the
# tree is at each call: a twin that moves leaves it or enters it. Errors are Cap'n Proto exceptions whose description
# names the input and the reason ("no twin acme/plant-9", "permission denied:
# token 'viewer' may not write").
#
# Evolution: members are added at higher ordinals only; nothing is renumbered.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("twinrt::rpc");

interface Gateway {
  login @0 (token :Text) -> (session :Session);
  # Refused (failed) for a missing or unknown token.
}

enum Role {
  read @0;   # get, query, history, watch, models
  write @1;  # read + ingest, create, delete, reparent twins
  admin @2;  # write + load models
}

struct Session {
  tokenName @0 :Text;   # the token's name, never its secret
  role @1 :Role;
  scope @2 :Text;       # twin whose subtree the token may see; "" = everything
  reader @3 :Reader;    # always set
  writer @4 :Writer;    # always set; below role write every call is refused
                        # ("permission denied: token 'viewer' may not write")
  admin @5 :Admin;      # always set; below role admin every call is refused
}

enum Health {
  ok @0;
  warning @1;
  alarm @2;
  stale @3;
}

struct ChannelValue {
  name @0 :Text;
  value @1 :Float64;
  timestampMs @2 :Int64;
  unit @3 :Text;
}

struct Sum {
  key @0 :Text;         # power_kw, energy_kwh, energy_today_kwh, stock/SKU, count/NAME
  value @1 :Float64;
}

struct Rollup {
  sums @0 :List(Sum);
  ok @1 :Int64;          # twins below (and itself) by health
  warning @2 :Int64;
  alarm @3 :Int64;
  stale @4 :Int64;
  score @5 :Float64;     # mean health score 0-100
  worstId @6 :Text;
  worstHealth @7 :Health;
}

struct Twin {
  id @0 :Text;
  kind @1 :Text;
  parent @2 :Text;
  children @3 :UInt32;
  modelVersion @4 :UInt32;
  version @5 :UInt64;       # bumps on every change
  health @6 :Health;
  score @7 :Float64;
  lastDataMs @8 :Int64;     # newest sample time seen (not its arrival); 0 = no sample yet
  channels @9 :List(ChannelValue);
  rollup @10 :Rollup;
  stock @11 :List(Sum);     # own stock per SKU (warehouses)
  energyKwh @12 :Float64;
  energyTodayKwh @13 :Float64;
  derived @14 :List(Sum);   # analytics: rul_hours, rul_confidence, throughput_deviation_pct,
                            # energy_waste_pct, low_stock_skus ...; a value not known is absent
  warnings @15 :List(Text); # analytics findings behind a warning ("low stock: SKU-0007 has 3 units, minimum 10")
}

struct Query {
  subtree @0 :Text;        # "" = the token's scope
  kind @1 :Text;           # "" = any
  health @2 :List(Health); # empty = any
  where @3 :Text;          # e.g. "vibration_mm_s > 4.5 and score < 80"; "" = all
  sortBy @4 :Text;         # "id" (default), "score", a channel, a rollup sum or a derived value
  descending @5 :Bool;
  limit @6 :UInt32;        # page size; 0 = 100; at most 1000
  pageToken @7 :Text;      # from the previous page's nextPageToken
}

struct Point {
  timestampMs @0 :Int64;
  value @1 :Float64;        # raw value, or the mean of a step
  min @2 :Float64;
  max @3 :Float64;
  last @4 :Float64;
  count @5 :UInt32;         # samples in the step (1 when raw)
  modelVersion @6 :UInt32;
}

struct Sample {
  twin @0 :Text;
  channel @1 :Text;
  timestampMs @2 :Int64;
  value @3 :Float64;
  source @4 :Text;          # optional: with seq, makes redelivery idempotent
  seq @5 :UInt64;
}

struct Rejection {
  index @0 :UInt32;         # position in the submitted list
  reason @1 :Text;          # unknown_twin, unknown_channel, not_finite, out_of_range,
                            # future_timestamp, duplicate_sequence, not_whole_units,
                            # invalid_name, bad_timestamp
  message @2 :Text;
}

struct ModelInfo {
  kind @0 :Text;
  version @1 :UInt32;
  description @2 :Text;
  channels @3 :List(Text);
  parents @4 :List(Text);
}

enum Severity {
  info @0;
  warning @1;
  critical @2;
}

enum AlertState {
  raised @0;
  acknowledged @1;
  cleared @2;
}

struct Alert {
  id @0 :UInt64;
  twin @1 :Text;
  kind @2 :Text;
  rule @3 :Text;            # the model's [[alerts]] name ("stale": built in)
  value @4 :Text;           # the named value the rule watches
  severity @5 :Severity;
  state @6 :AlertState;
  raisedMs @7 :Int64;
  raisedValue @8 :Float64;
  ackedMs @9 :Int64;        # 0: not acknowledged
  ackedBy @10 :Text;        # token name
  note @11 :Text;
  clearedMs @12 :Int64;     # 0: not cleared
  clearedValue @13 :Float64;
  message @14 :Text;
  event @15 :Text;          # alert | prediction
}

struct NodeStatus {
  twins @0 :UInt64;            # twins on the node
  activeTwins @1 :Int64;       # of them in memory now
  samplesIngested @2 :UInt64;  # samples accepted and stored since the node started
  samplesRejected @3 :UInt64;  # samples refused since the node started (every reason)
  adapters @4 :List(Counter);  # every series of the ingest adapters, as on /metrics:
                               # twinrt_mqtt_* (sequence gaps among them), twinrt_sparkplug_*
  struct Counter {
    name @0 :Text;             # the metric family, e.g. twinrt_mqtt_sequence_gaps_total
    labels @1 :List(Label);
    value @2 :Int64;
  }
  struct Label {
    name @0 :Text;
    value @1 :Text;
  }
  storageFailure @5 :Text;     # empty while storage works; else why it stopped taking writes
                               # ("storage_failed: write: IO error: No space left on device"):
                               # nothing more is acknowledged until a restart
}

struct Change {
  twin @0 :Twin;            # the twin as it is now
}

interface Watcher {
  # Implemented by the client; the node calls it with changes below the
  # watched subtree, at most one update per 100 ms. Flow-controlled: a slow
  # watcher gets coalesced updates (only the latest state of each twin), and
  # is cut off with done() when an update waits more than 10 s.
  update @0 (changes :List(Change), coalesced :UInt64) -> stream;
  # coalesced: updates folded into these since the last call
  done @1 (reason :Text);
}

interface Subscription {
  # Dropping this capability ends the subscription.
  stats @0 () -> (delivered :UInt64, coalesced :UInt64);
  ended @1 () -> (reason :Text);
  # Returns when the node ends the subscription (e.g. "cut off: ..."). Unlike
  # Watcher.done, it is not queued behind the updates already sent to a slow
  # watcher, so a client waiting on it learns at once why updates stopped.
}

interface Reader {
  get @0 (id :Text) -> (twin :Twin);
  query @1 (query :Query) -> (twins :List(Twin), nextPageToken :Text, total :UInt32);
  history @2 (id :Text, channel :Text, fromMs :Int64, toMs :Int64, stepMs :Int64, limit :UInt32)
      -> (points :List(Point));
  # stepMs = 0: raw points; > 0: one point per step with min, max, mean, last.
  watch @3 (subtree :Text, watcher :Watcher) -> (subscription :Subscription);
  models @4 () -> (models :List(ModelInfo));
  echo @5 (value :UInt64) -> (value :UInt64);
  # Does nothing: the ceiling for benchmarks.
  alerts @6 (subtree :Text, states :List(AlertState), limit :UInt32) -> (alerts :List(Alert));
  # Alerts of twins in the subtree ("" = the token's scope), newest first;
  # states empty = any; limit 0 = 1000.
  status @7 () -> (status :NodeStatus);
  # The node's own counters (no twin data): any token may ask.
}

interface Writer {
  ingest @0 (samples :List(Sample)) -> (accepted :UInt64, rejected :List(Rejection));
  createTwin @1 (id :Text, kind :Text, parent :Text) -> ();
  deleteTwin @2 (id :Text) -> ();
  reparent @3 (id :Text, parent :Text) -> ();
  ackAlert @4 (id :UInt64, note :Text) -> (alert :Alert);
  # Acknowledges an open alert; records the token's name as who did. Refused
  # for an alert outside the token's scope ("no alert 12") or already cleared.
}

interface Admin {
  loadModels @0 (files :List(ModelFile)) -> (refused :List(Text), warnings :List(Text));
  audit @1 (sinceMs :Int64, token :Text, limit :UInt32) -> (entries :List(AuditEntry));
  # The audit trail, oldest first: the newest `limit` (0: 1000) entries
  # recorded at or after sinceMs, of every token or of `token` alone.
  # Needs an admin token.
  # refused: "file:line: reason"; when there is one, no file is taken.
  # warnings: what was taken but deserves a look, e.g. a new version whose
  # narrower range leaves twins holding values outside it.
  # ("machine v3: acme/plant-1/line-1/m1 temp_c = 130, outside [0, 120] C")
  struct ModelFile {
    name @0 :Text;
    text @1 :Text;
  }
}

# One call that changed something (or tried to), as the audit trail keeps it.
struct AuditEntry {
  seq @0 :UInt64;      # grows by one per entry
  timeMs @1 :Int64;    # when the node recorded it
  token @2 :Text;      # who: the token's name
  peer @3 :Text;       # from where: the client's address
  action @4 :Text;     # ingest, twin.create, twin.delete, twin.reparent, alert.ack, models.load
  target @5 :Text;     # the twin, alert or models it was about
  detail @6 :Text;     # what: counts, the new parent, a note
  outcome @7 :Text;    # ok, or the error the caller got
}
