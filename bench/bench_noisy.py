"""Noisy neighbour and the price of the rate limiter: figures to print, never assertions.

Two measurements::

    python bench/bench_noisy.py cost  [--redis-url redis://127.0.0.1:6379/15] [-n 20000]
    python bench/bench_noisy.py noisy [--redis-url ...] [--duration 10] [--flooders 4] [--workers 2] [--threads 4]

``cost``: the limiter alone (one ``Limiter.hit`` in process memory and, with
``--redis-url``, shared through Redis: microseconds per call); the two checks a
widget request makes (its address, its query parameters, its site) as the app runs them, in CPU
microseconds per request including the background thread that talks to Redis;
then whole recommendation requests through the app in this process with the
limits on and off (on a busy machine that difference drowns in noise; the
per-check figure is the one to quote).

``noisy``: starts ``personalize serve`` (gunicorn) on a temporary SQLite instance
with two sites behind ``TRUSTED_PROXIES=1``, then measures the latency of the quiet
site's recommendation requests (``--quiet-rate`` a second, its shoppers spread over
250 addresses) three times for ``--duration`` seconds each: alone; while
``--flooders`` processes (one address each) flood the other site as fast as they
can, with the default limits, measured once every flooding address is refused
(within a minute: the per-address budget); and with the same flood and every
limit off. It prints p50 / p99 of the quiet site and how many of the flood's
requests were answered 2xx and 429. Run it on a quiet machine: the flood and the
server share its cores.

Other benchmarks and rate limits: ``personalize serve`` applies the limits by
default (RATE_LIMIT_PER_IP 1200 a minute per address would hold a load generator
on 127.0.0.1 to 20 requests a second). To measure throughput, switch them off in
the server's environment::

    export PERSONALIZE_RATE_LIMIT_PER_IP=0 PERSONALIZE_RATE_LIMIT_PER_SITE=0 PERSONALIZE_RATE_LIMIT_PER_SECRET_KEY=0
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_http import start_server  # the same start-up and readiness wait as the throughput bench

NO_LIMITS = {"PERSONALIZE_RATE_LIMIT_PER_IP": "0", "PERSONALIZE_RATE_LIMIT_PER_SITE": "0", "PERSONALIZE_RATE_LIMIT_PER_SECRET_KEY": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- cost -----------------------------------------------------------------------------------------------------------


def measure_cost(args) -> None:
    from personalize.app import create_app
    from personalize.catalog import upsert_products
    from personalize.limits import Limiter
    from personalize.records import ProductRecord
    from personalize.sites import create_site
    from personalize.testing import app_config, fresh_database

    n = args.n
    limiter = Limiter(None)
    start = time.perf_counter()
    for i in range(n):
        limiter.hit(f"ip:10.0.{i % 250}.{i % 7}", 10**9)
    print(f"Limiter.hit in process memory: {(time.perf_counter() - start) / n * 1e6:.2f} µs per call ({n} calls)")
    if args.redis_url:
        limiter = Limiter(args.redis_url, prefix=f"bench-noisy-{os.getpid()}:")
        limiter.hit("warm", 10**9)
        start = time.perf_counter()
        for i in range(n):
            limiter.hit(f"ip:10.0.{i % 250}.{i % 7}", 10**9)
        print(f"Limiter.hit with Redis ({args.redis_url}): {(time.perf_counter() - start) / n * 1e6:.2f} µs per call (counted in memory, shared every 0.2 s)")
        limiter.close()

    with tempfile.TemporaryDirectory() as folder, fresh_database(folder, "sqlite://") as url:
        app = create_app(app_config(folder, url))
        with app.app_context():
            site, _secret = create_site("Bench shop")
            upsert_products(site.id, [ProductRecord(f"p{i}", f"Product {i}", f"/p/{i}", "", 10.0, "EUR", "c") for i in range(50)])
            key = site.public_key
        client = app.test_client()
        modes = [("limits off", {"REDIS_URL": None, "RATE_LIMIT_PER_IP": 0, "RATE_LIMIT_PER_SITE": 0}),
                 ("limits on, process memory", {"REDIS_URL": None, "RATE_LIMIT_PER_IP": 10**9, "RATE_LIMIT_PER_SITE": 10**9})]
        if args.redis_url:
            modes.append(("limits on, Redis", {"REDIS_URL": args.redis_url, "RATE_LIMIT_PER_IP": 10**9, "RATE_LIMIT_PER_SITE": 10**9}))
        # the limits' work in one request: the address, query and site checks, as the app runs them
        from personalize import limits

        for name, config in modes:
            app.config.update(config)
            url = f"/api/v1/recommendations?key={key}&visitor=v123&slot=home&limit=8"
            with app.test_request_context(url, environ_base={"REMOTE_ADDR": "10.1.2.3"}):
                limits.check_address()
                cpu, wall = time.process_time(), time.perf_counter()
                for i in range(n):
                    limits.check_address()
                    limits.check_query()
                    limits.check_site(1 + i % 3, secret=False)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"rate-limit checks per request, {name}: {cpu / n * 1e6:.1f} µs CPU (all threads), {wall / n * 1e6:.1f} µs wall")
        requests_n = max(200, n // 10)
        results = {}
        for _round in range(3):  # interleaved rounds, best of three: less noise from neighbours
            for name, config in modes:
                app.config.update(config)
                for _ in range(50):
                    client.get("/api/v1/recommendations", query_string={"key": key, "visitor": "v1"})
                cpu = time.process_time()
                for i in range(requests_n):
                    r = client.get("/api/v1/recommendations", query_string={"key": key, "visitor": f"v{i % 100}"})
                    assert r.status_code == 200, r.get_data(as_text=True)
                per = (time.process_time() - cpu) / requests_n * 1e6
                results[name] = min(results.get(name, per), per)
        base = results["limits off"]
        for name, per in results.items():
            extra = "" if name == "limits off" else f" (+{per - base:.0f} µs, {100 * (per - base) / base:+.1f} %)"
            print(f"GET /api/v1/recommendations in process, {name}: {per:.0f} µs CPU per request{extra}")
        app.extensions["personalize.limits"].close()


# -- noisy neighbour -------------------------------------------------------------------------------------------------


def prepare_instance(folder: str) -> tuple[str, str]:
    """A migrated SQLite instance with two sites and a small catalogue each; their public keys."""
    from personalize.app import create_app
    from personalize.catalog import upsert_products
    from personalize.db import db
    from personalize.records import ProductRecord
    from personalize.sites import create_site

    app = create_app({"INSTANCE_PATH": folder, "AUTO_MIGRATE": True})
    keys = []
    with app.app_context():
        for name in ("Noisy shop", "Quiet shop"):
            site, _secret = create_site(name)
            upsert_products(site.id, [ProductRecord(f"p{i}", f"Product {i}", f"/p/{i}", "", 10.0, "EUR", "c") for i in range(200)])
            keys.append(site.public_key)
        db.engine.dispose()
    return keys[0], keys[1]


def flooder(n: int, port: int, key: str, stop_at: float, stop, counts, refused) -> None:
    """One process, one keep-alive connection, as many requests as it can: recommendations and event batches."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"X-Forwarded-For": f"203.0.113.{n + 1}", "Content-Type": "application/json"}
    ok = limited = other = i = 0
    while time.monotonic() < stop_at and not stop.is_set():
        i += 1
        try:
            if i % 2:
                conn.request("GET", f"/api/v1/recommendations?key={key}&visitor=n{n}-{i % 500}", headers=headers)
            else:
                events = [{"id": f"f{n}-{i}-{j}", "type": "page_viewed", "visitor": f"n{n}-{i % 500}"} for j in range(5)]
                conn.request("POST", "/api/v1/events", body=json.dumps({"key": key, "events": events}), headers=headers)
            response = conn.getresponse()
            response.read()
        except OSError:
            other += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        if 200 <= response.status < 300:
            ok += 1
        elif response.status == 429:
            limited += 1
            if limited == 1:
                with refused.get_lock():
                    refused.value += 1
        else:
            other += 1
    counts.put((ok, limited, other))


