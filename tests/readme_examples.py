#!/usr/bin/env python3
"""The README's examples, run as written against a demo.

usage: readme_examples.py README TWINRT TWINCTL MOSQUITTO

Which blocks run. Every ```sh block of the README runs, command by command,
unless the line before its fence is the HTML comment

    <!-- readme-test: skip REASON -->

(invisible on the rendered page; the test prints each skipped block and its
reason). Blocks of any other language (text, console, toml, json ...) are
not run. In a block that runs, a command (continued over lines ending in a
backslash; `#` starts a comment) is one of:
  - `export NAME=VALUE ...`: sets the environment of the commands after it,
    in this block and the later ones;
  - `twinctl ...` or `twinrt ...`, optionally after NAME=VALUE assignments:
    the binaries under test;
  - `mosquitto_pub ...`: against the broker this test started (`-p PORT`
    is added).
Anything else fails the test, so that a new example is either runnable or
marked with the reason why not. Each command must exit with status 0 and
print something on stdout, within 60 s.

Substitutions, in every command before it runs:
  127.0.0.1:7800  the demo's operator API (a free loopback port)
  ALERT_ID        the id of the oldest alert the demo holds raised (the
                  README says to take one from `twinctl alerts`); raised
                  during the simulated history, it does not clear meanwhile
The commands run in a scratch directory that holds the files they name:
samples.jsonl (one JSON-lines sample) and history.csv (a few CSV samples of
two days ago). The demo runs on a temporary data directory with an [mqtt]
section towards a Mosquitto this test started on another free loopback
port; both are killed on every exit path (and, through PR_SET_PDEATHSIG,
when this test itself is killed).

Before the examples: the demo opens its operator API only once its
simulated history is stored (README, "The two commands"). From the moment
the demo starts, this test asks `twinctl query --kind machine --where
'rul_hours < 72'` again and again; the first answer it gets must already
be the final one: the three machines the README shows. The demo runs with
`--seed 1`, so its simulated history is the same on every run (the third
machine's estimate is 62 h; with a seed from the clock it varies from about
60 to 70 h).
"""

import ctypes
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

