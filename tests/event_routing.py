#!/usr/bin/env python3
"""Event routing end to end: a real node routes alert events to three webhook
receivers on loopback: one fast; one slow, which answers nothing until the fast
one holds every event and then takes 0.3 s a request; one down until the fast
one holds the events of the first rounds. The node is killed with SIGKILL in
the middle and restarted. At the end every receiver holds every event
(duplicates dropped by id), in order per twin: neither the down nor the slow
receiver held up the fast one.

A fourth sink publishes the same events to a real Mosquitto broker (QoS 1);
a subscriber must see every one of them too.

usage: event_routing.py TWINRT TWINCTL [MOSQUITTO]"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from node_harness import PATIENCE, Node, free_port, wait_until  # noqa: E402

TWINS = 10
ROUNDS = 20  # each round flips every twin's temperature across the alert: one event per twin
KILL_AFTER_ROUND = 12
DOWN_UNTIL_ROUND = 8  # the down receiver comes up after this round...
EARLY_ROUNDS = 3      # ...and only once the fast one holds the events of these rounds


class Receiver:
    def __init__(self, name, delay_s=0.0, gate=None):
        """gate: a threading.Event each request waits for before it is answered."""
        self.name, self.delay_s, self.gate = name, delay_s, gate
        self.lock = threading.Lock()
        self.got = []  # (receipt time, event)
        self.requests = 0
        self.started_at = None
        self.server = self._bound_server()
        # The port is held from now on (bound, not yet listening: a connection
        # is refused as by a receiver that is down), so no other process can
        # take it before start().
        self.port = self.server.server_address[1]

    def _bound_server(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.gate is not None:
                    outer.gate.wait()
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                now = time.time()
                events = json.loads(body)["events"]
                with outer.lock:
                    outer.requests += 1
                    outer.got.extend((now, e) for e in events)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # the node going away mid-connection (SIGKILL) is expected

        server = Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
        server.server_bind()
        return server

    def start(self):
        self.server.server_activate()
        self.started_at = time.time()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def first_receipts(self):
        """id -> (time of first receipt, event), and the order of first receipts."""
        with self.lock:
            got = list(self.got)
        first, order = {}, []
        for t, e in got:
            if e["id"] not in first:
                first[e["id"]] = (t, e)
                order.append(e)
        return first, order

    def stop(self):
        if self.gate is not None:
            self.gate.set()
        if self.started_at is not None:
            self.server.shutdown()  # waits for serve_forever, which only start() runs
        self.server.server_close()


MODEL = """kind = "press"
version = 1
parents = []

[channels.temperature_c]
unit = "degC"
type = "gauge"
min = 0
max = 500

