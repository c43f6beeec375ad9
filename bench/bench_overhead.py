"""CPU per request of the widget's two hot paths with /metrics off, on, and with the access log on.

``bench_http.py --metrics`` gives the same comparison over HTTP, but on a shared machine its
requests/s move with the neighbours more than with a few microseconds of ours. Here one
process calls the application (WSGI, the whole stack but the socket) with each setting in
turn, several rounds interleaved, and reports the median CPU time per request of each, so
the difference is what the setting costs::

    export PERSONALIZE_INSTANCE_PATH=/tmp/bench-sqlite     # prepared by bench_http.py --setup
    python bench/bench_overhead.py --rounds 7 --requests 2000

The access log is written through the configured JSON formatter and redaction filter to a
file, as ``personalize serve`` would write it to its standard error.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time

from werkzeug.test import EnvironBuilder


def build(mode: str):
    from personalize.app import create_app

    # every list computed (no reuse of rankings, which the apps of one process share): the same work in each mode
    extra = {"RATE_LIMIT_PER_IP": 0, "RATE_LIMIT_PER_SITE": 0, "SYNC_SCHEDULER": False, "RECOMMENDATION_CACHE_SECONDS": 0}
    if mode in ("metrics", "metrics+access"):
        extra.update(METRICS="token", METRICS_TOKEN=secrets.token_urlsafe(24))
    if mode in ("access", "metrics+access"):
        extra["ACCESS_LOG"] = True
    return create_app(extra)


def call(app, environ: dict) -> int:
    status = []
    body = app(environ, lambda s, h, e=None: status.append(s))
    for _chunk in body:
        pass
    getattr(body, "close", lambda: None)()
    return int(status[0][:3])


def run(app, requests: list[dict]) -> float:
    """CPU seconds per request over ``requests`` (each a fresh environ)."""
    started = time.process_time()
    for environ in requests:
        call(app, environ)
    return (time.process_time() - started) / len(requests)


def recommendation_requests(key: str, visitors: list[str], n: int) -> list[dict]:
    return [EnvironBuilder(path="/api/v1/recommendations", query_string={"key": key, "visitor": visitors[i % len(visitors)]}).get_environ()
            for i in range(n)]


def event_requests(key: str, products: list[str], n: int) -> list[dict]:
    run_id = secrets.token_hex(3)
    now = int(time.time() * 1000)
    out = []
    for i in range(n):
        events = [{"id": f"{run_id}-{i}-{j}", "type": "product_viewed", "visitor": f"{run_id}-v{i % 500}",
                   "product_id": products[(i + j) % len(products)], "ts": now} for j in range(10)]
        out.append(EnvironBuilder(path="/api/v1/events", method="POST", data=json.dumps({"key": key, "events": events}),
                                  content_type="text/plain").get_environ())
    return out


def middleware_cost(modes: list[str], calls: int = 100_000) -> dict[str, float]:
    """CPU seconds per request of the middleware alone (request id, route, metrics, access log) around an
    application that answers at once: what each mode adds to every request, without the noise of the rest."""
    from flask import Flask

    from personalize import monitoring

    out = {}
    for mode in modes:
        flask_app = Flask("bench")
        flask_app.config.update(ACCESS_LOG=mode in ("access", "metrics+access"), INSTANCE_PATH=tempfile.mkdtemp())
        if mode in ("metrics", "metrics+access"):
            flask_app.extensions["personalize.metrics"] = monitoring.make_publisher(flask_app)

        def answer(environ, start_response):
            environ[monitoring.ROUTE_KEY] = "/api/v1/recommendations"  # what the url_value_preprocessor sets
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
            return [b"{}"]

        wrapped = monitoring.RequestMiddleware(answer, flask_app)
        environ = EnvironBuilder(path="/api/v1/recommendations", query_string={"key": "pk_x", "visitor": "v"}).get_environ()
        best = min(_timed(wrapped, environ, calls) for _ in range(5))
        bare = min(_timed(answer, environ, calls) for _ in range(5))
        out[mode] = best - bare
        publisher = flask_app.extensions.get("personalize.metrics")
        if publisher is not None:
            publisher.stop()
    return out


def _timed(app, environ: dict, calls: int) -> float:
    start = lambda status, headers, exc_info=None: None  # noqa: E731
    started = time.process_time()
    for _ in range(calls):
        app(dict(environ), start)
    return (time.process_time() - started) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=2000, help="recommendation requests per round (events: a quarter, of 10 events)")
    ap.add_argument("--modes", default="off,metrics,access", help="comma-separated: off, metrics, access, metrics+access")
    args = ap.parse_args()
    if not os.environ.get("PERSONALIZE_INSTANCE_PATH"):
        raise SystemExit("set PERSONALIZE_INSTANCE_PATH to an instance prepared by bench/bench_http.py --setup")

    from bench_http import site_and_products, visitors_with_history

    from personalize.logs import configure

    log_file = tempfile.NamedTemporaryFile("w", prefix="bench-overhead-", suffix=".log", delete=False)  # noqa: SIM115
    configure({"LOG_LEVEL": "INFO", "LOG_FORMAT": "json"}, log_file)
    modes = [m.strip() for m in args.modes.split(",")]
    apps = {mode: build(mode) for mode in modes}
    key, products = site_and_products(apps[modes[0]])
    visitors = visitors_with_history(apps[modes[0]], [], 2000)
    if not visitors or not products:
        raise SystemExit("this instance has no visitors or products: run bench/bench_http.py --setup first")
    print(f"{len(visitors):,} visitors, {len(products):,} products; {args.rounds} rounds × {args.requests:,} recommendations "
          f"and {args.requests // 4:,} event batches of 10 per mode; access log to {log_file.name}", flush=True)

    for app in apps.values():  # warm up: models loaded, caches filled, statements prepared
        run(app, recommendation_requests(key, visitors, 300))
        run(app, event_requests(key, products, 50))

    results: dict[str, dict[str, list[float]]] = {mode: {"recommendations": [], "events": []} for mode in modes}
    for r in range(args.rounds):
        for mode in modes if r % 2 == 0 else list(reversed(modes)):
            app = apps[mode]
            results[mode]["recommendations"].append(run(app, recommendation_requests(key, visitors, args.requests)))
            results[mode]["events"].append(run(app, event_requests(key, products, args.requests // 4)))
        print(f"  round {r + 1}: " + ", ".join(f"{m} {results[m]['recommendations'][-1] * 1e6:.0f}/{results[m]['events'][-1] * 1e6:.0f} µs"
                                              for m in modes), flush=True)
    base = {path: statistics.median(results[modes[0]][path]) for path in ("recommendations", "events")}
    print("CPU per request, median and best of the rounds (recommendation / batch of 10 events):")
    for mode in modes:
        rec, ev = (statistics.median(results[mode][p]) for p in ("recommendations", "events"))
        print(f"  {mode:<16} {rec * 1e6:7.0f} µs ({(rec - base['recommendations']) * 1e6:+5.0f}), best {min(results[mode]['recommendations']) * 1e6:.0f}   "
              f"{ev * 1e6:7.0f} µs ({(ev - base['events']) * 1e6:+5.0f}), best {min(results[mode]['events']) * 1e6:.0f}")
    print("the middleware alone, best of 5 × 100,000 calls (what each mode adds to every request):")
    for mode, seconds in middleware_cost(modes).items():
        print(f"  {mode:<16} {seconds * 1e6:6.1f} µs")
    for app in apps.values():
        publisher = app.extensions.get("personalize.metrics")
        if publisher is not None:
            publisher.stop()


if __name__ == "__main__":
    sys.exit(main())
