"""Retention speed: how fast the ``retention`` job prunes old raw events, and how long one batch
holds the database (the longest any event intake could wait behind it).

    python bench/bench_retention.py                                   # 300,000 old events, SQLite
    python bench/bench_retention.py --events 1000000 --database postgresql+psycopg://postgres@127.0.0.1:5432/test

Each run uses a fresh database (a temporary SQLite file, or its own PostgreSQL schema). The
events belong to one site and are spread over 400 days; the retention is 90 days.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select

from personalize.app import create_app
from personalize.db import db
from personalize.models import Event, Site
from personalize.testing import app_config, fresh_database

NOW = datetime(2026, 6, 1)


def fill(n: int) -> int:
    """Insert ``n`` events over 400 days; return how many are older than 90 days."""
    from personalize.sites import create_site

    site_id = create_site("shop")[0].id
    rng = random.Random(7)
    old = 0
    for start in range(0, n, 20_000):
        rows = []
        for i in range(start, min(n, start + 20_000)):
            when = NOW - timedelta(days=rng.random() * 400)
            old += when < NOW - timedelta(days=90)
            rows.append({"site_id": site_id, "event_id": f"e{i}", "type": "product_viewed", "visitor": f"v{i % 5000}",
                         "product_id": f"p{i % 300}", "properties": {}, "occurred_at": when, "received_at": when})
        db.session.execute(insert(Event), rows)
        db.session.commit()
    return old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    from personalize import retention

    with tempfile.TemporaryDirectory() as folder, fresh_database(folder, args.database) as url:
        app = create_app(app_config(folder, url, EVENT_RETENTION_DAYS=90))
        with app.app_context():
            old = fill(args.events)
            batches: list[float] = []
            started = time.perf_counter()
            deleted = 0
            while True:  # one batch at a time, to time each transaction
                t = time.perf_counter()
                n = retention.prune_events(now=NOW, batch_size=args.batch, max_batches=1)
                if n:
                    batches.append(time.perf_counter() - t)
                    deleted += n
                if n == 0:
                    break
            seconds = time.perf_counter() - started
            left = db.session.scalar(select(func.count()).select_from(Event))
            assert deleted == old and left == args.events - old, (deleted, old, left)
            assert db.session.scalar(select(func.count()).select_from(Site)) == 1
            print(f"{db.engine.dialect.name}: pruned {deleted:,} of {args.events:,} events in {seconds:.1f} s "
                  f"({deleted / seconds:,.0f} events/s), {len(batches)} batches of {args.batch}: "
                  f"median {statistics.median(batches) * 1000:.0f} ms, longest {max(batches) * 1000:.0f} ms")
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