[[alerts]]
name = "overheat"
value = "temperature_c"
above = 100
clear_at = 90
severity = "critical"
"""


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    twinrt, twinctl = sys.argv[1], sys.argv[2]
    mosquitto = sys.argv[3] if len(sys.argv) > 3 else "/usr/sbin/mosquitto"
    work = tempfile.mkdtemp(prefix="twinrt-routing-")
    broker_port = free_port()
    with open(os.path.join(work, "mosquitto.conf"), "w") as f:
        f.write(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    os.makedirs(os.path.join(work, "models"))
    with open(os.path.join(work, "models", "press.toml"), "w") as f:
        f.write(MODEL)
    slow_gate = threading.Event()
    fast = Receiver("fast")
    slow = Receiver("slow", delay_s=0.3, gate=slow_gate)
    down = Receiver("down")
    sinks = ""
    for r in (fast, slow, down):
        sinks += (f'[[sinks]]\nname = "{r.name}"\ntype = "webhook"\n'
                  f'url = "http://127.0.0.1:{r.port}/events"\ntimeout_ms = 3000\n'
                  f'backoff_min_ms = 100\nbackoff_max_ms = 800\nmax_batch = 4\n'
                  f'[[routes]]\nsink = "{r.name}"\ntypes = ["alert"]\n')
    sinks += (f'[[sinks]]\nname = "bus"\ntype = "mqtt"\nurl = "mqtt://127.0.0.1:{broker_port}"\n'
              f'topic = "plant/events"\n[[routes]]\nsink = "bus"\ntypes = ["alert"]\n')
    node = Node(twinrt, twinctl, work, "[twins]\nsweep_interval_ms = 200\n" + sinks,
                [("writer", "w", "write", "")])
    bus_out = open(os.path.join(work, "bus.jsonl"), "w")
    broker = subprocess.Popen([mosquitto, "-c", os.path.join(work, "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subscriber = None
    try:
        def broker_up():
            try:
                socket.create_connection(("127.0.0.1", broker_port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(broker_up, "the broker listening")
        subscriber = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker_port),
                                       "-q", "1", "-t", "plant/events"], stdout=bus_out)

        def bus():
            bus_out.flush()
            with open(bus_out.name) as f:
                return [json.loads(line) for line in f if line.strip()]

        def subscribed():  # a probe, published until the subscriber shows it
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker_port), "-q", "1",
                            "-t", "plant/events", "-m", '{"probe": true}'], check=True)
            return any(e.get("probe") for e in bus())
        wait_until(subscribed, "mosquitto_sub subscribed", every=0.5)
        fast.start()
        slow.start()
        node.start()
        route(node, fast, slow, down, slow_gate, bus)
    finally:
        node.stop()
        for r in (fast, slow, down):
            r.stop()
        if subscriber:
            subscriber.terminate()
            subscriber.wait()
        broker.terminate()
        broker.wait()
    shutil.rmtree(work, ignore_errors=True)  # kept when the test fails
    print("PASS")


def route(node, fast, slow, down, slow_gate, bus):
    """Produces the events and checks what each receiver and the bus got."""
    for i in range(TWINS):
        node.ctl("twin", "create", f"plant/press-{i:02d}", "--kind", "press")
    t0 = time.time()
    early_done = None
    expected = TWINS * ROUNDS
    for rnd in range(ROUNDS):
        value = 120 if rnd % 2 == 0 else 50
        samples = [{"twin": f"plant/press-{i:02d}", "channel": "temperature_c",
                    "value": value, "source": "test", "seq": rnd + 1} for i in range(TWINS)]
        node.ingest(samples, retry_until=time.time() + PATIENCE)
        if rnd == EARLY_ROUNDS - 1:
            early_done = time.time()
        if rnd == DOWN_UNTIL_ROUND:
            # Not held up by the down receiver: the fast one gets the early
            # events while the down one is still down.
            early_ids = set(range(1, EARLY_ROUNDS * TWINS + 1))
            wait_until(lambda: early_ids <= set(fast.first_receipts()[0]),
                       f"the fast receiver holding events 1..{len(early_ids)} "
                       "while another receiver is down")
            down.start()
        if rnd == KILL_AFTER_ROUND:
            node.kill()
            node.start()
        time.sleep(0.15)
    produced = time.time() - t0
    # Not held up by the slow receiver: the fast one gets every event while
    # the slow one answers nothing; then the slow one catches up.
    try:
        wait_until(lambda: len(fast.first_receipts()[0]) >= expected,
                   f"the fast receiver holding all {expected} events while another hangs")
    finally:
        slow_gate.set()
    try:
        wait_until(lambda: all(len(r.first_receipts()[0]) >= expected for r in (slow, down)),
                   "every receiver holding every event")
    except RuntimeError as e:
        print(e)  # the checks below say what is missing
    status = {r.name: len(r.first_receipts()[0]) for r in (fast, slow, down)}
    print(f"events produced in {produced:.1f} s; unique events received: {status}")

    for r in (fast, slow, down):
        first, order = r.first_receipts()
        ids = sorted(first)
        if ids != list(range(1, expected + 1)):
            missing = sorted(set(range(1, expected + 1)) - set(ids))
            fail(f"{r.name}: expected ids 1..{expected}, missing {missing[:20]}, "
                 f"extra {sorted(set(ids) - set(range(1, expected + 1)))[:20]}")
        dups = len(r.got) - len(first)
        per_twin = {}
        for e in order:
            per_twin.setdefault(e["twin"], []).append(e)
        for twin, evs in per_twin.items():
            if [e["id"] for e in evs] != sorted(e["id"] for e in evs):
                fail(f"{r.name}: events of {twin} out of order")
            types = [e["type"] for e in evs]
            want = ["alert.raised" if k % 2 == 0 else "alert.cleared" for k in range(ROUNDS)]
            if types != want:
                fail(f"{r.name}: {twin} got {types}, want raised/cleared alternating")
            if len({e['details']['alert_id'] for e in evs if e['type'] == 'alert.raised'}) != ROUNDS // 2:
                fail(f"{r.name}: {twin}: each raise must carry a new alert id")
        print(f"{r.name}: {len(first)} events in order, {dups} duplicates dropped, "
              f"{r.requests} requests")

    ffirst, _ = fast.first_receipts()
    sfirst, _ = slow.first_receipts()
    dfirst, _ = down.first_receipts()
    # What was produced before the down receiver came up, the fast one had
    # before it came up (the wait above made sure of it).
    early = [i for i, (t, e) in ffirst.items() if e["time_ms"] / 1000.0 <= early_done]
    if not early:
        fail("no event was produced while the down receiver was down")
    late = [i for i in early if ffirst[i][0] > down.started_at]
    if late:
        fail(f"fast receiver got {len(late)} events only after the down one came up")
    lag = lambda first: max(t - e["time_ms"] / 1000.0 for t, e in first.values())
    print(f"max delay after production: fast {lag(ffirst):.2f} s, slow {lag(sfirst):.2f} s, "
          f"down {lag(dfirst):.2f} s; {len(early)} events produced while 'down' was down, "
          f"all at 'fast' before it came up")

    # The MQTT sink: every event published (QoS 1), in order per twin.
    def events_on_bus():
        return [e for e in bus() if "id" in e]
    try:
        wait_until(lambda: len({e["id"] for e in events_on_bus()}) >= expected,
                   "the MQTT subscriber holding every event")
    except RuntimeError as e:
        print(e)
    bus_events = events_on_bus()
    ids = sorted({e["id"] for e in bus_events})
    if ids != list(range(1, expected + 1)):
        fail(f"mqtt subscriber got {len(ids)} of {expected} events")
    seen, per_twin = set(), {}
    for e in bus_events:
        if e["id"] not in seen:
            seen.add(e["id"])
            per_twin.setdefault(e["twin"], []).append(e["id"])
    if any(v != sorted(v) for v in per_twin.values()):
        fail("mqtt: events of a twin out of order")
    print(f"mqtt: {len(ids)} events, {len(bus_events) - len(ids)} duplicates dropped")


if __name__ == "__main__":
    main()