def quiet_latencies(port: int, key: str, duration: float, rate: float) -> tuple[list[float], int]:
    """The quiet shop: ``rate`` recommendation requests a second, its shoppers spread over 250 addresses."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, failures, i = [], 0, 0
    begin = time.monotonic()
    stop_at = begin + duration
    while time.monotonic() < stop_at:
        i += 1
        pause = begin + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        headers = {"X-Forwarded-For": f"198.51.100.{i % 250}"}
        start = time.perf_counter()
        conn.request("GET", f"/api/v1/recommendations?key={key}&visitor=q{i % 300}", headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            failures += 1
    conn.close()
    return latencies, failures


def measure_noisy(args) -> None:
    with tempfile.TemporaryDirectory() as folder:
        noisy_key, quiet_key = prepare_instance(folder)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONALIZE_")}
        base_env.update({"PERSONALIZE_INSTANCE_PATH": folder, "PERSONALIZE_TRUSTED_PROXIES": "1", "PERSONALIZE_SYNC_SCHEDULER": "false"})
        if args.redis_url:
            base_env["PERSONALIZE_REDIS_URL"] = args.redis_url
        phases = [("quiet site alone", {}, 0), ("with the flood, default limits", {}, args.flooders), ("with the flood, limits off", NO_LIMITS, args.flooders)]
        print("(with limits, the quiet site is measured once every flooding address is refused: up to a minute)")
        print(f"{args.workers} workers x {args.threads} threads, SQLite, Redis: {args.redis_url or 'none'}; {args.duration} s per phase; load {os.getloadavg()[0]:.1f}")
        for name, extra_env, flooders in phases:
            port = free_port()
            server = start_server(port, args.workers, args.threads, {**base_env, **extra_env}, need_model=False)
            try:
                quiet_latencies(port, quiet_key, 1.0, args.quiet_rate)  # warm up
                counts, refused, stop = multiprocessing.Queue(), multiprocessing.Value("i", 0), multiprocessing.Event()
                stop_at = time.monotonic() + args.duration + 90.0
                procs = [multiprocessing.Process(target=flooder, args=(n, port, noisy_key, stop_at, stop, counts, refused), daemon=True) for n in range(flooders)]
                for p in procs:
                    p.start()
                if procs:
                    # with limits, measure once every flooder is being refused (up to 60 s: a minute's budget spent)
                    wait_until = time.monotonic() + (60.0 if not extra_env else 2.0)
                    while time.monotonic() < wait_until and refused.value < flooders:
                        time.sleep(0.2)
                latencies, failures = quiet_latencies(port, quiet_key, args.duration, args.quiet_rate)
                stop.set()
                totals = [counts.get(timeout=60) for _ in procs]
                for p in procs:
                    p.join(timeout=10)
            finally:
                os.killpg(server.pid, 15)
                server.wait(timeout=30)
            flood = ""
            if totals:
                ok, limited, other = (sum(t[i] for t in totals) for i in range(3))
                flood = f"; flood: {ok} answered 2xx, {limited} answered 429, {other} other"
            print(f"{name:34s} quiet site: {len(latencies)} requests, p50 {statistics.median(latencies):.1f} ms, "
                  f"p99 {percentile(latencies, 99):.1f} ms, {failures} not 200{flood}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["cost", "noisy"])
    ap.add_argument("--redis-url", default="", help="count in this Redis too (default: process memory only)")
    ap.add_argument("-n", type=int, default=20000, help="limiter calls for cost (whole requests: a tenth of it)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per noisy phase")
    ap.add_argument("--flooders", type=int, default=4, help="flooding processes, one client address each")
    ap.add_argument("--quiet-rate", type=float, default=50.0, help="the quiet site's recommendation requests a second")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    if args.what == "cost":
        measure_cost(args)
    else:
        measure_noisy(args)


if __name__ == "__main__":
    main()
