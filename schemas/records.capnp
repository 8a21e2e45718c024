@0x889a40ffa0bbb6a5;
# Records that twinrt keeps in RocksDB. They evolve by adding fields at higher
# ordinals; no field is ever renumbered or removed, so a node reads the records
# an older node wrote.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("twinrt::records");

struct TwinMeta {
  # Identity and place of a twin in the rollup tree. Key: 'M' + twin id.
  id @0 :Text;          # path, e.g. acme/plant-1/line-2/press-7
  number @1 :UInt32;    # compact number used in state and history keys
  kind @2 :Text;        # model kind, e.g. machine
  parent @3 :Text;      # rollup parent id; empty for a root
}

struct ChannelValue {
  name @0 :Text;        # channel name as sent (movement channels carry /sku)
  value @1 :Float64;
  timestampMs @2 :Int64;
}

struct SourceSeq {
  channel @0 :Text;
  source @1 :Text;
  seq @2 :UInt64;       # highest sequence number applied from this source
}

struct Sum {
  key @0 :Text;         # power_kw, energy_kwh, stock/SKU-0001, count/on_road ...
  value @1 :Float64;
}

struct Contribution {
  # What a twin hands to its parent: the fold of itself and its children.
  sums @0 :List(Sum);
  healthOk @1 :Int64;
  healthWarning @2 :Int64;
  healthAlarm @3 :Int64;
  healthStale @4 :Int64;
  scoreSum @5 :Float64;
  scoreCount @6 :Int64;
  worstId @7 :Text;
  worstStatus @8 :UInt8; # 0 ok, 1 warning, 2 alarm, 3 stale
  latestTsMs @9 :Int64;  # newest sample time of any twin folded in
}

struct TwinState {
  # The whole durable state of one twin. Key: 'S' + number.
  version @0 :UInt64;         # bumped on every change; orders contributions
  modelVersion @1 :UInt32;    # model version last applied
  channels @2 :List(ChannelValue);
  sources @3 :List(SourceSeq);
  energyKwh @4 :Float64;      # integrated since the twin was created
  energyTodayKwh @5 :Float64;
  energyDay @6 :Int64;        # UTC day number energyTodayKwh belongs to
  lastPowerKw @7 :Float64;
  lastPowerMs @8 :Int64;
  lastCounterKwh @9 :Float64;
  stock @10 :List(Sum);       # units per SKU
  status @11 :UInt8;          # own status: 0 ok, 1 warning, 2 alarm, 3 stale
  score @12 :Float64;
  lastDataMs @13 :Int64;      # see dataClock
  contribution @14 :Contribution;
  offline @15 :Bool;          # marked offline by its adapter (device gone): health stale
  alerts @16 :List(AlertTrack); # per alert rule that is pending, raised or acknowledged
  analytics @17 :Analytics;   # trends, baselines and derived values
  createdMs @18 :Int64;       # wall clock at creation (dataClock 1; 0: not known)
  dataClock @19 :UInt8;       # what lastDataMs holds. 1: the newest sample time seen, 0 for
                              # none yet. 0 (records written before this field): the wall clock
                              # of the last sample's arrival, or of the twin's creation; read
                              # back as the newest channel time, the old value as createdMs.
}

struct Trend {
  # Exponentially weighted least-squares sums of one degradation channel;
  # time in hours relative to lastMs.
  channel @0 :Text;
  lastMs @1 :Int64;
  firstMs @2 :Int64;
  s0 @3 :Float64;
  st @4 :Float64;
  sy @5 :Float64;
  stt @6 :Float64;
  sty @7 :Float64;
  syy @8 :Float64;
  sww @9 :Float64;
  resets @10 :UInt32;
  held @11 :List(ChannelValue); # samples held back as suspect (name unused)
}

struct BaselineBucket {
  bucket @0 :UInt32;          # hour of day or of week; unused for the overall mean
  mean @1 :Float64;
  count @2 :UInt32;
  firstCycle @3 :Int64;
}

