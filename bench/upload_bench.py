#!/usr/bin/env python3
"""Upload-to-ready and serving benchmark for `tailor serve` (issue 4's measurements).

Starts `tailor serve` on a data directory that already holds accounts (for example one filled
by `tailor accounts import` with `cargo xtask gen-accounts` output), creates an advertiser and
audiences over the admin and advertiser APIs, uploads a hashed list of ROWS rows (SHA-256 of
`user{n}@example.com` for random account numbers below ACCOUNTS, plus a share of non-users),
once as a single request and once as a 10-part session, and reports the time from the first
byte of the upload to the audience reading `ready`. Then it runs `wrk` against the serving
lookup for account ids of the population and prints its latency distribution.

Usage: python3 bench/upload_bench.py DATA_DIR ACCOUNTS [ROWS] [--wrk-rate 10000]
Requires: target/release/tailor built; wrk (apt-get install wrk) for the serving part.
"""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request

TAILOR = os.path.join(os.path.dirname(__file__), "..", "target", "release", "tailor")
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
        time.sleep(0.02)


def main():
    data_dir, accounts = sys.argv[1], int(sys.argv[2])
    rows = int(sys.argv[3]) if len(sys.argv) > 3 and not sys.argv[3].startswith("--") else 1_000_000
    rate = int(sys.argv[sys.argv.index("--wrk-rate") + 1]) if "--wrk-rate" in sys.argv else 10_000
    env = dict(os.environ, **TOKENS)
    server = subprocess.Popen([TAILOR, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    base = None
    for line in server.stdout:
        if line.startswith("listening on "):
            base = line.split()[-1]
        if line.startswith("ready"):
            break
    admin = TOKENS["TAILOR_ADMIN_TOKEN"]
    try:
        adv = request(base, "POST", "/v1/admin/advertisers", admin, {"name": "Bench", "entity": "Bench Ltd"})
        key = adv["api_key"]
        body = hashed_list(accounts, rows, 1)
        results = {}

        audience = request(base, "POST", "/v1/audiences", key, {"name": "single"})
        t0 = time.time()
        job = request(base, "POST", f"/v1/audiences/{audience['id']}/uploads?op=add", key, body, "text/csv")
        accepted = time.time() - t0
        ready = wait_ready(base, key, audience["id"])
        results["single request"] = (accepted, time.time() - t0, ready["size"])

        audience = request(base, "POST", "/v1/audiences", key, {"name": "session"})
        lines = body.split(b"\n")
        header, data = lines[0], [l for l in lines[1:] if l]
        t0 = time.time()
        session = request(base, "POST", f"/v1/audiences/{audience['id']}/upload-sessions?op=add", key, {})
        step = (len(data) + 9) // 10
        for n in range(10):
            part = b"\n".join([header] + data[n * step:(n + 1) * step]) + b"\n"
            request(base, "PUT", f"/v1/upload-sessions/{session['session_id']}/parts/{n + 1}", key, part, "text/csv")
        request(base, "POST", f"/v1/upload-sessions/{session['session_id']}/commit", key, {})
        accepted = time.time() - t0
        ready = wait_ready(base, key, audience["id"])
        results["10-part session"] = (accepted, time.time() - t0, ready["size"])

        rss = [l for l in open(f"/proc/{server.pid}/status") if l.startswith("VmHWM")][0].split()[1]
        for name, (accepted, total, size) in results.items():
            print(f"{name}: {rows} rows accepted after {accepted:.2f} s, audience ready after {total:.2f} s "
                  f"({rows / total / 1e6:.2f} M rows/s end to end), size {size}")
        print(f"server peak RSS: {int(rss) / 1024:.0f} MB")

        script = "/tmp/tailor-serving.lua"
        with open(script, "w") as f:
            f.write(f"""
math.randomseed(7)
request = function()
  local id = "acct-" .. math.random(0, {accounts - 1})
  return wrk.format("GET", "/v1/serving/accounts/" .. id .. "/audiences", {{["Authorization"] = "Bearer {TOKENS['TAILOR_SERVING_TOKEN']}"}})
end
""")
        out = subprocess.run(["wrk", "-t1", "-c16", "-d15s", "--latency", "-s", script, base], capture_output=True, text=True)
        print(out.stdout)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()


if __name__ == "__main__":
    main()
