"""personalize beside the least a Flask app under gunicorn can do, in one run: the ratios of issue 18.

Three servers run side by side under the same gunicorn settings (``WORKERS`` × ``THREADS``,
gthread, keep-alive): ``personalize serve`` on the bench instance, and the bare apps of
``bench/bare_app.py`` (8 fixed items; a batch of events inserted into one table and committed,
on the same kind of database). ``wrk`` (8 connections, ``--duration`` seconds each) loads them
in alternated rounds: bare lists, our lists, bare events, our events, a pause; three rounds.
Each line of the table gives the per-round figures and the ratio of the medians, so a
neighbour's load on the machine cancels out as far as it can.

Then the burst: our lists before, during a steady stream of events (``--burst-rate`` events/s
in batches of 20), and right after a burst of events at full speed (wrk, 8 connections) —
each against the rate before.

Afterwards the events are counted in both databases: *lost* would be fewer rows than
acknowledged batches × 20, *doubled* more rows than distinct event ids.

The instance is the one of ``bench/bench_http.py --setup`` (Online Retail trained); for
PostgreSQL the bare app's table goes into the same database (its own table, ``bare_events``)::

    export PERSONALIZE_INSTANCE_PATH=/tmp/bench-sqlite
    python bench/bench_http.py --setup --only events --duration 5   # once
    python bench/bench_ceiling.py

    export PERSONALIZE_INSTANCE_PATH=/tmp/bench-pg
    export PERSONALIZE_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench
    python bench/bench_ceiling.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_http import (  # noqa: E402
    BEACON_HEADERS,
    WRK_SCRIPT,
    free_port,
    machine_speed,
    seed_histories,
    server_cpu_seconds,
    site_and_products,
    start_server,
    vacuum_if_autovacuum_is_off,
    visitors_with_history,
)

EVENTS_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
wrk.headers["User-Agent"] = "%(ua)s"
wrk.headers["Accept-Language"] = "en-GB,en;q=0.9"
local visitors = {%(visitors)s}
local products = {%(products)s}
local key = "%(key)s"
local run = "%(run)s"
counter = 0
tid = 0
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end
function init(args)
  math.randomseed(tid * 7919 + %(seed)d)
end
request = function()
  counter = counter + 1
  local v = visitors[math.random(#visitors)]
  local now = os.time() * 1000
  local parts = {}
  for i = 0, %(last)d do
    local kind = "product_viewed"
    if i %% 5 == 4 then kind = "product_added" end
    parts[#parts + 1] = string.format('{"id":"%%s-%%d-%%d-%%d","type":"%%s","visitor":"%%s","product_id":"%%s","ts":%%d}',
      run, tid, counter, i, kind, v, products[math.random(#products)], now + i)
  end
  return wrk.format(nil, "/api/v1/events", nil, '{"key":"' .. key .. '","events":[' .. table.concat(parts, ",") .. ']}')
end
"""


def parse_wrk(out: str) -> dict:
    def ms(text: str | None) -> float:
        if text is None:
            return float("nan")
        m = re.match(r"([\d.]+)(us|ms|s)", text)
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    pct = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "done": int(done.group(1)) if done else 0, "p50": ms(pct.get("50")),
            "p99": ms(pct.get("99")), "bad": int(bad.group(1)) if bad else 0, "sock": sock.group(1) if sock else ""}


PGID: dict[int, int] = {}  # port -> the server's process group, for its CPU time


def wrk(port: int, script: str, duration: float, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    cpu = server_cpu_seconds(PGID[port]) if port in PGID else 0.0
    try:
        cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration:g}s", "--latency", "-s", f.name, f"http://127.0.0.1:{port}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    finally:
        os.unlink(f.name)
    result = parse_wrk(out)
    cpu = server_cpu_seconds(PGID[port]) - cpu if port in PGID else float("nan")
    result["cpu_ms"] = cpu * 1000 / max(1, result["done"])  # the server's CPU per answered request
    return result


def start_bare(kind: str, port: int, workers: int, threads: int, database: str, env: dict) -> subprocess.Popen:
    log = tempfile.NamedTemporaryFile("w+", prefix=f"bare-{kind}-", suffix=".log", delete=False)  # noqa: SIM115
    cmd = [sys.executable, str(Path(__file__).with_name("bare_app.py")), kind, "--port", str(port), "--workers", str(workers),
           "--threads", str(threads), "--database", database]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the bare {kind} server stopped: {Path(log.name).read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/ready", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the bare {kind} server did not start")


