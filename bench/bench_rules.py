"""What N active rules by attribute cost a recommendation request, side by side with none.

One process builds a shop (SQLite, a generated catalogue with categories, brands, margins and
prices, and shoppers' views and orders), trains its model, then calls
``GET /api/v1/recommendations`` through the whole WSGI stack for the same visitors with each
rule set in turn, several rounds interleaved, every list computed afresh (no reuse of rankings).
Half the rules have a condition on the visitor's history, some a date window and slot filter::

    python bench/bench_rules.py --products 5000 --rules 0,50 --rounds 5 --requests 500
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

import numpy as np
from werkzeug.test import EnvironBuilder


def shop(app, n_products: int, n_visitors: int, seed: int = 0):
    from personalize.catalog import upsert_products
    from personalize.profiles import ingest_events
    from personalize.recommend.service import train_site
    from personalize.records import ProductRecord
    from personalize.sites import create_site

    rng = random.Random(seed)
    categories = [f"cat-{i}" for i in range(60)]
    brands = [f"brand-{i}" for i in range(40)]
    with app.app_context():
        site, _secret = create_site("Bench shop", ["https://shop.example"])
        products = [ProductRecord(
            f"p{i}", f"Product {i}", f"/p/{i}", "", round(rng.uniform(2, 300), 2), "EUR", rng.choice(categories),
            attributes={"brand": rng.choice(brands), "margin": round(rng.uniform(0, 0.6), 2)},
        ) for i in range(n_products)]
        upsert_products(site.id, products)
        by_cat: dict[str, list[str]] = {}
        for p in products:
            by_cat.setdefault(p.category, []).append(p.id)
        events = []
        t = int(time.time() * 1000) - 86_400_000
        for v in range(n_visitors):
            likes = rng.sample(categories, 2)
            seen = [rng.choice(by_cat[rng.choice(likes)]) for _ in range(rng.randint(2, 8))]
            for j, pid in enumerate(seen):
                events.append({"id": f"v{v}-{j}", "type": "product_viewed", "visitor": f"v{v}", "product_id": pid, "ts": t + j})
            if rng.random() < 0.5:
                events.append({"id": f"v{v}-o", "type": "order_completed", "visitor": f"v{v}", "order_id": f"o{v}", "ts": t + 100,
                               "items": [{"product_id": pid, "quantity": 1, "price": 10.0} for pid in seen[:2]]})
        for start in range(0, len(events), 1000):
            ingest_events(site, events[start:start + 1000])
        train_site(site.id)
        return site.id, site.public_key, categories, brands


def make_rules(n: int, categories: list[str], brands: list[str], seed: int = 1) -> list[dict]:
    from personalize.recommend.merchandising import validate_rules

    rng = random.Random(seed)
    rules = []
    for i in range(n):
        kind = i % 5
        cat = {"field": "category", "op": "is", "value": [rng.choice(categories)]}
        if kind == 0:
            rule = {"action": "show", "count": 2, "items": cat, "when": {"did": "bought", "items": {"field": "category", "op": "is", "value": [rng.choice(categories)]}}}
        elif kind == 1:
            rule = {"action": "boost", "factor": 2, "items": {"field": "attributes.brand", "op": "is", "value": [rng.choice(brands)]}}
        elif kind == 2:
            rule = {"action": "bury", "items": {"field": "attributes.margin", "op": "below", "value": 0.05}}
        elif kind == 3:
            low = rng.uniform(0, 250)
            rule = {"action": "hide", "items": {"field": "price", "op": "between", "value": [low, low + 5]}, "slots": ["home", "cart"]}
        else:
            rule = {"action": "boost", "factor": 1.5, "items": cat, "starts": "2020-01-01", "ends": "2999-01-01",
                    "when": {"did": "viewed", "items": {"field": "category", "op": "is", "value": [rng.choice(categories)]}}}
        rules.append({"name": f"rule {i}", "id": f"r{i}", **rule})
    return validate_rules(rules)


def call(app, environ: dict) -> int:
    status = []
    body = app(environ, lambda s, h, e=None: status.append(s))
    for _chunk in body:
        pass
    getattr(body, "close", lambda: None)()
    return int(status[0][:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--products", type=int, default=5000)
    ap.add_argument("--visitors", type=int, default=3000)
    ap.add_argument("--rules", default="0,50", help="comma-separated numbers of active rules")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=500, help="recommendation requests per rule set per round")
    args = ap.parse_args()

    from personalize.db import db
    from personalize.sites import get_site
    from personalize.testing import throwaway_app

    counts = [int(x) for x in args.rules.split(",")]
    with throwaway_app("pz-bench-rules-", RECOMMENDATION_CACHE_SECONDS=0, RATE_LIMIT_PER_IP=0, RATE_LIMIT_PER_SITE=0,
                       SYNC_SCHEDULER=False, TESTING=False) as app:
        started = time.perf_counter()
        site_id, key, categories, brands = shop(app, args.products, args.visitors)
        print(f"shop: {args.products:,} products, {args.visitors:,} visitors, built and trained in {time.perf_counter() - started:.0f} s", flush=True)
        rule_sets = {n: make_rules(n, categories, brands) for n in counts}
        rng = random.Random(2)
        visitors = [f"v{rng.randrange(args.visitors)}" for _ in range(args.requests)]
        slots = ["home", "product", "cart"]
        environs = [EnvironBuilder(path="/api/v1/recommendations", query_string={
            "key": key, "visitor": v, "slot": slots[i % 3], **({"product": f"p{i % args.products}"} if i % 3 == 1 else {})}).get_environ()
            for i, v in enumerate(visitors)]

        def use(n: int) -> None:
            with app.app_context():
                s = get_site(site_id)
                s.settings = {"rules": {"attribute_rules": rule_sets[n]}} if n else {}
                db.session.commit()

        ms: dict[int, list[float]] = {n: [] for n in counts}
        cpu: dict[int, list[float]] = {n: [] for n in counts}
        compile_ms: dict[int, float] = {}
        for n in counts:  # warm up: model loaded, statements prepared, rules compiled
            use(n)
            t0 = time.perf_counter()
            assert call(app, dict(environs[0])) == 200
            compile_ms[n] = (time.perf_counter() - t0) * 1000
            for env in environs[:100]:
                call(app, dict(env))
        for _round in range(args.rounds):
            for n in counts:
                use(n)
                call(app, dict(environs[0]))  # the compile after the change, outside the timing
                for env in environs:
                    t0, c0 = time.perf_counter(), time.process_time()
                    assert call(app, dict(env)) == 200
                    ms[n].append((time.perf_counter() - t0) * 1000)
                    cpu[n].append((time.process_time() - c0) * 1000)
        base = counts[0]
        print(f"{args.rounds} rounds × {args.requests} requests per rule set (slots home / product / cart), interleaved")
        print(f"{'rules':>6} {'p50 ms':>8} {'p99 ms':>8} {'CPU p50 ms':>11} {'p50 vs ' + str(base):>11} {'first request (compile) ms':>28}")
        for n in counts:
            a = np.array(ms[n])
            ratio = statistics.median(ms[n]) / statistics.median(ms[base])
            print(f"{n:>6} {np.percentile(a, 50):>8.2f} {np.percentile(a, 99):>8.2f} {np.percentile(np.array(cpu[n]), 50):>11.2f} "
                  f"{ratio:>10.2f}× {compile_ms[n]:>28.1f}")
        print("load average (1 / 5 / 15 min): {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    sys.exit(main())
