"""A real twinrt node for shell-level tests: started as a child process on a
free loopback port, driven with twinctl, killed with SIGKILL and restarted on
the same data directory."""

import json
import os
import signal
import socket
import subprocess
import time

# Seconds a test waits for something that must happen: a deadline that only a
# broken build reaches (on a loaded machine, under the sanitizers), never an
# expected speed. The same as tests/support.hpp's testing::patience.
PATIENCE = 120


def wait_until(done, what, timeout=PATIENCE, every=0.2):
    """Calls done() until it returns something true, and returns that; raises
    naming `what` once `timeout` seconds have passed."""
    deadline = time.time() + timeout
    while True:
        got = done()
        if got:
            return got
        if time.time() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(every)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, twinrt, twinctl, workdir, config_text, tokens):
        """config_text: TOML without [node] data_dir/models_dir and [rpc]
        (added here); tokens: list of (name, secret, role, scope)."""
        self.twinrt, self.twinctl, self.dir = twinrt, twinctl, workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc = None
        self.starts = 0
        rpc = f'[rpc]\naddress = "{self.address}"\n'
        for name, secret, role, scope in tokens:
            rpc += (f'[[rpc.tokens]]\nname = "{name}"\nsecret = "{secret}"\n'
                    f'role = "{role}"\nscope = "{scope}"\n')
        self.config = os.path.join(workdir, "node.toml")
        with open(self.config, "w") as f:
            f.write(f'[node]\ndata_dir = "{workdir}/data"\nmodels_dir = "{workdir}/models"\n'
                    f'threads = 2\nshards = 2\n' + config_text + "\n" + rpc)

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.dir, f"node-{self.starts}.log"), "w")
        self.proc = subprocess.Popen([self.twinrt, "node", "--config", self.config],
                                     stdout=log, stderr=subprocess.STDOUT)
        def serving():
            if self.proc.poll() is not None:
                raise RuntimeError("node exited at start; see " + log.name)
            return self.ctl("models", token=None, check=False).returncode == 0
        try:
            wait_until(serving, "the node serving RPC (see " + log.name + ")", every=0.1)
        except RuntimeError:
            self.stop()
            raise

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def ctl(self, *args, token="w", check=True):
        tok = token if token is not None else self.first_token
        env = dict(os.environ, TWINRT_ADDRESS=self.address, TWINRT_TOKEN=tok)
        r = subprocess.run([self.twinctl, *args], env=env, capture_output=True, text=True,
                           timeout=PATIENCE)
        if check and r.returncode != 0:
            raise RuntimeError(f"twinctl {' '.join(args)}: {r.stderr.strip()}")
        return r

    first_token = "w"

    def ctl_json(self, *args, token="w"):
        return json.loads(self.ctl(*args, "--json", token=token).stdout)

    def ingest(self, samples, token="w", retry_until=None):
        """Sends samples (dicts) with twinctl; with retry_until (a time), retries
        while the node is down or restarting."""
        path = os.path.join(self.dir, "batch.jsonl")
        with open(path, "w") as f:
            for s in samples:
                f.write(json.dumps(s) + "\n")
        while True:
            r = self.ctl("ingest", path, token=token, check=False)
            # "N accepted, M rejected": the node answered (a redelivery after a
            # lost answer is refused as duplicate_sequence, which is fine).
            if " accepted, " in r.stdout:
                return r
            if retry_until is None:
                raise RuntimeError("ingest failed: " + r.stderr.strip())
            if time.time() > retry_until:
                raise RuntimeError("ingest kept failing: " + r.stderr.strip())
            time.sleep(0.1)