def count_rows(url: str, table: str, prefix: str) -> tuple[int, int]:
    """(rows, distinct event ids) of ``table`` whose event id starts with ``prefix``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        row = connection.execute(text(f"SELECT count(*), count(DISTINCT event_id) FROM {table} WHERE event_id LIKE :p"),
                                 {"p": prefix + "%"}).one()
    engine.dispose()
    return int(row[0]), int(row[1])


class Stream(threading.Thread):
    """Batches of ``batch`` events at ``rate`` events/s over one keep-alive connection, until stopped."""

    def __init__(self, port: int, key: str, products: list[str], visitors: list[str], rate: float, batch: int):
        super().__init__(daemon=True)
        self.port, self.key, self.products, self.visitors, self.rate, self.batch = port, key, products, visitors, rate, batch
        self.stop = threading.Event()
        self.sent = self.errors = 0
        self.run_id = "s" + secrets.token_hex(3)

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        rng = random.Random(3)
        interval = self.batch / self.rate
        next_at = time.monotonic()
        seq = 0
        while not self.stop.is_set():
            v = rng.choice(self.visitors)
            events = [{"id": f"{self.run_id}-{seq}-{i}", "type": "product_viewed", "visitor": v, "product_id": rng.choice(self.products)}
                      for i in range(self.batch)]
            seq += 1
            conn.request("POST", "/api/v1/events", json.dumps({"key": self.key, "events": events}), BEACON_HEADERS)
            response = conn.getresponse()
            response.read()
            if response.status == 202:
                self.sent += self.batch
            else:
                self.errors += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.close()


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--batch", type=int, default=20, help="events per request")
    ap.add_argument("--rec-visitors", type=int, default=1000, help="distinct visitors with histories asked for")
    ap.add_argument("--visitors", type=int, default=3000, help="visitors the events come from")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--burst-rate", type=float, default=1000, help="events/s of the steady stream during the burst phase")
    ap.add_argument("--skip", choices=["rounds", "burst"], help="leave a part out")
    args = ap.parse_args()

    env = dict(os.environ, PERSONALIZE_SYNC_SCHEDULER="false", PERSONALIZE_RATE_LIMIT_PER_IP="0", PERSONALIZE_RATE_LIMIT_PER_SITE="0",
               PERSONALIZE_METRICS="off", PERSONALIZE_ACCESS_LOG="false")
    os.environ.update(env)
    from personalize.app import create_app

    app = create_app()
    key, products = site_and_products(app)
    url = app.config["DATABASE_URL"]
    database = url.split(":", 1)[0]
    workers, threads = args.workers or app.config["WORKERS"], args.threads or app.config["THREADS"]
    if database.startswith("sqlite"):
        bare_db = "sqlite:///" + str(Path(tempfile.mkdtemp(prefix="bare-events-")) / "bare.db")
    else:
        bare_db = url
    print(f"database {database}; gunicorn {workers} workers × {threads} threads; wrk 2 threads, {args.connections} connections, "
          f"{args.duration:g} s a run; {os.cpu_count()} CPUs; {machine_speed()}")
    vacuum_if_autovacuum_is_off(app)

    ours_port, rec_port, ev_port = free_port(), free_port(), free_port()
    servers = [start_server(ours_port, workers, threads, env)]
    try:
        servers.append(start_bare("rec", rec_port, workers, threads, bare_db, env))
        servers.append(start_bare("events", ev_port, workers, threads, bare_db, env))
        for port, server in zip((ours_port, rec_port, ev_port), servers, strict=True):
            PGID[port] = server.pid  # each started in a session of its own
        sample = visitors_with_history(app, [], args.rec_visitors)
        if len(sample) < args.rec_visitors:
            sample += seed_histories(ours_port, key, products, args.rec_visitors - len(sample), 10)
        rec_script = WRK_SCRIPT % (",".join(f'"{v}"' for v in sample), 42, key)
        run = "c" + secrets.token_hex(3)
        event_visitors = [f"{run}-visitor-{i}" for i in range(args.visitors)]

        def events_script(run_id: str) -> str:
            return EVENTS_SCRIPT % {"ua": BEACON_HEADERS["User-Agent"], "visitors": ",".join(f'"{v}"' for v in event_visitors),
                                    "products": ",".join(f'"{p}"' for p in products[:1000]), "key": key, "run": run_id,
                                    "seed": random.randrange(1 << 20), "last": args.batch - 1}

        # warm-up: each server's workers load what they load once (models, caches, connections)
        wrk(ours_port, rec_script, 3, args.connections)
        wrk(rec_port, rec_script, 2, args.connections)
        results: dict[str, list[dict]] = {k: [] for k in ("bare_rec", "ours_rec", "bare_ev", "ours_ev")}
        done_ev = {"ours": 0, "bare": 0}
        if args.skip != "rounds":
            for r in range(args.rounds):
                results["bare_rec"].append(wrk(rec_port, rec_script, args.duration, args.connections))
                results["ours_rec"].append(wrk(ours_port, rec_script, args.duration, args.connections))
                b = wrk(ev_port, events_script(f"{run}b{r}"), args.duration, args.connections)
                o = wrk(ours_port, events_script(f"{run}o{r}"), args.duration, args.connections)
                results["bare_ev"].append(b)
                results["ours_ev"].append(o)
                done_ev["bare"] += b["done"]
                done_ev["ours"] += o["done"]
                print(f"round {r + 1}: lists bare {results['bare_rec'][-1]['rps']:,.0f}/s ours {results['ours_rec'][-1]['rps']:,.0f}/s; "
                      f"events bare {b['rps'] * args.batch:,.0f}/s ours {o['rps'] * args.batch:,.0f}/s", flush=True)
                time.sleep(5)  # what follows our events settles before the next round's bare phase
            print_table(results, args, database)
            for who, where, table in (("ours", url, "events"), ("bare", bare_db, "bare_events")):
                rows, distinct = count_rows(where, table, f"{run}{who[0]}")
                acked = done_ev[who] * args.batch
                lost = max(0, acked - rows)
                over = rows - acked  # batches in flight when wrk stopped: stored, their answer never read
                bad = sum(x["bad"] for x in results[f"{who}_ev"])
                print(f"{who} events: {acked:,} acknowledged, {rows:,} rows ({over:,} from batches in flight at each run's end, at most "
                      f"{args.connections * args.rounds * args.batch:,}); lost {lost}; doubled {rows - distinct}; non-2xx {bad}")
        if args.skip != "burst":
            burst(ours_port, key, products, event_visitors, rec_script, events_script, run, args, app)
    finally:
        for s in servers:
            s.terminate()
        for s in servers:
            try:
                s.wait(timeout=20)
            except subprocess.TimeoutExpired:
                s.kill()


def print_table(results: dict, args, database: str) -> None:
    def rates(name: str, scale: float = 1.0) -> list[float]:
        return [x["rps"] * scale for x in results[name]]

    def span(values: list[float]) -> str:
        return "–".join(f"{v:,.0f}" for v in (min(values), max(values))) if values else "-"

    b, o = rates("bare_rec"), rates("ours_rec")
    be, oe = rates("bare_ev", args.batch), rates("ours_ev", args.batch)
    p99 = lambda name: span([x["p99"] for x in results[name]])  # noqa: E731
    cpu = lambda name: med([x["cpu_ms"] for x in results[name]])  # noqa: E731
    print()
    print(f"| {database} | personalize | bare ceiling | ratio (medians; per round) | server CPU per request, ours / bare (ratio) |")
    print("|---|---|---|---|---|")
    print(f"| `GET /api/v1/recommendations` ({args.rec_visitors:,} visitors with histories) | {span(o)} req/s, p99 {p99('ours_rec')} ms "
          f"| {span(b)} req/s, p99 {p99('bare_rec')} ms | {med(o) / med(b):.2f} ({', '.join(f'{x / y:.2f}' for x, y in zip(o, b, strict=True))}) "
          f"| {cpu('ours_rec'):.2f} / {cpu('bare_rec'):.2f} ms ({cpu('bare_rec') / cpu('ours_rec'):.2f}) |")
    print(f"| `POST /api/v1/events`, {args.batch} events a request | {span(oe)} events/s, p99 {p99('ours_ev')} ms "
          f"| {span(be)} events/s, p99 {p99('bare_ev')} ms | {med(oe) / med(be):.2f} ({', '.join(f'{x / y:.2f}' for x, y in zip(oe, be, strict=True))}) "
          f"| {cpu('ours_ev'):.2f} / {cpu('bare_ev'):.2f} ms ({cpu('bare_ev') / cpu('ours_ev'):.2f}) |")
    print()


def burst(port: int, key: str, products: list[str], visitors: list[str], rec_script: str, events_script, run: str, args, app) -> None:
    """Our lists before, during a steady stream of events, and right after a full-speed burst;
    beside the same timeline without any event (the control: what the lists do by themselves
    over the same minute, e.g. rankings reaching the end of their reuse time)."""
    rows = {}
    for label, with_events in (("control, no events", False), ("with events", True)):
        before = wrk(port, rec_script, args.duration, args.connections)
        stream = Stream(port, key, products, visitors, args.burst_rate if with_events else 0, args.batch)
        if with_events:
            stream.start()
            time.sleep(0.5)
        during = wrk(port, rec_script, args.duration, args.connections)
        if with_events:
            stream.stop.set()
            stream.join()
            full = wrk(port, events_script(f"{run}u"), args.duration, args.connections)
        else:
            full = {"rps": 0.0}
            time.sleep(args.duration)
        after = wrk(port, rec_script, args.duration, args.connections)
        later = wrk(port, rec_script, args.duration, args.connections)
        rows[label] = (before, during, after, later, stream.sent / args.duration, full["rps"] * args.batch)
    print(f"| lists around an ingest burst ({database_name(app)}) | req/s | p99 ms | against before | control (no events): req/s, against before |")
    print("|---|---|---|---|---|")
    before, during, after, later, streamed, burst_rate = rows["with events"]
    control = rows["control, no events"]
    names = ("before", f"during a stream of {streamed:,.0f} events/s", f"right after {burst_rate:,.0f} events/s for {args.duration:g} s",
             f"{args.duration:g} s after that")
    for i, (name, x) in enumerate(zip(names, (before, during, after, later), strict=True)):
        c = control[i]
        print(f"| {name} | {x['rps']:,.0f} | {x['p99']:.1f} | {x['rps'] / before['rps']:.2f} | {c['rps']:,.0f}, {c['rps'] / control[0]['rps']:.2f} |")


def database_name(app) -> str:
    return app.config["DATABASE_URL"].split(":", 1)[0]


if __name__ == "__main__":
    main()
