#!/usr/bin/env python3
"""Upload-to-ready, serving and restart benchmark for `tailor serve` (issue 4's measurements).

Starts `tailor serve` on a data directory that already holds accounts (filled by
`tailor accounts import` with `cargo xtask gen-accounts` output: account `acct-N` has the email
`user{N}@example.com`), creates an advertiser over the admin API, and for each of REPEAT rounds
uploads a hashed CSV list of ROWS rows (SHA-256 of `user{n}@example.com` for random n below
ACCOUNTS, plus a share of non-users) into a new audience, once as a single request and once as
a 10-part session. It reports the time from the first byte of the upload to the audience
reading `ready`, and the median over the rounds (the server uses both cores).

Then it loads the serving lookup from a separate process at a fixed rate with `oha` (random
account ids of the population), and `/healthz` the same way as the floor of what the machine's
loopback and scheduler allow, and reports p50/p99/p99.9 (oha corrects for coordinated
omission). With `--pin` the server's threads are moved to core 0 and the load generator runs on
core 1 for this part. Finally it stops the server (SIGTERM), starts it again and
reports the time to its `ready:` line (index rebuilt, audiences' serving map loaded), and the
server's peak RSS in each life.

Usage: python3 bench/upload_bench.py DATA_DIR ACCOUNTS [--rows 1000000] [--repeat 3]
                                     [--qps 10000] [--seconds 15] [--pin]
Requires: target/release/tailor (cargo build --release); oha (cargo install oha) for serving.
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import threading
import time
import urllib.request

TAILOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "tailor")
TOKENS = {"TAILOR_ADMIN_TOKEN": "a" * 32, "TAILOR_SERVING_TOKEN": "s" * 32, "TAILOR_COMPLIANCE_TOKEN": "c" * 32}


def request(base, method, path, token, body=None, content_type="application/json"):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read() or b"null")


def hashed_list(accounts, rows, seed):
    """A hashed CSV list: 83% of rows are users' emails (of which, with the generator's
    consent mix, a bit more than half are eligible), the rest non-users."""
    rng = random.Random(seed)
    lines = ["email_sha256"]
    for i in range(rows):
        if rng.random() < 0.83:
            email = f"user{rng.randrange(accounts)}@example.com"
        else:
            email = f"stranger{seed}-{i}@example.net"
        lines.append(hashlib.sha256(email.encode()).hexdigest())
    return ("\n".join(lines) + "\n").encode()


def wait_ready(base, key, audience_id):
    while True:
        audience = request(base, "GET", f"/v1/audiences/{audience_id}", key)
        if audience["status"] not in ("processing", "empty"):
            return audience
        time.sleep(0.01)


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, data_dir, url=None, options=()):
        """`tailor serve` on `data_dir` (on the PostgreSQL database at `url` if given, else
        at TAILOR_DATABASE_URL if set), with extra `options`; returns once it is ready."""
        env = dict(os.environ, **TOKENS)
        if url:
            env["TAILOR_DATABASE_URL"] = url
        command = [TAILOR, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0", *options]
        started = time.time()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        env=env, text=True)
        self.base = None
        for line in self.process.stdout:
            if line.startswith("listening on "):
                self.base = line.split()[-1]
            if line.startswith("ready"):
                break
        self.ready_after = time.time() - started

    def stop(self):
        rss = peak_rss_mb(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        self.process.wait()
        return rss


def upload_single(base, key, body, name):
    audience = request(base, "POST", "/v1/audiences", key, {"name": name})
    t0 = time.time()
    request(base, "POST", f"/v1/audiences/{audience['id']}/uploads?op=add", key, body, "text/csv")
    accepted = time.time() - t0
    ready = wait_ready(base, key, audience["id"])
    return accepted, time.time() - t0, ready["size"]


def upload_session(base, key, body, name):
    audience = request(base, "POST", "/v1/audiences", key, {"name": name})
    lines = body.split(b"\n")
    header, data = lines[0], [line for line in lines[1:] if line]
    parts = []
    step = (len(data) + 9) // 10
    for n in range(10):
        parts.append(b"\n".join([header] + data[n * step:(n + 1) * step]) + b"\n")
    t0 = time.time()
    session = request(base, "POST", f"/v1/audiences/{audience['id']}/upload-sessions?op=add", key, {})
    for n, part in enumerate(parts):
        request(base, "PUT", f"/v1/upload-sessions/{session['session_id']}/parts/{n + 1}", key, part, "text/csv")
    request(base, "POST", f"/v1/upload-sessions/{session['session_id']}/commit", key, {})
    accepted = time.time() - t0
    ready = wait_ready(base, key, audience["id"])
    return accepted, time.time() - t0, ready["size"]


def oha(base, url_regex, qps, seconds, pin, token=None, during=None):
    """Runs oha at a fixed rate, and `during()` meanwhile if given; returns (requests/s, p50,
    p99, p99.9 in ms, non-2xx)."""
    command = ["oha", "-z", f"{seconds}s", "-q", str(qps), "-c", "8", "--no-tui", "--output-format", "json", "--latency-correction",
               "--rand-regex-url", base + url_regex]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    if pin:
        command = ["taskset", "-c", "1"] + command
    load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if during:
        time.sleep(1)
        during()
    out, err = load.communicate()
    if load.returncode != 0:
        raise RuntimeError(f"oha failed: {err}")
    report = json.loads(out)
    percentiles = report["latencyPercentiles"]
    codes = report.get("statusCodeDistribution", {})
    non_2xx = sum(n for code, n in codes.items() if not code.startswith("2"))
    return (report["summary"]["requestsPerSec"], percentiles["p50"] * 1e3, percentiles["p99"] * 1e3,
            percentiles["p99.9"] * 1e3, non_2xx)


class Probe(threading.Thread):
    """Times serving answers one at a time, every 5 ms, until `finish`."""

    def __init__(self, base):
        super().__init__()
        host, port = base.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port))
        self.samples = []
        self.stopped = False

    def run(self):
        headers = {"Authorization": f"Bearer {TOKENS['TAILOR_SERVING_TOKEN']}"}
        n = 0
        while not self.stopped:
            n += 1
            started = time.perf_counter()
            self.connection.request("GET", f"/v1/serving/accounts/acct-{1_000_000 + n}/audiences", headers=headers)
            self.connection.getresponse().read()
            self.samples.append((time.perf_counter() - started) * 1e3)
            time.sleep(0.005)

    def finish(self):
        self.stopped = True
        self.join()

    def percentile(self, p):
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("accounts", type=int)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--qps", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--pin", action="store_true")
    args = parser.parse_args()

    server = Server(args.data_dir)
    print(f"started: ready after {server.ready_after:.2f} s")
    admin = TOKENS["TAILOR_ADMIN_TOKEN"]
    try:
        key = request(server.base, "POST", "/v1/admin/advertisers", admin,
                      {"name": "Bench", "entity": "Bench Ltd"})["api_key"]
        results = {"single request": [], "10-part session": []}
        for round_no in range(args.repeat):
            body = hashed_list(args.accounts, args.rows, round_no + 1)
            for name, upload in (("single request", upload_single), ("10-part session", upload_session)):
                accepted, total, size = upload(server.base, key, body, f"{name} {round_no}")
                results[name].append(total)
                print(f"{name}, round {round_no + 1}: {args.rows} rows accepted after {accepted:.2f} s, "
                      f"ready after {total:.2f} s ({args.rows / total / 1e6:.2f} M rows/s), size {size}")
        for name, totals in results.items():
            median = statistics.median(totals)
            print(f"{name}: median {median:.2f} s to ready ({args.rows / median / 1e6:.2f} M rows/s end to end), "
                  f"runs {', '.join(f'{t:.2f}' for t in totals)}")

        if shutil.which("oha"):
            if args.pin:
                subprocess.run(["taskset", "-a", "-p", "-c", "0", str(server.process.pid)],
                               check=True, capture_output=True)
            # Uniformly random ids of the longest length below ACCOUNTS (acct-1000000 to
            # acct-9999999 for ten million: 90% of the population).
            serving = "/v1/serving/accounts/acct-[1-9][0-9]{%d}/audiences" % (len(str(args.accounts - 1)) - 1)
            # Let the last job's write-ahead-log checkpoint finish: this part is at rest.
            time.sleep(5)
            extra = hashed_list(args.accounts, args.rows, 99)

            def during_upload():
                # A probe of its own, one request every 5 ms on one connection, times answers
                # end to end while the job lands: unlike oha's corrected figures, it does not
                # count the load generator's own lateness when it is short of CPU.
                probe = Probe(server.base)
                probe.start()
                total = upload_single(server.base, key, extra, "during")[1]
                probe.finish()
                print(f"  (upload during the load: ready after {total:.2f} s; probe: "
                      f"{len(probe.samples)} answers, p50 {probe.percentile(50):.3f} ms, "
                      f"p99 {probe.percentile(99):.3f} ms, max {probe.percentile(100):.3f} ms)")
            serving_token = TOKENS["TAILOR_SERVING_TOKEN"]
            for label, url, token, during in (
                    ("serving lookup", serving, serving_token, None),
                    ("/healthz (floor)", "/healthz", None, None),
                    ("serving lookup while a 1M-row upload lands", serving, serving_token, during_upload)):
                rps, p50, p99, p999, bad = oha(server.base, url, args.qps, args.seconds, args.pin, token, during)
                print(f"{label} at {args.qps}/s{' pinned' if args.pin else ''}: {rps:.0f} req/s, "
                      f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, p99.9 {p999:.3f} ms, non-2xx {bad}")
        else:
            print("oha not found (cargo install oha): serving latency not measured")
    finally:
        rss = server.stop()
    print(f"server peak RSS: {rss:.0f} MB")

    server = Server(args.data_dir)
    print(f"restart: ready after {server.ready_after:.2f} s (index and serving map rebuilt)")
    print(f"server peak RSS after restart: {server.stop():.0f} MB")


if __name__ == "__main__":
    main()