struct Baseline {
  buckets @0 :List(BaselineBucket);
  overall @1 :BaselineBucket;
}

struct ProductionReport {
  # One closed window; NaN marks a value not known.
  throughputPerH @0 :Float64;
  throughputBaselinePerH @1 :Float64;
  throughputDeviationPct @2 :Float64;
  energyPerUnitKwh @3 :Float64;
  energyPerUnitBaselineKwh @4 :Float64;
  idleEnergyKwhPerH @5 :Float64;
  idleEnergyBaselineKwhPerH @6 :Float64;
  energyWastePct @7 :Float64;
}

struct Contributor {
  # A production unit's child: where its open window started, and its rates
  # over its last closed window.
  id @0 :Text;
  anchorMs @1 :Int64;
  anchorParts @2 :Float64;
  anchorEnergyKwh @3 :Float64;
  anchorIdleEnergyKwh @4 :Float64;
  hasRate @5 :Bool;
  partsPerH @6 :Float64;
  energyKwhPerH @7 :Float64;
  idleEnergyKwhPerH @8 :Float64;
}

struct Analytics {
  trends @0 :List(Trend);
  windowStartMs @1 :Int64;    # where the open production window started
  contributors @2 :List(Contributor);
  throughput @3 :Baseline;
  busyEnergy @4 :Baseline;
  idleEnergy @5 :Baseline;
  hasLast @6 :Bool;
  last @7 :ProductionReport;
  parts @8 :Float64;
  lastPartsCounter @9 :Float64 = -1; # -1: no reading yet
  idleEnergyKwh @10 :Float64;
  derived @11 :List(Sum);     # rul_hours, throughput_deviation_pct ...
  warnings @12 :List(Text);
}

struct HistoryPoint {
  # One stored sample. Key: 'H' + number + channel + 0 + timestamp.
  value @0 :Float64;
  modelVersion @1 :UInt32;    # model version in force when it was recorded
  source @2 :Text;
  seq @3 :UInt64;
}

struct ModelText {
  # A model in force. Key: 'D' + kind + 0 + version.
  kind @0 :Text;
  version @1 :UInt32;
  text @2 :Text;
  loadedMs @3 :Int64;
}

struct AlertTrack {
  # One alert rule's state on one twin (part of TwinState).
  rule @0 :Text;
  phase @1 :UInt8;            # 1 pending, 2 raised, 3 acknowledged
  sinceMs @2 :Int64;          # pending: breach start; otherwise raise time
  alertId @3 :UInt64;
  value @4 :Float64;          # the value when raised
  ackedMs @5 :Int64;
  ackedBy @6 :Text;           # token name of who acknowledged
  note @7 :Text;
}

struct Alert {
  # An alert as listed to operators. Key: 'A' + id (8 bytes, big-endian).
  # Written in the same batch as the twin state that raised, acknowledged or
  # cleared it.
  id @0 :UInt64;
  twin @1 :Text;
  kind @2 :Text;
  rule @3 :Text;
  value @4 :Text;             # the named value the rule watches
  severity @5 :UInt8;         # 0 info, 1 warning, 2 critical
  state @6 :UInt8;            # 0 cleared, 2 raised, 3 acknowledged
  raisedMs @7 :Int64;
  raisedValue @8 :Float64;
  ackedMs @9 :Int64;
  ackedBy @10 :Text;
  note @11 :Text;
  clearedMs @12 :Int64;
  clearedValue @13 :Float64;
  message @14 :Text;
  event @15 :Text;            # alert | prediction
}

struct Event {
  # One routed event. Key: 'E' + id (8 bytes, big-endian); the id is given by
  # the committer, so ids grow in the order events became durable.
  id @0 :UInt64;
  type @1 :Text;              # alert.raised, prediction.cleared, health.changed ...
  twin @2 :Text;
  kind @3 :Text;
  severity @4 :UInt8;         # 0 info, 1 warning, 2 critical
  timeMs @5 :Int64;
  details @6 :Text;           # JSON object
}
