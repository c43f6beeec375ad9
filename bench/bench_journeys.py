"""Journeys under load: how fast an event becomes a queued action, and how many people a
three-step journey moves through a minute. Run from the repository root; each run makes a
database of its own (a fresh SQLite file, or a schema of its own in ``--database-url``'s
PostgreSQL database, dropped afterwards).

Event to first action queued (``personalize serve``: gunicorn, its journeys inbox and clock)::

    python bench/bench_journeys.py latency --events 600 --rate 40
    python bench/bench_journeys.py latency --events 600 --rate 40 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

  ``--rate`` product_added events a second, each from a new visitor, are posted to the
  server; a journey triggered by product_added has an email as its first step. A poller
  reads the database every 5 ms and notes when each event's first step row is visible
  (committed): latency = seen − the moment the request was sent. Prints p50/p95/p99/max.

100,000 people through wait → branch → action (a connector action to a local HubSpot)::

    python bench/bench_journeys.py throughput --people 100000 --runners 2
    python bench/bench_journeys.py throughput --people 100000 --runners 2 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

  People with a HubSpot id (half of them ``tier = gold``) are written straight into the
  tables first (not timed). Timed: entering them all (``enter`` in batches, as the API
  trigger does) while ``--runners`` ``personalize journeys run`` processes work: wait 1 s,
  branch on the tier, set ``lifecyclestage`` on the contact (``customer`` or ``lead``)
  through the HubSpot connector's ``set_property`` action, 100 contacts a request, to a
  local server speaking HubSpot's batch update. Afterwards the steps and the server's
  log are counted: lost = people whose contact was never updated, repeated = contacts
  updated more than once.

The catch-up (events whose notification was lost, handled a minute later), per event::

    python bench/bench_journeys.py catchup --history 300000 --events 50000 [--database-url …]

  ``--history`` events are stored first with no journey live, then ``--events`` more with
  their notifications lost (half of them heard by a live journey); prints the catch-up's
  time and CPU per event and how many people it entered (one per product_added).

What listening costs a web process (CPU per event and per entry)::

    python bench/bench_journeys.py inbox --events 40000 [--database-url …]

  The events API bench's 20 journeys (``bench_http.listening_journeys``) live on a shop of
  1,000 priced products; ``--events`` events of new visitors (10 each) are stored, then the
  ``event_received`` hook is called for each, as the events requests call it (20 at a time),
  and the inbox it filled is drained in steps of 2,000, as the inbox thread does; each part
  timed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


def machine_speed() -> str:
    import timeit

    best = min(timeit.repeat("sum(i*i for i in range(100000))", number=20, repeat=5)) / 20
    return f"a pure-Python loop takes {best * 1000:.2f} ms"


def env_for(url: str, folder: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONALIZE_")}
    env.update({"PERSONALIZE_DATABASE_URL": url, "PERSONALIZE_INSTANCE_PATH": folder, "PERSONALIZE_AUTO_MIGRATE": "false",
                "PERSONALIZE_RATE_LIMIT_PER_IP": "0", "PERSONALIZE_RATE_LIMIT_PER_SITE": "0", "PERSONALIZE_MODEL_CHECK_SECONDS": "3600",
                "PERSONALIZE_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",  # the local HubSpot the actions go to
                **extra})
    return env


def make_app(url: str, folder: str):
    from personalize.app import create_app
    from personalize.testing import app_config

    config = app_config(folder, url, AUTO_MIGRATE=True)
    config.pop("TESTING")
    return create_app(config)


def kill(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


# ---------------------------------------------------------------- latency


def bench_latency(args, url: str, folder: str) -> None:
    from sqlalchemy import select

    from personalize.db import db
    from personalize.journeys.email import save_settings
    from personalize.journeys.models import JourneyEnrollment, JourneyStep
    from personalize.journeys.store import create_journey, set_status
    from personalize.sites import create_site

    app = make_app(url, folder)
    with app.app_context():
        site, _secret = create_site("Latency shop")
        key = site.public_key
        save_settings(site.id, {"delivery": "record", "timezone": "UTC"}, app.config)
        set_status(create_journey(site.id, "cart", "Cart", {"trigger": {"type": "event", "event": "product_added"}, "reentry": {"mode": "every_time"},
                                                            "control": 0, "steps": [
            {"id": "s1", "type": "email", "subject": "Hello", "html": "<p>Hi</p>", "recommendations": 0}]}), "active")
        db.engine.dispose()
    port = free_port()
    env = env_for(url, folder, PERSONALIZE_WORKERS=str(args.workers), PERSONALIZE_THREADS=str(args.threads), PERSONALIZE_SYNC_SCHEDULER="true")
    server = subprocess.Popen(["personalize", "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def poll() -> None:
        # every row each time, not "ids above the last seen": on PostgreSQL a lower id can commit after a higher one
        with app.app_context():
            while not stop.is_set():
                rows = db.session.execute(
                    select(JourneyEnrollment.data).join(JourneyStep, JourneyStep.enrollment_id == JourneyEnrollment.id)
                ).all()
                now = time.time()
                db.session.remove()
                for (data,) in rows:
                    seen.setdefault((data or {}).get("event_id", ""), now)
                time.sleep(0.005)

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        time.sleep(1.0)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        per_thread = args.events // args.senders
        gap = args.senders / args.rate

        def send(n: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            start = time.monotonic()
            for i in range(per_thread):
                eid = f"lat-{n}-{i}"
                body = json.dumps({"key": key, "events": [{"id": eid, "type": "product_added", "visitor": f"v-{n}-{i}", "product_id": "p1",
                                                           "ts": int(time.time() * 1000)}]})
                time.sleep(max(0.0, start + i * gap - time.monotonic()))
                sent[eid] = time.time()
                conn.request("POST", "/api/v1/events", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 202:
                    print(f"event {eid}: {response.status}")
            conn.close()

        senders = [threading.Thread(target=send, args=(n,)) for n in range(args.senders)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        wait_until = time.monotonic() + 30
        while len(seen) < len(sent) and time.monotonic() < wait_until:
            time.sleep(0.05)
        stop.set()
        poller.join()
    finally:
        kill(server)
    latencies = [seen[e] - sent[e] for e in sent if e in seen]
    missing = len(sent) - len(latencies)
    database = url.split(":", 1)[0]
    print(f"latency ({database}; gunicorn {args.workers}×{args.threads}; {os.cpu_count()} CPUs; {machine_speed()}): {len(sent)} events "
          f"at {args.rate}/s; event → first action queued (visible in the database): p50 {percentile(latencies, 50) * 1000:.0f} ms, "
          f"p95 {percentile(latencies, 95) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
          f"never queued: {missing}")


# ---------------------------------------------------------------- throughput


class HubSpotSink:
    """``POST /crm/v3/objects/contacts/batch/update`` as HubSpot answers it; remembers every update."""

    def __init__(self):
        self.updates: Counter = Counter()
        self.values: dict[str, str] = {}
        self.requests = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        if request.path != "/crm/v3/objects/contacts/batch/update" or request.method != "POST":
            return Response("{}", 404, content_type="application/json")(environ, start_response)
        body = json.loads(request.get_data())
        with self.lock:
            self.requests += 1
            for item in body["inputs"]:
                self.updates[item["id"]] += 1
                self.values[item["id"]] = item["properties"]["lifecyclestage"]
        now = "2026-01-01T00:00:00Z"
        answer = {"status": "COMPLETE", "results": [{"id": i["id"], "properties": i["properties"]} for i in body["inputs"]],
                  "startedAt": now, "completedAt": now}
        return Response(json.dumps(answer), 200, content_type="application/json")(environ, start_response)


def seed_people(app, site_id: int, n: int) -> None:
    """``n`` profiles with a HubSpot id and a tier, written in bulk (the setup, not the measure)."""
    from sqlalchemy import insert

    from personalize.db import db
    from personalize.models import Identity, Profile, utcnow
    from personalize.profiles.models import ProfileAttribute

    now = utcnow()
    with app.app_context():
        for start in range(0, n, 5000):
            rows = [{"site_id": site_id, "email": None, "customer_id": None, "attributes": {}, "created_at": now, "last_seen_at": now}
                    for _ in range(start, min(n, start + 5000))]
            ids = [r[0] for r in db.session.execute(insert(Profile).returning(Profile.id), rows)]
            db.session.execute(insert(Identity), [{"site_id": site_id, "kind": "hubspot_id", "value": str(10_000_000 + pid), "profile_id": pid, "created_at": now}
                                                  for pid in ids])
            db.session.execute(insert(ProfileAttribute), [{
                "site_id": site_id, "profile_id": pid, "name": "tier", "value": "gold" if pid % 2 else "silver", "vtype": "s",
                "value_text": "gold" if pid % 2 else "silver", "value_num": None, "source": "bench", "updated_at": now,
            } for pid in ids])
            db.session.commit()
        from personalize.db import refresh_statistics

        refresh_statistics(Profile, Identity, ProfileAttribute)


def bench_throughput(args, url: str, folder: str) -> None:
    import logging

    from sqlalchemy import func, select
    from werkzeug.serving import make_server

    from personalize.db import db
    from personalize.journeys.models import JourneyEnrollment, JourneyStep
    from personalize.journeys.store import create_journey, live_journeys, set_status
    from personalize.journeys.triggers import Candidate, enter
    from personalize.models import Profile
    from personalize.sites import create_site
    from personalize.sync.connections import save_connection

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    sink = HubSpotSink()
    provider = make_server("127.0.0.1", 0, sink, threaded=True)
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    app = make_app(url, folder)
    with app.app_context():
        site, _secret = create_site("Throughput shop")
        site_id = site.id
        save_connection(site_id, "hubspot", {"access_token": "pat-bench", "api_url": f"http://127.0.0.1:{provider.server_port}"})
        action = {"type": "connector", "connection": "hubspot", "action": "set_property"}
        set_status(create_journey(site_id, "tiers", "Tiers", {"trigger": {"type": "api"}, "reentry": {"mode": "once"}, "control": 0, "steps": [
            {"id": "s1", "type": "wait", "seconds": 1},
            {"id": "s2", "type": "branch", "rule": {"field": "attributes.tier", "op": "eq", "value": "gold"}, "branches": {
                "yes": [{"id": "s3", **action, "params": {"property": "lifecyclestage", "value": "customer"}}],
                "no": [{"id": "s4", **action, "params": {"property": "lifecyclestage", "value": "lead"}}]}},
        ]}), "active")
        db.session.commit()
    print(f"seeding {args.people:,} people …", flush=True)
    seed_people(app, site_id, args.people)
    env = env_for(url, folder, PERSONALIZE_JOURNEY_BATCH_SIZE=str(args.batch))
    with app.app_context():
        pids = list(db.session.scalars(select(Profile.id).where(Profile.site_id == site_id).order_by(Profile.id)))
        live = next(j for j in live_journeys(site_id).journeys if j.key == "tiers")
        db.engine.dispose()
    started = time.perf_counter()
    runners = [subprocess.Popen(["personalize", "journeys", "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True) for _ in range(args.runners)]
    try:
        with app.app_context():
            for start in range(0, len(pids), 1000):
                enter(live, [Candidate(pid, f"api:{pid}", "api") for pid in pids[start : start + 1000]])
            entered_in = time.perf_counter() - started
            deadline = time.monotonic() + args.timeout
            done = 0
            while time.monotonic() < deadline:
                done = db.session.scalar(select(func.count()).select_from(JourneyEnrollment).where(JourneyEnrollment.status == "completed"))
                db.session.remove()
                if done == len(pids):
                    break
                time.sleep(0.25)
            elapsed = time.perf_counter() - started
    finally:
        for r in runners:
            kill(r)
        provider.shutdown()
    with app.app_context():
        steps = dict(db.session.execute(select(JourneyStep.outcome, func.count()).group_by(JourneyStep.outcome)).all())
        per_person = Counter(db.session.scalars(select(func.count()).select_from(JourneyStep).group_by(JourneyStep.enrollment_id)))
    expected = {str(10_000_000 + pid): ("customer" if pid % 2 else "lead") for pid in pids}
    lost = sum(1 for cid in expected if cid not in sink.updates)
    repeated = sum(1 for n in sink.updates.values() if n > 1)
    wrong = sum(1 for cid, value in expected.items() if sink.values.get(cid, value) != value)
    database = url.split(":", 1)[0]
    print(f"throughput ({database}; {args.runners} runner processes, batches of {args.batch}; {os.cpu_count()} CPUs; {machine_speed()}): "
          f"{len(pids):,} people through wait 1 s → branch → HubSpot set_property in {elapsed:.1f} s "
          f"({len(pids) / elapsed:,.0f} people/s; entering them all took {entered_in:.1f} s); completed {done:,}")
    print(f"        steps {dict(sorted(steps.items()))}; rows per person {dict(per_person)}; HubSpot got {sink.requests:,} requests, "
          f"{sum(sink.updates.values()):,} contact updates; lost {lost}, repeated {repeated}, wrong value {wrong}")
    if lost or repeated or wrong:
        raise SystemExit("FAILED: steps were lost, repeated or wrong (see the outcomes above)")


# ---------------------------------------------------------------- the catch-up


def bench_catchup(args, url: str, folder: str) -> None:
    """The catch-up's cost per event: ``--history`` events of the site already stored (read by
    nobody), then ``--events`` more whose notifications were lost (half product_added, which a
    live journey hears, half product_viewed, which none does), caught up a minute later."""
    from datetime import timedelta

    from sqlalchemy import func, select, update

    from personalize.db import db
    from personalize.journeys.models import Journey, JourneyEnrollment
    from personalize.journeys.store import create_journey, set_status
    from personalize.journeys.triggers import catch_up_events
    from personalize.models import utcnow
    from personalize.profiles import ingest_events
    from personalize.sites import create_site

    app = make_app(url, folder)
    app.config["JOURNEY_INBOX"] = "inline"
    print(f"database {url.split(':', 1)[0]}; {machine_speed()}")
    with app.app_context():
        site, _secret = create_site("Bench shop")
        journey = create_journey(site.id, "adds", "Cart abandonment", {
            "trigger": {"type": "event", "event": "product_added"}, "reentry": {"mode": "every_time"}, "control": 0,
            "steps": [{"id": "s1", "type": "wait", "seconds": 3600}]})
        started = time.monotonic()

        def store(n: int, prefix: str) -> None:
            for start in range(0, n, 1000):
                ingest_events(site, [{"id": f"{prefix}{i}", "type": "product_added" if i % 2 else "product_viewed",
                                      "visitor": f"{prefix}v{i // 10}", "product_id": f"p{i % 500}", "ts": 1_700_000_000_000 + i}
                                     for i in range(start, min(n, start + 1000))], max_events=1000)

        store(args.history, "h")  # no journey is live: nobody hears them
        print(f"history: {args.history:,} events stored in {time.monotonic() - started:.1f} s")
        set_status(journey, "active")
        catch_up_events(utcnow())  # the cursor starts at the newest event
        db.session.execute(update(Journey).values(activated_at=utcnow() - timedelta(days=1)))
        db.session.commit()
        listener = app.extensions["personalize.plugins"].pm.get_plugin("personalize.journeys.listener")
        if not args.notified:
            app.extensions["personalize.plugins"].pm.unregister(listener)  # every notification is lost
        store(args.events, "e")
        wall, cpu = time.perf_counter(), time.process_time()
        entered = catch_up_events(utcnow() + timedelta(minutes=2))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total = db.session.scalar(select(func.count()).select_from(JourneyEnrollment))
        print(f"catch-up of {args.events:,} events after {args.history:,}: {wall:.2f} s ({cpu:.2f} s CPU) = "
              f"{1e6 * cpu / args.events:.0f} µs CPU per event, {args.events / wall:,.0f} events/s; entered {entered:,} (in all {total:,})")


def bench_inbox(args, url: str, folder: str) -> None:
    """What listening costs per event: the events API bench's 20 listening journeys
    (``bench_http.listening_journeys``: browse and cart abandonment, price bands, big carts…)
    live on a shop of 1,000 priced products; ``--events`` events of new visitors (10 each, every
    fifth an add to cart) are stored with the notifications kept aside. Then, each timed: the
    ``event_received`` hook for every event (20 a call, as a request calls it), the inbox it
    filled drained as the inbox thread drains it (at most 2,000 a step), and the catch-up's
    second look a minute later, which finds everything handled."""
    from datetime import timedelta

    from bench_http import listening_journeys
    from sqlalchemy import func, select, update

    from personalize import hookimpl
    from personalize.catalog import upsert_products
    from personalize.db import db
    from personalize.journeys import listener
    from personalize.journeys.listener import DRAIN_MAX, Inbox
    from personalize.journeys.models import Journey, JourneyEnrollment
    from personalize.journeys.store import create_journey, get_journey, set_status
    from personalize.journeys.triggers import catch_up_events
    from personalize.models import utcnow
    from personalize.plugins import notify_each
    from personalize.profiles import ingest_events
    from personalize.records import ProductRecord
    from personalize.segments.store import create_segment
    from personalize.sites import create_site

    app = make_app(url, folder)
    print(f"database {url.split(':', 1)[0]}; {machine_speed()}")
    heard: list = []

    class Ears:
        @hookimpl
        def event_received(self, site_id, event):
            heard.append((site_id, event))

    with app.app_context():
        site, _secret = create_site("Bench shop")
        prices = [0.5, 1.5, 2.5, 4, 6, 10, 20, 40, 60, 150, 300]
        upsert_products(site.id, [ProductRecord(id=f"p{i}", title=f"Product {i}", price=prices[i % len(prices)] + (i % 7) / 10)
                                  for i in range(1000)])
        create_segment(site.id, {"key": "bench-vip", "rule": {"field": "orders.total", "op": "gte", "value": 5000}})
        for i, (name, definition) in enumerate(listening_journeys(20)):
            set_status(create_journey(site.id, f"bench-journey-{i}", name, definition), "active")
        journeys = [get_journey(site.id, f"bench-journey-{i}") for i in range(20)]
        assert all(j.status == "active" for j in journeys)
        catch_up_events(utcnow())  # the catch-up's cursor starts before the events
        # the journeys have been live for a while (right after a change the catch-up reads everything again)
        db.session.execute(update(Journey).where(Journey.site_id == site.id).values(updated_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
        plugins = app.extensions["personalize.plugins"].pm
        plugins.unregister(plugins.get_plugin("personalize.journeys.listener"))
        plugins.register(Ears(), "bench-ears")
        rng = random.Random(7)
        for start in range(0, args.events, 1000):
            ingest_events(site, [{"id": f"e{i}", "type": "product_added" if i % 5 == 4 else "product_viewed", "visitor": f"v{i // 10}",
                                  "product_id": f"p{rng.randrange(1000)}", "ts": 1_700_000_000_000 + i}
                                 for i in range(start, min(args.events, start + 1000))], max_events=1000)
        db.session.remove()
    # the hook as a web request calls it (the real listener, each stored event in turn), into an inbox
    # whose thread counts as started, so that the items wait for the drains below
    plugins.unregister(plugins.get_plugin("bench-ears"))
    plugins.register(listener, "personalize.journeys.listener")
    box = app.extensions["personalize.journeys.inbox"] = Inbox(app)
    box._thread = threading.main_thread()
    calls = [{"site_id": site_id, "event": event} for site_id, event in heard]
    with app.test_request_context():
        hook_cpu = time.process_time()
        for start in range(0, len(calls), 20):
            notify_each("event_received", calls[start : start + 20])
        hook_cpu = time.process_time() - hook_cpu
    assert len(box.items) == len(heard)
    wall, cpu, drains = time.perf_counter(), time.process_time(), 0
    with app.app_context():
        while box.items:
            box.drain(DRAIN_MAX)
            drains += 1
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        entered = db.session.scalar(select(func.count()).select_from(JourneyEnrollment))
    print(f"hook (in the requests): {len(heard):,} events: {hook_cpu:.2f} s CPU = {1e6 * hook_cpu / len(heard):.1f} µs CPU per event")
    print(f"inbox: {len(heard):,} events in {drains} drains: {wall:.2f} s ({cpu:.2f} s CPU) = {1e6 * cpu / len(heard):.0f} µs CPU per event; "
          f"{entered:,} entries = {1e6 * cpu / max(1, entered):.0f} µs CPU per entry")
    with app.app_context():  # a minute later the catch-up reads them again, and finds them handled
        if args.marks:  # the inbox's mark, as it stands a minute later: vouching for these events
            listener.MARK_MARGIN_SECONDS = 0.0
            box.drain()
            box.write_mark()
        catch_cpu = time.process_time()
        again = catch_up_events(utcnow() + timedelta(minutes=2))
        catch_cpu = time.process_time() - catch_cpu
    print(f"catch-up{' (the inbox marks vouching)' if args.marks else ' (without the inbox marks)'}: "
          f"{1e6 * catch_cpu / len(heard):.1f} µs CPU per event; entered {again:,} more")
    print(f"together: {1e6 * (hook_cpu + cpu + catch_cpu) / len(heard):.0f} µs CPU per event")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["latency", "throughput", "catchup", "inbox"])
    ap.add_argument("--database-url", default="", help="a PostgreSQL URL (a schema of its own is made and dropped); default: SQLite")
    ap.add_argument("--events", type=int, default=600)
    ap.add_argument("--rate", type=float, default=40.0, help="events a second (latency)")
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--runners", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1000, help="steps a runner claims at once (throughput)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--history", type=int, default=300_000, help="events stored before the caught-up ones (catchup)")
    ap.add_argument("--marks", action=argparse.BooleanOptionalAction, default=True,
                    help="inbox: the catch-up with the inbox's mark written (--no-marks: without, as a process that died)")
    ap.add_argument("--notified", action="store_true", help="catchup: the events were heard and handled when stored (the usual case: the catch-up finds nothing left to do)")
    args = ap.parse_args()
    from personalize.testing import fresh_database

    folder = tempfile.mkdtemp(prefix="bench-journeys-")
    with fresh_database(folder, args.database_url or "sqlite") as url:
        {"latency": bench_latency, "throughput": bench_throughput, "catchup": bench_catchup, "inbox": bench_inbox}[args.what](args, url, folder)


if __name__ == "__main__":
    sys.exit(main())