PLACEHOLDER_ADDRESS = "127.0.0.1:7800"
SKIP = re.compile(r"^<!--\s*readme-test:\s*skip\s+(.+?)\s*-->$")
FENCE = re.compile(r"^```(\S*)\s*$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# The scenario's machines whose remaining useful life is under 72 h when the
# simulated history ends (adapters/twinrt/adapters/simulator.cpp, demo_scenario).
FAILING_MACHINES = ["acme/plant-2/line-4/machine-10", "acme/plant-1/line-1/machine-03",
                    "acme/plant-2/line-2/machine-05"]

failures = []


def fail(what):
    failures.append(what)
    print("FAIL: " + what, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    # The child gets SIGKILL when this test dies, however it dies.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def blocks(readme):
    """(line number, language, skip reason or None, [lines]) per fenced block."""
    out = []
    lines = open(readme).read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        prev = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        skip = SKIP.match(prev)
        body = []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        out.append((start + 1, lang, skip.group(1) if skip else None, body))
        i += 1
    return out


def commands(body, first_line):
    """(line number, command text) per command, continuation lines joined."""
    out, text, at = [], "", None
    for k, line in enumerate(body):
        if at is None:
            at = first_line + 1 + k
        if line.rstrip().endswith("\\"):
            text += line.rstrip()[:-1] + " "
            continue
        text += line
        if text.strip():
            out.append((at, text.strip()))
        text, at = "", None
    return out


class Demo:
    def __init__(self, twinrt, twinctl, mosquitto, work):
        self.twinrt, self.twinctl, self.work = twinrt, twinctl, work
        self.broker_port = free_port()
        self.address = f"127.0.0.1:{free_port()}"
        conf = os.path.join(work, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.broker_port} 127.0.0.1\nallow_anonymous true\n"
                    "persistence false\nmax_inflight_messages 1000\nmax_queued_messages 0\n")
        self.broker_log = open(os.path.join(work, "mosquitto.log"), "w")
        self.broker = subprocess.Popen([mosquitto, "-c", conf], stdout=self.broker_log,
                                       stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.broker_port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.broker.poll() is not None:
                    raise RuntimeError("mosquitto did not listen; see " + self.broker_log.name)
                time.sleep(0.1)
        # The README's MQTT routes ("MQTT JSON"), towards our broker.
        self.config = os.path.join(work, "demo.toml")
        with open(self.config, "w") as f:
            f.write(f'[mqtt]\nbroker = "127.0.0.1:{self.broker_port}"\n'
                    'client_id = "twinrt-readme-demo"\n'
                    '[[mqtt.routes]]\n'
                    'topic = "plants/{plant}/lines/{line}/machines/{machine}/telemetry"\n'
                    'twin = "acme/{plant}/{line}/{machine}"\n'
                    '[[mqtt.routes]]\n'
                    'topic = "warehouses/{warehouse}/movements"\n'
                    'twin = "acme/{warehouse}"\n')
        self.log_path = os.path.join(work, "demo.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [twinrt, "demo", "--seed", "1", "--data-dir", os.path.join(work, "data"),
             "--config", self.config,
             "--rpc-address", self.address, "--metrics-address", f"127.0.0.1:{free_port()}"],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        for p in (self.proc, self.broker):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def tail(self):
        with open(self.log_path) as f:
            return "".join(f.readlines()[-30:])


def twinctl(demo, *args, token="demo-viewer", timeout=30):
    return subprocess.run([demo.twinctl, "--address", demo.address, "--token", token, *args],
                          capture_output=True, text=True, timeout=timeout)


def first_answer_is_final(demo):
    """Asks the README's question from the demo's start on; the first answer
    that comes must already name the scenario's three machines."""
    query = ["--json", "query", "--kind", "machine", "--where", "rul_hours < 72",
             "--sort", "rul_hours"]
    # Minutes under the sanitizers on a loaded machine; the wait ends at once
    # if the demo exits.
    deadline = time.time() + 600
    refused = 0
    while time.time() < deadline:
        if not demo.alive():
            fail("the demo exited before its operator API opened:\n" + demo.tail())
            return False
        r = twinctl(demo, *query)
        if r.returncode != 0:
            refused += 1
            time.sleep(0.05)
            continue
        ids = [t["id"] for t in json.loads(r.stdout)["twins"]]
        with open(demo.log_path) as f:
            log = f.read()
        print(f"first answer after {refused} refused attempts: {ids}", flush=True)
        if "history 100%" not in log:
            fail("the operator API answered before the demo printed 'history 100%'")
        if ids != FAILING_MACHINES:
            fail(f"first answer {ids}, expected the final {FAILING_MACHINES}")
        return True
    fail("the demo's operator API did not open within 600 s:\n" + demo.tail())
    return False


def oldest_raised_alert(demo):
    r = twinctl(demo, "--json", "alerts", "--state", "raised")
    if r.returncode != 0 or not json.loads(r.stdout):
        return None
    return str(json.loads(r.stdout)[-1]["id"])


def run_examples(readme, demo, scratch):
    env = dict(os.environ)
    env.pop("TWINRT_ADDRESS", None)
    env.pop("TWINRT_TOKEN", None)
    ran = skipped = 0
    for line, lang, skip, body in blocks(readme):
        if lang != "sh":
            continue
        if skip:
            skipped += 1
            print(f"README.md:{line}: skipped ({skip}): {body[0].strip() if body else ''}",
                  flush=True)
            continue
        for at, text in commands(body, line):
            try:
                words = shlex.split(text, comments=True)
            except ValueError as e:
                fail(f"README.md:{at}: cannot split '{text}': {e}")
                continue
            if not words:
                continue
            words = [w.replace(PLACEHOLDER_ADDRESS, demo.address) for w in words]
            if any("ALERT_ID" in w for w in words):
                alert = oldest_raised_alert(demo)
                if alert is None:
                    fail(f"README.md:{at}: the demo has no raised alert for ALERT_ID")
                    continue
                words = [w.replace("ALERT_ID", alert) for w in words]
            text = shlex.join(words)
            if words[0] == "export":
                for w in words[1:]:
                    name, _, value = w.partition("=")
                    env[name] = value
                continue
            cmd_env = dict(env)
            while words and ASSIGNMENT.match(words[0]):
                name, _, value = words.pop(0).partition("=")
                cmd_env[name] = value
            program = words[0] if words else ""
            if program == "twinctl":
                argv = [demo.twinctl] + words[1:]
            elif program == "twinrt":
                argv = [demo.twinrt] + words[1:]
            elif program == "mosquitto_pub":
                argv = words + ["-h", "127.0.0.1", "-p", str(demo.broker_port)]
            else:
                fail(f"README.md:{at}: '{program}' is not a command this test runs; "
                     "mark the block <!-- readme-test: skip REASON -->")
                continue
            ran += 1
            try:
                r = subprocess.run(argv, env=cmd_env, cwd=scratch, capture_output=True,
                                   text=True, timeout=60)
            except subprocess.TimeoutExpired:
                fail(f"README.md:{at}: `{text}` did not finish within 60 s")
                continue
            shown = f"README.md:{at}: `{text}` -> {r.returncode}"
            if r.returncode != 0:
                fail(f"{shown}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}")
            elif program != "mosquitto_pub" and not r.stdout.strip():
                fail(f"{shown}: printed nothing\nstderr: {r.stderr[-2000:]}")
            else:
                print(shown, flush=True)
    print(f"{ran} commands run, {skipped} blocks skipped", flush=True)
    if ran < 20:
        fail(f"only {ran} commands ran: are the README's blocks still ```sh?")


def mqtt_sample_arrived(demo):
    """The README's MQTT example publishes vibration 3.2 without a ts: it is
    in the machine's history at the time the node received it."""
    deadline = time.time() + 60
    while time.time() < deadline:
        r = twinctl(demo, "--json", "history", "acme/plant-1/line-2/machine-07",
                    "vibration_mm_s", "--since", "5m")
        if r.returncode == 0 and any(p["value"] == 3.2 for p in json.loads(r.stdout)):
            return
        time.sleep(0.2)
    fail("the README's MQTT message (vibration_mm_s 3.2) never reached the history")


def main():
    readme, twinrt, twinctl_bin, mosquitto = (os.path.abspath(a) for a in sys.argv[1:5])
    with tempfile.TemporaryDirectory(prefix="readme-examples-") as work:
        scratch = os.path.join(work, "cwd")
        os.mkdir(scratch)
        with open(os.path.join(scratch, "samples.jsonl"), "w") as f:
            f.write('{"twin":"acme/warehouse-1","channel":"receipt/SKU-0001",'
                    '"ts":1764000000000,"value":12,"source":"erp","seq":17}\n')
        two_days_ago = int(time.time() * 1000) - 2 * 86_400_000
        with open(os.path.join(scratch, "history.csv"), "w") as f:
            f.write("twin,channel,ts,value\n")
            for i in range(20):
                f.write(f"acme/plant-1/line-1/machine-01,temperature_c,"
                        f"{two_days_ago + i * 1000},{60 + i % 5}\n")
        demo = Demo(twinrt, twinctl_bin, mosquitto, work)
        try:
            if first_answer_is_final(demo):
                run_examples(readme, demo, scratch)
                mqtt_sample_arrived(demo)
                if not demo.alive():
                    fail("the demo died during the examples:\n" + demo.tail())
        finally:
            demo.stop()
    if failures:
        print(f"{len(failures)} failures", flush=True)
        return 1
    print("README examples: ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
