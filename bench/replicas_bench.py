#!/usr/bin/env python3
"""Serving latency with several `tailor serve` replicas on one PostgreSQL (issue 7).

For each setup it starts the server(s), creates an advertiser and an audience, uploads a hashed
list of every account's email and waits for the audience to be ready, then loads the serving
lookup with `wrk` (random account ids of the population, closed loop: CONNECTIONS connections,
SECONDS seconds) and reports requests/s and wrk's latency percentiles:

- `sqlite`: one server on the data directory's SQLite store (the embedded default);
- `pg`: one server on PostgreSQL;
- `pg-2`: two servers on the same database, one wrk on each at once (half the connections
  each), reported per replica and summed;
- `pg-2-writes`: the same while a third process withdraws and grants consent through replica
  one at WRITES/s, so that replica two's answers wait for each write to be applied there (the
  reads catch up to the change feed's head before answering);
- `pg-2-lag`: a job of every account applied through replica one (a `replace`, so the
  audience keeps its decision), then the time replica two's first answer takes: it waits
  until replica two has reloaded the audience's members (three rounds);
- `pg-2-during-job`: replica one runs a `replace` of every account while a probe asks it one
  serving question every 5 ms, once alone and once while replica two takes WRITES consent
  writes/s: replica one applies replica two's writes only between its jobs, and its answers
  wait for them.

The data directory must already hold the accounts for `sqlite` (`tailor accounts import`), and
the database URL must name a database holding the same accounts (imported with
`--database-url`); both directories must hold the same keys. Accounts come from
`cargo xtask gen-accounts` (account `acct-N`, email `user{N}@example.com`).

Usage: python3 bench/replicas_bench.py SQLITE_DIR PG_DIR DATABASE_URL ACCOUNTS
                                       [--seconds 15] [--connections 16] [--writes 20]
Requires target/release/tailor (cargo build --release) and wrk (Debian's package).
"""

import argparse
import hashlib
import contextlib
import os
import random
import re
import subprocess
import tempfile
import threading
import time

import upload_bench
from upload_bench import TOKENS, request

MARKETING = "marketing.advertising.third_party.targeted"


def Server(data_dir, url=None):
    """`tailor serve` with a threshold of 2 (upload_bench's server)."""
    return upload_bench.Server(data_dir, url, ("--min-audience-size", "2"))


@contextlib.contextmanager
def servers(data_dir, url, n):
    """`n` servers on one store, stopped on the way out."""
    started = []
    try:
        for _ in range(n):
            started.append(Server(data_dir, url))
        yield started
    finally:
        for server in started:
            server.stop()


def upload_all(base, key, audience_id, accounts, op):
    """Uploads every account's email to the audience with `op`; returns when it is ready."""
    body = "email_sha256\n" + "".join(
        hashlib.sha256(f"user{n}@example.com".encode()).hexdigest() + "\n" for n in range(accounts))
    request(base, "POST", f"/v1/audiences/{audience_id}/uploads?op={op}", key, body.encode(), "text/csv")
    while request(base, "GET", f"/v1/audiences/{audience_id}", key)["status"] in ("processing", "empty"):
        time.sleep(0.01)


def fill(base, accounts):
    """An advertiser and an audience holding every account's email; returns (its key, the
    audience's id) when ready."""
    admin = TOKENS["TAILOR_ADMIN_TOKEN"]
    key = request(base, "POST", "/v1/admin/advertisers", admin, {"name": "Bench", "entity": "Bench Ltd"})["api_key"]
    audience = request(base, "POST", "/v1/audiences", key, {"name": f"all {time.time()}"})
    upload_all(base, key, audience["id"], accounts, "add")
    return key, audience["id"]


LUA = """
math.randomseed(%d)
wrk.headers["Authorization"] = "Bearer %s"
request = function()
  return wrk.format("GET", "/v1/serving/accounts/acct-" .. math.random(0, %d) .. "/audiences")
end
"""


