"""Segment speed: incremental update of one profile, bulk rebuild over many profiles, score recomputation.

    python bench/bench_segments.py incremental                      # p50/p99 with 50 rule segments
    python bench/bench_segments.py bulk --profiles 1000000          # rebuild one segment (SQLite)
    python bench/bench_segments.py bulk --profiles 1000000 --database postgresql+psycopg://postgres@127.0.0.1:5432/test
    python bench/bench_segments.py scores                           # Online Retail: import, then time the scores

Each run uses a fresh database (a temporary SQLite file, or its own PostgreSQL schema).
"""

from __future__ import annotations

import argparse
import random
import selectors
import socket
import statistics
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from personalize.app import create_app
from personalize.db import db
from personalize.testing import app_config, fresh_database

RETAIL = Path(__file__).resolve().parents[2] / "shared/datasets/online-retail/online_retail_2010_2011.csv.gz"
NOW = datetime(2024, 6, 1)


def fifty_rules() -> list[dict]:
    """A realistic mix: attributes, order aggregates, relative dates, behaviour, nesting, membership."""
    rules = []
    for i in range(10):
        rules.append({"field": "attributes.tier", "op": "eq", "value": ["gold", "silver", "bronze"][i % 3]})
        rules.append({"and": [{"field": "orders.total", "op": "gt", "value": 50 * (i + 1)},
                              {"field": "orders.last_at", "op": "older_than_days", "value": 10 * (i + 1)}]})
        rules.append({"behaviour": {"event": "product_viewed", "category": f"c{i % 5}", "within_days": 14, "min": 1 + i % 3}})
        rules.append({"or": [{"field": "attributes.age", "op": "between", "value": [20 + i, 40 + i]},
                             {"not": {"field": "attributes.country", "op": "in", "value": ["FR", "DE"]}}]})
        rules.append({"and": [{"segment": f"s{i * 5}"}, {"field": "attributes.tags", "op": "has_any", "value": ["sale", f"t{i}"]}]})
    return rules


class RoundTrips:
    """A TCP relay in front of PostgreSQL that counts round trips, read from the wire protocol: a burst
    of the client's messages (until the server speaks) that ends in a wait for an answer (Sync, a
    simple Query, Flush) is one, so pipelined statements share one. Used only by ``--round-trips``
    (it adds latency)."""

    WAITS = {ord("S"), ord("Q"), ord("H")}

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.count = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def settled(self) -> int:
        """The count once the relay has had time to read what is in flight (outside the timed part)."""
        time.sleep(0.02)
        return self.count

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.target)
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, server)
        sel.register(server, selectors.EVENT_READ, client)
        pending, typed = b"", False  # the client's unparsed bytes; startup messages carry no type byte
        counted = False  # this burst of the client's is counted already
        while True:
            for key, _ in sel.select():
                data = key.fileobj.recv(65536)
                if not data:
                    client.close()
                    server.close()
                    return
                if key.fileobj is not client:
                    counted = False
                    key.data.sendall(data)
                    continue
                pending += data
                while True:
                    head = 5 if typed else 4
                    if len(pending) < head:
                        break
                    size = int.from_bytes(pending[head - 4 : head], "big")
                    if len(pending) < head - 4 + size:
                        break
                    if typed and pending[0] in self.WAITS and not counted:
                        counted = True
                        with self._lock:
                            self.count += 1
                    elif not typed and int.from_bytes(pending[4:8], "big") >> 16 == 3:  # the startup message
                        typed = True
                    pending = pending[head - 4 + size :]
                server.sendall(data)  # after counting, so a count is in before its answer reaches the client


def through_counter(url: str) -> tuple[str, RoundTrips]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    relay = RoundTrips(parsed.host or "127.0.0.1", parsed.port or 5432)
    return parsed.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False), relay


