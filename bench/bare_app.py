"""The least a Flask app under gunicorn can do for personalize's two busy requests: the ceilings
that ``bench/bench_ceiling.py`` measures personalize against.

* ``rec``: ``GET /api/v1/recommendations`` answers 8 fixed items (the fields personalize's
  list has), serialised per request;
* ``events``: ``POST /api/v1/events`` parses the JSON batch and inserts its events into one
  table (unique event id, duplicates ignored) in one transaction, then answers 202 after the
  commit. SQLite with personalize's own settings (WAL, ``synchronous=NORMAL``), or PostgreSQL.

Both run under gunicorn with the options ``personalize serve`` uses
(:func:`personalize.serve.gunicorn_options`: workers, threads, gthread, keep-alive; the
garbage collector frozen after start), so the difference measured is personalize's own work::

    python bench/bare_app.py rec --port 8101
    python bench/bare_app.py events --port 8102 --database sqlite:////tmp/bare.db
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import threading

from flask import Flask, Response, request

ITEMS = [
    {"id": f"2{i:04d}", "title": f"Product number {i}", "url": f"https://shop.example/p/2{i:04d}",
     "image": f"https://shop.example/img/2{i:04d}.jpg", "price": 2.95 + i, "currency": "GBP", "reason": "Popular right now"}
    for i in range(8)
]


def rec_app() -> Flask:
    app = Flask("bare_rec")

    @app.get("/api/v1/recommendations")
    def recommendations():
        body = json.dumps({"rec_id": "r_0123456789abcdef", "slot": request.args.get("slot", "home"), "strategy": "personal",
                           "items": ITEMS}, separators=(",", ":"))
        return Response(body, mimetype="application/json", headers={"Cache-Control": "private, no-store"})

    @app.get("/api/v1/ready")
    def ready():
        return {"models": {"state": "ok"}}

    return app


SCHEMA = ("CREATE TABLE IF NOT EXISTS bare_events (id {pk}, event_id VARCHAR(128) NOT NULL UNIQUE, visitor VARCHAR(128), "
          "type VARCHAR(64), product_id VARCHAR(128), ts BIGINT)")


def events_app(database: str) -> Flask:
    app = Flask("bare_events")
    local = threading.local()
    pg = database.startswith("postgresql")

    def connection():
        conn = getattr(local, "conn", None)
        if conn is None:
            if pg:
                import psycopg

                conn = psycopg.connect(database.replace("postgresql+psycopg://", "postgresql://"))
            else:
                conn = sqlite3.connect(database.removeprefix("sqlite:///"), timeout=30, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            local.conn = conn
        return conn

    insert = ("INSERT INTO bare_events (event_id, visitor, type, product_id, ts) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
              if pg else "INSERT OR IGNORE INTO bare_events (event_id, visitor, type, product_id, ts) VALUES (?, ?, ?, ?, ?)")

    @app.post("/api/v1/events")
    def events():
        body = json.loads(request.get_data())
        rows = [(e["id"], e["visitor"], e["type"], e.get("product_id"), e.get("ts")) for e in body["events"]]
        conn = connection()
        cur = conn.cursor()
        cur.executemany(insert, rows)
        conn.commit()
        return {"accepted": len(rows)}, 202

    @app.get("/api/v1/ready")
    def ready():
        return {"models": {"state": "ok"}}

    return app


def create_table(database: str) -> None:
    if database.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database.replace("postgresql+psycopg://", "postgresql://")) as conn:
            conn.execute(SCHEMA.format(pk="BIGSERIAL PRIMARY KEY"))
    else:
        conn = sqlite3.connect(database.removeprefix("sqlite:///"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(SCHEMA.format(pk="INTEGER PRIMARY KEY"))
        conn.commit()
        conn.close()


def main() -> None:
    from personalize.serve import Server, gunicorn_options

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["rec", "events"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--worker-class", help="the gunicorn worker class personalize serve uses (default: the same choice)")
    ap.add_argument("--database", default="sqlite:////tmp/bare-events.db")
    args = ap.parse_args()
    if args.kind == "events":
        create_table(args.database)
    options = gunicorn_options("127.0.0.1", args.port, args.workers, args.threads, loglevel="warning")
    if args.worker_class:
        options["worker_class"] = args.worker_class
    options["post_worker_init"] = lambda worker: gc.freeze()  # as personalize's workers do
    factory = rec_app if args.kind == "rec" else (lambda: events_app(args.database))
    Server(options, app_factory=factory).run()


if __name__ == "__main__":
    main()