def wrk(base, accounts, seconds, connections, seed):
    """Starts wrk against `base`; returns the process (its output is parsed by `parse`)."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(LUA % (seed, TOKENS["TAILOR_SERVING_TOKEN"], accounts - 1))
    script.close()
    return subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, base],
                            stdout=subprocess.PIPE, text=True)


def to_ms(value):
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse(output):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    percentiles = {p: to_ms(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", output, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return rps, percentiles, int(bad.group(1)) if bad else 0


def writer(base, accounts, rate, stop):
    """Withdraws and grants consent for random accounts at `rate` per second until `stop`."""
    admin = TOKENS["TAILOR_ADMIN_TOKEN"]
    rng = random.Random(7)
    done = 0
    while not stop.is_set():
        n = rng.randrange(accounts)
        state = "withdrawn" if done % 2 == 0 else "granted"
        request(base, "POST", f"/v1/admin/accounts/acct-{n}/consents", admin,
                {"purpose": MARKETING, "state": state, "source": "settings", "at": "2026-11-01T00:00:00Z"})
        done += 1
        time.sleep(1 / rate)
    return done


def probe_during(base, key, audience, accounts, writes_base, rate):
    """Times one serving answer every 5 ms on `base` while a `replace` of every account runs
    there (and, if `writes_base`, consent writes at `rate`/s through it); returns a summary."""
    samples = []
    stop = threading.Event()

    def probe():
        rng = random.Random(3)
        while not stop.is_set():
            started = time.perf_counter()
            request(base, "GET", f"/v1/serving/accounts/acct-{rng.randrange(accounts)}/audiences",
                    TOKENS["TAILOR_SERVING_TOKEN"])
            samples.append((time.perf_counter() - started) * 1e3)
            time.sleep(0.005)

    threads = [threading.Thread(target=probe)]
    if writes_base:
        threads.append(threading.Thread(target=lambda: writer(writes_base, accounts, rate, stop)))
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    t0 = time.time()
    upload_all(base, key, audience, accounts, "replace")
    took = time.time() - t0
    stop.set()
    for thread in threads:
        thread.join()
    ordered = sorted(samples)
    pick = lambda p: ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]
    return (f"replace ready after {took:.2f} s; {len(samples)} answers, p50 {pick(50):.2f} ms, "
            f"p99 {pick(99):.1f} ms, max {pick(100):.1f} ms")


def report(label, results):
    total = sum(r[0] for r in results)
    for i, (rps, p, bad) in enumerate(results):
        name = f"{label} (replica {i + 1})" if len(results) > 1 else label
        print(f"{name}: {rps:.0f} req/s, p50 {p['50']:.3f} ms, p90 {p['90']:.3f} ms, p99 {p['99']:.3f} ms, non-2xx {bad}")
    if len(results) > 1:
        print(f"{label}: {total:.0f} req/s in all")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sqlite_dir")
    parser.add_argument("pg_dir")
    parser.add_argument("database_url")
    parser.add_argument("accounts", type=int)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--only", default="sqlite,pg,pg-2,pg-2-writes")
    args = parser.parse_args()
    only = args.only.split(",")

    def measure(bases, label, during=None):
        time.sleep(2)
        share = max(1, args.connections // len(bases))
        runs = [wrk(base, args.accounts, args.seconds, share, seed) for seed, base in enumerate(bases)]
        extra = during() if during else None
        results = [parse(run.communicate()[0]) for run in runs]
        report(label, results)
        if extra:
            print(f"  ({extra()})")

    if "sqlite" in only:
        with servers(args.sqlite_dir, None, 1) as (server,):
            fill(server.base, args.accounts)
            measure([server.base], "sqlite, one server")
    if "pg" in only:
        with servers(args.pg_dir, args.database_url, 1) as (server,):
            fill(server.base, args.accounts)
            measure([server.base], "postgresql, one server")
    if "pg-2-during-job" in only:
        with servers(args.pg_dir, args.database_url, 2) as (one, two):
            key, audience = fill(one.base, args.accounts)
            for round_no in range(2):
                print(f"pg-2-during-job round {round_no + 1}, replica 1 alone: "
                      + probe_during(one.base, key, audience, args.accounts, None, args.writes))
                print(f"pg-2-during-job round {round_no + 1}, replica 2 taking {args.writes} writes/s: "
                      + probe_during(one.base, key, audience, args.accounts, two.base, args.writes))
    if "pg-2-lag" in only:
        with servers(args.pg_dir, args.database_url, 2) as (one, two):
            key, audience = fill(one.base, args.accounts)
            serving = TOKENS["TAILOR_SERVING_TOKEN"]
            request(two.base, "GET", "/v1/serving/accounts/acct-1/audiences", serving)
            for round_no in range(3):
                time.sleep(2)
                upload_all(one.base, key, audience, args.accounts, "replace")
                t0 = time.time()
                request(two.base, "GET", "/v1/serving/accounts/acct-1/audiences", serving)
                first = time.time() - t0
                t0 = time.time()
                request(two.base, "GET", "/v1/serving/accounts/acct-2/audiences", serving)
                print(f"pg-2-lag round {round_no + 1}: replica 2's first answer after a {args.accounts}-member "
                      f"replace through replica 1: {first * 1000:.0f} ms (the next: {(time.time() - t0) * 1000:.1f} ms)")
    if "pg-2" in only or "pg-2-writes" in only:
        with servers(args.pg_dir, args.database_url, 2) as (one, two):
            fill(one.base, args.accounts)
            if "pg-2" in only:
                measure([one.base, two.base], "postgresql, two replicas")
            if "pg-2-writes" in only:
                def during():
                    stop = threading.Event()
                    count = []
                    thread = threading.Thread(target=lambda: count.append(writer(one.base, args.accounts, args.writes, stop)))
                    thread.start()

                    def finish():
                        stop.set()
                        thread.join()
                        return f"{count[0]} consent writes through replica 1 meanwhile"
                    return finish
                measure([two.base], f"postgresql, replica 2 read while replica 1 takes {args.writes} consent writes/s",
                        during)


if __name__ == "__main__":
    main()
