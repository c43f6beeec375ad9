"""Throughput of ``personalize serve`` (gunicorn) over loopback: events in, recommendations out.

The figures of issue 7 (2 cores, the Online Retail data loaded and trained) come from
these commands, run from the repository root. ``--setup`` prepares the instance the
first time (creates the schema, imports ../shared/datasets/online-retail/
online_retail_2010_2011.csv.gz in place, trains) and does nothing once it has a site;
``wrk`` must be installed (``apt-get install wrk``).

SQLite::

    export PERSONALIZE_INSTANCE_PATH=/tmp/bench-sqlite
    python bench/bench_http.py --setup --only events --duration 15 --clients 32
    python bench/bench_http.py --only recommendations --duration 15 --rec-visitors 2000
    python bench/bench_http.py --only recommendations --duration 15 --rec-visitors 2000 --no-reuse

PostgreSQL (an empty database of its own; the instance folder keeps the model files)::

    psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE bench' test
    export PERSONALIZE_INSTANCE_PATH=/tmp/bench-pg
    export PERSONALIZE_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench
    python bench/bench_http.py --setup --only events --duration 15 --clients 32
    python bench/bench_http.py --only recommendations --duration 15 --rec-visitors 2000
    python bench/bench_http.py --only recommendations --duration 15 --rec-visitors 2000 --no-reuse

With ``--compare-journeys 20`` the events phase runs with the site's 20 bench journeys
(created the first time: a shop's programme, see ``listening_journeys``) paused and listening,
first for new visitors (each enters the journeys their events trigger), then for the same
visitors returning (already in, or cooling down from, them). ``--rounds 3`` runs three rounds
of both sides, the order flipped each round (paused first, then listening first, …) so that
what drifts over a run falls on both; it prints each round's listening rate against its paused
one, their median and the rounds together (issue 15's target: at least 90 %)::

    python bench/bench_http.py --compare-journeys 20 --rounds 3 --duration 15 --clients 32

Add ``--redis-url redis://127.0.0.1:6379/15`` to run with Redis (model announcements
and rate-limit counters; the rate limits themselves are off here, see below).
``--metrics`` serves with ``/metrics`` on (``METRICS=token``) and prints what it counted
at the end (events, requests, processes: every worker's figures); ``--access-log`` turns
the access log on. Runs with and without, taken in turn, show what each costs.

It starts ``personalize serve`` on a free port with the same environment (the
``WORKERS`` and ``THREADS`` settings unless ``--workers``/``--threads``), then

1. **events**: ``--clients`` keep-alive connections post widget-sized batches of
   ``--batch`` events for ``--visitors`` visitors for ``--duration`` seconds; one
   request in ten re-sends that client's previous batch (what a beacon retry
   does), with a browser's User-Agent and Accept-Language, as a beacon has (the
   server records device facts from them). Afterwards the rows are counted in the database: *lost* counts
   acknowledged event ids that are missing, *duplicated* the rows beyond one per id;
2. **recommendations**: ``wrk`` asks for the lists of ``--rec-visitors`` visitors
   who have histories (this run's, then earlier runs'; with ``--only
   recommendations`` any shortfall is made up first by one batch of events each),
   chosen at random, for ``--duration`` seconds over ``--connections`` connections,
   and reports requests/s and latency percentiles. Each web process reuses a ranking
   while the visitor's history, the model, the rules and the catalogue entry are
   unchanged (``RECOMMENDATION_CACHE_SECONDS``), so the figure depends on how often
   a visitor comes back: the run prints requests per visitor. ``--no-reuse`` turns
   the reuse off: every list is computed.

Both phases also print the CPU time the server's processes used per event and per
request, read from /proc: on a machine shared with other work (or with the load
generator) requests/s says more about the neighbours than about personalize, while
CPU per request gives the capacity of idle cores. The CPU of PostgreSQL's own
processes is not included. All the load comes from one address with one key, so
the server runs with ``RATE_LIMIT_PER_IP`` and ``RATE_LIMIT_PER_SITE`` off.

Everything stays on 127.0.0.1 and every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from sqlalchemy import func, select

# what a browser's beacon carries: the server derives device facts from these for every batch
BEACON_HEADERS = {
    "Content-Type": "text/plain",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Accept-Language": "en-GB,en;q=0.9",
}
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "online-retail" / "online_retail_2010_2011.csv.gz"


def setup(data: str) -> None:
    """Schema, Online Retail orders and a trained model, unless the instance has a site already."""
    from personalize.app import create_app
    from personalize.sites import list_sites

    url = os.environ.get("PERSONALIZE_DATABASE_URL", "")
    if url and not url.startswith("sqlite"):
        subprocess.run(["personalize", "db", "upgrade"], check=True)
    with create_app().app_context():
        if list_sites():
            print("setup: the instance has a site already; nothing to do")
            return
    started = time.perf_counter()
    subprocess.run(["personalize", "import-orders", data], check=True)
    subprocess.run(["personalize", "train"], check=True)
    print(f"setup: imported and trained in {time.perf_counter() - started:.0f} s")


def machine_speed() -> str:
    """How fast this machine runs Python right now: a virtual machine's speed can change from one
    minute to the next, so runs compare only with this figure beside them."""
    import timeit

    best = min(timeit.repeat("sum(i*i for i in range(100000))", number=20, repeat=5)) / 20
    return f"a pure-Python loop takes {best * 1000:.2f} ms (python3 -m timeit -n 20 \"sum(i*i for i in range(100000))\")"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, workers: int | None, threads: int | None, env: dict[str, str], need_model: bool = True) -> subprocess.Popen:
    """Start ``personalize serve`` in a process group of its own; return once it is ready (and,
    with ``need_model``, serving a trained model)."""
    cmd = ["personalize", "serve", "--port", str(port)]
    if workers:
        cmd += ["--workers", str(workers)]
    if threads:
        cmd += ["--threads", str(threads)]
    # the server's log goes to a file: a pipe nobody reads would stop the server once full (ACCESS_LOG)
    log = tempfile.NamedTemporaryFile("w+", prefix="bench-serve-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped: {Path(log.name).read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/ready", timeout=2) as r:
                ready = json.loads(r.read())
            if not need_model or ready["models"]["state"] == "ok":
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("the server did not become ready within 60 s")


def server_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by the server's processes (its process group), from /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def site_and_products(app) -> tuple[str, list[str]]:
    from personalize.db import db
    from personalize.models import Product
    from personalize.sites import list_sites

    with app.app_context():
        sites = list_sites()
        if not sites:
            sys.exit("this instance has no site yet: run once with --setup (imports Online Retail and trains)")
        site = sites[0]
        ids = [pid for (pid,) in db.session.execute(
            select(Product.external_id).where(Product.site_id == site.id, Product.in_stock.is_(True)).order_by(Product.id).limit(2000)
        )]
        return site.public_key, ids


class EventClient(threading.Thread):
    """One keep-alive connection posting batches until ``stop_at``; remembers what was acknowledged."""

    def __init__(self, n: int, port: int, key: str, run: str, products: list[str], visitors: list[str], batch: int, stop_at: float):
        super().__init__(daemon=True)
        self.n, self.port, self.key, self.run_id = n, port, key, run
        self.products, self.visitors, self.batch, self.stop_at = products, visitors, batch, stop_at
        self.acked: list[str] = []
        self.acked_visitors: set[str] = set()
        self.requests = self.retries = self.errors = 0
        self.latencies: list[float] = []
        self.rng = random.Random(n)

    def batch_body(self, seq: int) -> tuple[list[str], bytes, str]:
        visitor = self.rng.choice(self.visitors)
        now = int(time.time() * 1000)
        events, ids = [], []
        for i in range(self.batch):
            eid = f"{self.run_id}-{self.n}-{seq}-{i}"
            kind = "product_added" if i % 5 == 4 else "product_viewed"
            events.append({"id": eid, "type": kind, "visitor": visitor, "product_id": self.rng.choice(self.products), "ts": now + i})
            ids.append(eid)
        return ids, json.dumps({"key": self.key, "events": events}).encode(), visitor

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        previous = None
        seq = 0
        while time.monotonic() < self.stop_at:
            if previous is not None and self.rng.random() < 0.1:
                ids, body, visitor = previous  # a beacon retry: the same events again
                retry = True
            else:
                ids, body, visitor = self.batch_body(seq)
                seq += 1
                retry = False
            started = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/events", body, BEACON_HEADERS)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            self.latencies.append(time.perf_counter() - started)
            self.requests += 1
            if response.status != 202:
                self.errors += 1
                continue
            if retry:
                self.retries += 1
            else:
                self.acked.extend(ids)
                self.acked_visitors.add(visitor)
                previous = (ids, body, visitor)
                if json.loads(answer).get("accepted") != len(ids):
                    self.errors += 1
        conn.close()


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


def bench_events(app, port: int, key: str, products: list[str], args, visitors: list[str] | None = None) -> list[str]:
    from personalize.db import db
    from personalize.models import Event

    run = "b" + secrets.token_hex(3)
    visitors = visitors or [f"{run}-visitor-{i}" for i in range(args.visitors)]
    stop_at = time.monotonic() + args.duration
    clients = [EventClient(n, port, key, run, products, visitors, args.batch, stop_at) for n in range(args.clients)]
    cpu_before = server_cpu_seconds(args.server_pgid)
    started = time.perf_counter()
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    elapsed = time.perf_counter() - started
    cpu = server_cpu_seconds(args.server_pgid) - cpu_before
    acked = [eid for c in clients for eid in c.acked]
    with app.app_context():
        stored = [eid for (eid,) in db.session.execute(select(Event.event_id).where(Event.event_id.like(f"{run}-%")))]
        rows = db.session.scalar(select(func.count()).select_from(Event).where(Event.event_id.like(f"{run}-%")))
    stored_set = set(stored)
    lost = sum(1 for eid in acked if eid not in stored_set)
    duplicated = rows - len(stored_set)
    requests = sum(c.requests for c in clients)
    latencies = [x for c in clients for x in c.latencies]
    args.last_rate = len(acked) / elapsed
    print(f"events: {len(acked):,} new events acknowledged in {elapsed:.1f} s = {len(acked) / elapsed:,.0f} events/s "
          f"({requests:,} requests of {args.batch}, {sum(c.retries for c in clients):,} of them re-sent batches; "
          f"p50 {percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms per batch)")
    print(f"        rows stored {rows:,}; lost {lost}; duplicated {duplicated}; errors {sum(c.errors for c in clients)}; "
          f"server CPU {cpu / max(1, len(acked) + sum(c.retries for c in clients) * args.batch) * 1e6:.0f} µs per event "
          f"(so {os.cpu_count()} idle cores would store ~{os.cpu_count() * (len(acked) / max(cpu, 1e-9)):,.0f} events/s)")
    return sorted({v for c in clients for v in c.acked_visitors})  # the visitors who now have histories


WRK_SCRIPT = """
local visitors = {%s}
math.randomseed(%d)
request = function()
  local v = visitors[math.random(#visitors)]
  return wrk.format("GET", "/api/v1/recommendations?key=%s&limit=8&visitor=" .. v)
end
"""


def visitors_with_history(app, fresh: list[str], n: int) -> list[str]:
    """``n`` visitors who have interactions: this run's first, then earlier runs' from the database."""
    from personalize.db import db
    from personalize.models import Identity, Interaction

    chosen = random.Random(1).sample(fresh, min(len(fresh), n))
    if len(chosen) < n:
        with app.app_context():
            have = select(Interaction.id).where(  # by the (site, profile) index
                Interaction.site_id == Identity.site_id, Interaction.profile_id == Identity.profile_id
            ).exists()
            older = db.session.scalars(
                select(Identity.value).where(Identity.kind == "visitor", have).order_by(Identity.id.desc()).limit(n * 2)
            ).all()
        seen = set(chosen)
        chosen += [v for v in older if v not in seen][: n - len(chosen)]
    return chosen


def seed_histories(port: int, key: str, products: list[str], n: int, batch: int) -> list[str]:
    """Give ``n`` new visitors a history: one acknowledged batch of events each, from 8 connections."""
    run = "s" + secrets.token_hex(3)
    visitors = [f"{run}-visitor-{i}" for i in range(n)]
    failed: list[str] = []

    def send(part: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        rng = random.Random(part[0] if part else 0)
        for v in part:
            events = [{"id": f"{v}-{i}", "type": "product_viewed", "visitor": v, "product_id": rng.choice(products)} for i in range(batch)]
            conn.request("POST", "/api/v1/events", json.dumps({"key": key, "events": events}), BEACON_HEADERS)
            response = conn.getresponse()
            response.read()
            if response.status != 202:
                failed.append(v)
        conn.close()

    threads = [threading.Thread(target=send, args=(visitors[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [v for v in visitors if v not in set(failed)]


def bench_recommendations(app, port: int, key: str, visitors: list[str], args) -> None:
    if not shutil.which("wrk"):
        print("recommendations: skipped, wrk is not installed (apt-get install wrk)")
        return
    sample = visitors_with_history(app, visitors, args.rec_visitors)
    if len(sample) < args.rec_visitors:
        started = time.perf_counter()
        sample += seed_histories(port, key, args.products, args.rec_visitors - len(sample), args.batch)
        print(f"        ({args.rec_visitors:,} visitors needed histories; the missing ones got a batch of events each "
              f"in {time.perf_counter() - started:.0f} s)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % (",".join(f'"{v}"' for v in sample), 42, key))
        script = f.name
    cpu_before = server_cpu_seconds(args.server_pgid)
    try:
        cmd = ["wrk", "-t", "2", "-c", str(args.connections), "-d", f"{args.duration}s", "--latency", "-s", script, f"http://127.0.0.1:{port}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 30).stdout
    finally:
        os.unlink(script)
    cpu = server_cpu_seconds(args.server_pgid) - cpu_before
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    pct = dict(re.findall(r"^\s+(50|90|99)%\s+([\d.]+\w+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    print(f"recommendations: {float(rps.group(1)):,.0f} requests/s, p50 {pct.get('50')}, p90 {pct.get('90')}, p99 {pct.get('99')}"
          f"; non-2xx {errors.group(1) if errors else 0}{'; socket errors ' + sock.group(1) if sock else ''}")
    per = cpu / max(1, int(done.group(1))) if done else float("nan")
    total = int(done.group(1)) if done else 0
    reuse = "rankings not reused (--no-reuse)" if args.no_reuse else f"each asked for ~{total / max(1, len(sample)):.1f} times on average"
    print(f"        server CPU {per * 1e3:.2f} ms per request (so {os.cpu_count()} idle cores would serve ~{os.cpu_count() / per:,.0f} requests/s); "
          f"{' '.join(cmd[:-3])} …, {len(sample):,} visitors with histories, chosen at random, {reuse}")


def listening_journeys(n: int) -> list[tuple[str, dict]]:
    """A shop's journey programme, ``n`` of them: one of each standard kind (browse and cart
    abandonment, post-purchase, welcome), browse journeys per price band (a category stand-in:
    the Online Retail products have none) and big-cart journeys above several amounts, on top of
    journeys entered by segments and dates (listening, never firing on these events). Every entry
    waits an hour, then emails."""
    steps = [{"id": "s1", "type": "wait", "seconds": 3600},
             {"id": "s2", "type": "email", "subject": "Hi", "html": "<p>Hi</p>", "recommendations": 4}]

    def journey(trigger: dict, reentry: dict) -> dict:
        return {"trigger": trigger, "reentry": reentry, "steps": steps}

    out = [
        ("Browse abandonment", journey({"type": "event", "event": "product_viewed"}, {"mode": "cooldown", "days": 7})),
        ("Cart abandonment", journey({"type": "event", "event": "product_added"}, {"mode": "cooldown", "days": 3})),
        ("Post-purchase", journey({"type": "event", "event": "order_completed"}, {"mode": "every_time"})),
        ("Welcome", journey({"type": "event", "event": "identify"}, {"mode": "once"})),
        ("Lapsing VIPs", journey({"type": "segment_entered", "segment": "bench-vip"}, {"mode": "cooldown", "days": 30})),
        ("Thirty days since the last order", journey({"type": "date", "field": "orders.last_at", "offset_days": 30}, {"mode": "every_time"})),
    ]
    bands = [(0, 1), (1, 2), (2, 3), (3, 5), (5, 8), (8, 13), (13, 30), (30, 1e9)]
    for low, high in bands:
        out.append((f"Browsed in {low}–{high}", journey({"type": "event", "event": "product_viewed", "where": [
            {"field": "product.price", "op": "gte", "value": low}, {"field": "product.price", "op": "lt", "value": high}]}, {"mode": "cooldown", "days": 14})))
    for amount in (5, 10, 20, 50, 100, 200):
        out.append((f"Added above {amount}", journey({"type": "event", "event": "product_added", "where": [
            {"field": "product.price", "op": "gte", "value": amount}]}, {"mode": "cooldown", "days": 7})))
    return out[:n]


def bench_journeys_listening(app, port: int, key: str, products: list[str], args) -> None:
    """The events phase with the site's ``--compare-journeys`` bench journeys paused and active
    (listening to product_viewed and product_added: entering people, ending goals), for new
    visitors and then for the same visitors returning; ``--rounds`` rounds of both sides, the
    order flipped each round, each round's listening rate against its paused one."""
    from sqlalchemy import func, select

    from personalize.db import db
    from personalize.journeys.models import JourneyEnrollment
    from personalize.journeys.store import create_journey, get_journey, set_status
    from personalize.sites import list_sites

    n = args.compare_journeys
    with app.app_context():
        site_id = list_sites()[0].id
        from personalize.segments.store import create_segment, get_segment

        if get_segment(site_id, "bench-vip") is None:
            create_segment(site_id, {"key": "bench-vip", "rule": {"field": "orders.total", "op": "gte", "value": 5000}})
        for i, (name, definition) in enumerate(listening_journeys(n)):
            key_i = f"bench-journey-{i}"
            if get_journey(site_id, key_i) is None:
                create_journey(site_id, key_i, name, definition)
        journeys = [get_journey(site_id, f"bench-journey-{i}") for i in range(n)]
        for j in journeys:
            if j.status == "active":
                set_status(j, "paused")
        db.session.remove()
    rounds = max(1, args.rounds)
    # Each round runs both sides, paused and listening, in turn; the order flips every round (ABBA…),
    # so what drifts over a run (a cold server at first, a growing database, the machine's other
    # work) falls on both sides alike. New visitors: a fresh crowd per phase, each entering the
    # journeys they trigger. Returning: the crowd of the same side's new phase again, already in
    # (or cooling down from) the journeys; without journeys the same visitors meet paused ones.
    orders = [(False, True) if r % 2 == 0 else (True, False) for r in range(rounds)]
    crowds = {(r, side): [f"jr{secrets.token_hex(3)}-{r}{'l' if side else 'p'}-{i}" for i in range(args.visitors)]
              for r in range(rounds) for side in (False, True)}
    rates: dict[tuple[str, int, bool], float] = {}
    for phase in ("new", "returning"):
        for r, order in enumerate(orders):
            for listening in order:
                with app.app_context():
                    for j in [get_journey(site_id, f"bench-journey-{i}") for i in range(n)]:
                        set_status(j, "active" if listening else "paused")
                    before = db.session.scalar(select(func.count()).select_from(JourneyEnrollment))
                    db.session.remove()
                time.sleep(2.5)  # each web process sees the change within a second
                print(f"-- round {r + 1}: {phase} visitors, {n} journeys {'listening' if listening else 'paused'}")
                bench_events(app, port, key, products, args, crowds[(r, listening)])
                rates[(phase, r, listening)] = args.last_rate
                time.sleep(2.0)  # the inbox threads finish what they queued
                with app.app_context():
                    entered = db.session.scalar(select(func.count()).select_from(JourneyEnrollment)) - before
                    db.session.remove()
                print(f"   people entered into journeys during the phase: {entered:,}")
    for phase in ("new", "returning"):
        ratios = []
        for r in range(rounds):
            on, off = rates[(phase, r, True)], rates[(phase, r, False)]
            ratios.append(on / off)
            print(f"journeys, {phase} visitors, round {r + 1}: {on:,.0f} events/s with {n} journeys listening against {off:,.0f} without = {on / off:.1%}")
        if rounds > 1:
            on = sum(rates[(phase, r, True)] for r in range(rounds))
            off = sum(rates[(phase, r, False)] for r in range(rounds))
            print(f"journeys, {phase} visitors, {rounds} rounds: median {statistics.median(ratios):.1%}; "
                  f"all rounds together {on / rounds:,.0f} against {off / rounds:,.0f} events/s = {on / off:.1%}")
    with app.app_context():
        for j in [get_journey(site_id, f"bench-journey-{i}") for i in range(n)]:
            set_status(j, "paused")


def vacuum_if_autovacuum_is_off(app) -> None:
    """Where PostgreSQL's autovacuum is turned off (as on our test machines), do what it would have
    done by now: each run adds tens of thousands of rows, and without it every later run measures
    a table of dead rows and stale planner statistics (events/s fell from about 2,400 to 1,500
    over five runs, and came back with one VACUUM ANALYZE)."""
    from sqlalchemy import text

    from personalize.db import db

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            return
        with db.engine.connect() as connection:
            if connection.execute(text("SHOW autovacuum")).scalar() == "on":
                return
        started = time.perf_counter()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
        print(f"autovacuum is off on this PostgreSQL: ran VACUUM ANALYZE first, as it would have ({time.perf_counter() - started:.1f} s)")


def print_metrics(port: int, token: str) -> None:
    """What /metrics says this server did (every worker's figures, whichever one answers the scrape)."""
    time.sleep(6)  # every worker has published its figures (every 5 s)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    wanted = re.compile(r'^(personalize_events_total\{outcome="(accepted|duplicate)"\}|personalize_http_requests_total\{route="/api/v1/'
                        r'(events|recommendations)",method="(POST|GET)",status="2xx"\}|personalize_metrics_processes|'
                        r'personalize_sqlite_writer_(seconds|wait_seconds|turns)_total\{writer="\w+"\}) ', re.M)
    for line in text.splitlines():
        if wanted.match(line):
            print(f"metrics: {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, help="gunicorn workers (default: the WORKERS setting)")
    ap.add_argument("--threads", type=int, help="threads per worker (default: the THREADS setting)")
    ap.add_argument("--duration", type=int, default=15, help="seconds per phase")
    ap.add_argument("--clients", type=int, default=16, help="concurrent event senders")
    ap.add_argument("--batch", type=int, default=10, help="events per request")
    ap.add_argument("--visitors", type=int, default=3000)
    ap.add_argument("--connections", type=int, default=8, help="wrk connections for recommendations, i.e. requests in flight "
                    "(more give about the same requests/s at a proportionally higher latency: they only queue)")
    ap.add_argument("--rec-visitors", type=int, default=2000, help="how many distinct visitors wrk asks for (fewer: more repeat visits)")
    ap.add_argument("--redis-url", default=os.environ.get("PERSONALIZE_REDIS_URL", ""), help="shared cache (default: none)")
    ap.add_argument("--only", choices=["events", "recommendations"], help="run one phase")
    ap.add_argument("--rounds", type=int, default=1,
                    help="with --compare-journeys: rounds of both sides, the order flipped each round (default 1)")
    ap.add_argument("--compare-journeys", type=int, default=0, metavar="N",
                    help="instead of the phases: events with N live journeys listening, beside the same without them")
    ap.add_argument("--no-reuse", action="store_true", help="compute every list (RECOMMENDATION_CACHE_SECONDS=0)")
    ap.add_argument("--no-browser-headers", action="store_true", help="post events without User-Agent and Accept-Language (no device facts)")
    ap.add_argument("--setup", action="store_true", help="import the Online Retail data and train first, if the instance has no site yet")
    ap.add_argument("--data", default=str(DATA), help="the Online Retail file for --setup (read in place)")
    ap.add_argument("--metrics", action="store_true", help="serve with METRICS=token (/metrics on) and print its totals at the end")
    ap.add_argument("--access-log", action="store_true", help="serve with ACCESS_LOG=true (the log goes to a temporary file)")
    args = ap.parse_args()

    # all the load comes from one address and one key: the rate limits would measure themselves
    env = dict(os.environ, PERSONALIZE_SYNC_SCHEDULER="false", PERSONALIZE_REDIS_URL=args.redis_url,
               PERSONALIZE_RATE_LIMIT_PER_IP="0", PERSONALIZE_RATE_LIMIT_PER_SITE="0")
    if args.no_reuse:
        env["PERSONALIZE_RECOMMENDATION_CACHE_SECONDS"] = "0"
    env["PERSONALIZE_METRICS"] = "token" if args.metrics else "off"
    if args.metrics:
        env["PERSONALIZE_METRICS_TOKEN"] = secrets.token_urlsafe(24)
    env["PERSONALIZE_ACCESS_LOG"] = "true" if args.access_log else "false"
    os.environ.update(env)
    if args.no_browser_headers:
        for name in ("User-Agent", "Accept-Language"):
            BEACON_HEADERS.pop(name)
    if args.setup:
        setup(args.data)
    from personalize.app import create_app

    app = create_app()
    key, products = site_and_products(app)
    args.products = products
    database = app.config["DATABASE_URL"].split(":", 1)[0]
    args.workers, args.threads = args.workers or app.config["WORKERS"], args.threads or app.config["THREADS"]
    print(f"database {database}; redis {args.redis_url or 'none'}; gunicorn {args.workers} workers × {args.threads} threads; "
          f"metrics {env['PERSONALIZE_METRICS']}; access log {'on' if args.access_log else 'off'}; "
          f"{os.cpu_count()} CPUs; {len(products):,} products; {machine_speed()}")
    port = free_port()
    server = start_server(port, args.workers, args.threads, env)
    args.server_pgid = server.pid
    try:
        visitors = []
        if args.compare_journeys:
            vacuum_if_autovacuum_is_off(app)
            bench_journeys_listening(app, port, key, products, args)
            return
        if args.only != "recommendations":
            vacuum_if_autovacuum_is_off(app)
            visitors = bench_events(app, port, key, products, args)
        if args.only != "events":
            vacuum_if_autovacuum_is_off(app)
            bench_recommendations(app, port, key, visitors, args)
        if args.metrics:
            print_metrics(port, env["PERSONALIZE_METRICS_TOKEN"])
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