def bench_incremental(args) -> None:
    from personalize.catalog import upsert_products
    from personalize.profiles import ingest_events, set_attributes, store_events, validate_batch
    from personalize.records import ProductRecord
    from personalize.segments.live import refresh_profiles
    from personalize.segments.store import create_segment
    from personalize.sites import create_site, get_site

    relay = None
    with tempfile.TemporaryDirectory() as folder, fresh_database(folder, args.database) as url:
        if args.round_trips:
            if not url.startswith("postgresql"):
                raise SystemExit("--round-trips needs a PostgreSQL --database (SQLite has no network round trips)")
            url, relay = through_counter(url)
        app = create_app(app_config(folder, url))
        with app.app_context():
            site, _ = create_site("Bench")
            upsert_products(site.id, [ProductRecord(f"p{i}", f"P{i}", category=f"c{i % 5}") for i in range(200)])
            for i, rule in enumerate(fifty_rules()):
                create_segment(site.id, {"key": f"s{i}", "rule": rule})
            rng = random.Random(1)
            s = get_site(site.id)
            visitors = [f"v{i}" for i in range(args.visitors)]
            t0 = int(time.time() * 1000) - 3_600_000
            batch = [{"id": f"w{i}", "type": "product_viewed", "visitor": visitors[i] if i < len(visitors) else rng.choice(visitors),
                      "product_id": f"p{rng.randrange(200)}", "ts": t0 + i} for i in range(args.visitors * 5)]
            for start in range(0, len(batch), 500):
                ingest_events(s, batch[start : start + 500])
            from personalize.profiles import profile_for_visitor

            for v in visitors[:200]:
                set_attributes(site.id, profile_for_visitor(site.id, v), {"tier": rng.choice(["gold", "silver"]), "age": rng.randint(18, 70),
                               "country": rng.choice(["FR", "UK"]), "tags": ["sale"]}, "bench", commit=False)
            db.session.commit()
            # a plain id: reading ``site.id`` after a commit reloads the object (a query inside the timed part)
            site_id = site.id
            refresh_times, cpu_times, changed = [], [], 0
            trips: dict[bool, list[int]] = {True: [], False: []}  # by whether membership changed
            for i in range(args.n):
                v = rng.choice(visitors)
                ev = {"id": f"x{i}", "type": "product_viewed", "visitor": v, "product_id": f"p{rng.randrange(200)}"}
                result = store_events(site_id, validate_batch([ev], 1))  # stored and committed, segments not yet updated
                before = relay.settled() if relay else 0
                started, cpu = time.perf_counter(), time.process_time()
                n = len(refresh_profiles(site_id, result.profiles))
                refresh_times.append(time.perf_counter() - started)
                cpu_times.append(time.process_time() - cpu)
                changed += n
                if relay:
                    trips[n > 0].append(relay.settled() - before)
            print(f"database: {db.engine.dialect.name}; 50 rule segments; {args.visitors:,} profiles; {args.n} events, {changed} membership changes")
            if relay:
                for moved, label in ((False, "no membership change"), (True, "membership changed")):
                    if trips[moved]:
                        spread = ", ".join(f"{k}: {trips[moved].count(k)}" for k in sorted(set(trips[moved])))
                        print(f"round trips per update, {label} ({len(trips[moved])} updates): mean {statistics.mean(trips[moved]):.2f} ({spread})")
                print("(timings below include the counting relay's latency)")
            report("segment update of one profile (wall)", refresh_times)
            report("segment update of one profile (CPU of this process)", cpu_times)
        with app.app_context():
            db.engine.dispose()


def report(label: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"{label}: p50 {statistics.median(ms):.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms")


def fill_profiles(n: int, site_id: int) -> None:
    """n profiles; every third with an order history (1-2 orders), every odd one with tier "gold"."""
    dialect = db.engine.dialect.name
    started = time.perf_counter()
    if dialect == "postgresql":
        series = "SELECT g AS i FROM generate_series(1, :n) AS g"
    else:
        series = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) SELECT i FROM s"
    with db.engine.begin() as conn:
        conn.execute(text(f"INSERT INTO profiles (id, site_id, attributes, created_at, last_seen_at) SELECT i, :site, '{{}}', :t, :t FROM ({series}) AS q"),
                     {"n": n, "site": site_id, "t": NOW - timedelta(days=400)})
        conn.execute(text(f"INSERT INTO orders (site_id, external_id, profile_id, total, currency, country, source, occurred_at) "
                          f"SELECT :site, 'o' || i, i, (i % 97) * 11.0, 'GBP', '', 'bench', :t0 FROM ({series}) AS q WHERE i % 3 = 0"),
                     {"n": n, "site": site_id, "t0": NOW - timedelta(days=90)})
        conn.execute(text(f"INSERT INTO orders (site_id, external_id, profile_id, total, currency, country, source, occurred_at) "
                          f"SELECT :site, 'p' || i, i, 40.0, 'GBP', '', 'bench', :t1 FROM ({series}) AS q WHERE i % 6 = 0"),
                     {"n": n, "site": site_id, "t1": NOW - timedelta(days=20)})
        conn.execute(text(f"INSERT INTO profile_attributes (site_id, profile_id, name, value, vtype, value_text, source, updated_at) "
                          f"SELECT :site, i, 'tier', '\"gold\"', 's', 'gold', 'bench', :t FROM ({series}) AS q WHERE i % 2 = 1"),
                     {"n": n, "site": site_id, "t": NOW})
        if dialect == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('profiles', 'id'), :n)"), {"n": n})
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    print(f"filled {n:,} profiles in {time.perf_counter() - started:.1f} s")


def bench_bulk(args) -> None:
    from personalize.segments.bulk import preview_count, rebuild_segment
    from personalize.segments.store import create_segment
    from personalize.sites import create_site

    rule = {"and": [{"field": "orders.total", "op": "gt", "value": 500}, {"field": "orders.last_at", "op": "older_than_days", "value": 60},
                    {"field": "attributes.tier", "op": "eq", "value": "gold"}]}
    with tempfile.TemporaryDirectory() as folder, fresh_database(folder, args.database) as url:
        app = create_app(app_config(folder, url))
        with app.app_context():
            site, _ = create_site("Bench")
            fill_profiles(args.profiles, site.id)
            started = time.perf_counter()
            count = preview_count(site.id, rule, NOW)
            print(f"preview count: {count:,} in {time.perf_counter() - started:.1f} s")
            create_segment(site.id, {"key": "lapsing-gold", "rule": rule})
            first = rebuild_segment(site.id, "lapsing-gold", NOW)
            print(f"{db.engine.dialect.name}: first rebuild over {args.profiles:,} profiles: {first}")
            again = rebuild_segment(site.id, "lapsing-gold", NOW + timedelta(days=30))
            print(f"{db.engine.dialect.name}: rebuild 30 days later (changes only): {again}")
            db.session.remove()
        with app.app_context():
            db.engine.dispose()


def bench_scores(args) -> None:
    from personalize.importers import read_uci_orders
    from personalize.profiles import import_orders
    from personalize.segments.scores import compute_scores
    from personalize.sites import create_site

    with tempfile.TemporaryDirectory() as folder, fresh_database(folder, args.database) as url:
        app = create_app(app_config(folder, url))
        with app.app_context():
            site, _ = create_site("Online Retail")
            started = time.perf_counter()
            import_orders(site.id, read_uci_orders(RETAIL))
            print(f"import: {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            summary = compute_scores(site.id, datetime(2011, 12, 10), progress=lambda stage: print(f"  {time.perf_counter() - started:6.2f} s  {stage}"))
            took = time.perf_counter() - started
            print(f"{db.engine.dialect.name}: scores for {summary['customers']:,} customers in {took:.1f} s")
            print(f"  BG/NBD {summary['bgnbd']}")
            print(f"  Gamma-Gamma {summary['gamma_gamma']}")
            print(f"  k = {summary['k']} (silhouettes {({k: round(v, 3) for k, v in summary['silhouettes'].items()})})")
            for name, n in summary["clusters"].items():
                print(f"  {name}: {n:,}")
            from personalize.segments.cli import propensity_lines

            for line in propensity_lines(summary):
                print(f"  {line}")
            db.session.remove()
        with app.app_context():
            db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["incremental", "bulk", "scores"])
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: a temporary SQLite file)")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("-n", type=int, default=1000, help="events for the incremental benchmark")
    parser.add_argument("--round-trips", action="store_true", help="incremental on PostgreSQL: count round trips per update through a relay")
    args = parser.parse_args()
    {"incremental": bench_incremental, "bulk": bench_bulk, "scores": bench_scores}[args.what](args)


if __name__ == "__main__":
    main()
