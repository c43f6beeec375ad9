"""What reading the person's assignment key costs GET /api/v1/recommendations while a holdout is on.

With a holdout (or an experiment on the slot), the visitor-history query joins ``profiles`` to read
the profile's ``assignment_key`` (the holdout and the arms follow the person, not the id asked
by). This times the endpoint, in process through the Flask test client, on a small trained shop
with a 20 % holdout, with the new query and with the old one (the same statement without the
join; the key then falls back to the raw visitor id), alternating request by request in one run,
and prints the p50s and their ratio. A third column, the holdout off (no key read at all), is
printed for scale.

    python bench/bench_assignment.py [--requests 3000]

Set ``PERSONALIZE_TEST_DATABASE_URL`` to run it on PostgreSQL.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per variant")
    parser.add_argument("--visitors", type=int, default=600)
    args = parser.parse_args()

    import numpy as np
    from sqlalchemy import String, literal

    from personalize.catalog import upsert_products
    from personalize.db import db
    from personalize.insights import set_holdout_share
    from personalize.models import Site
    from personalize.profiles import ingest_events
    from personalize.recommend import service
    from personalize.recommend.service import DriverQuery, train_site
    from personalize.records import ProductRecord
    from personalize.sites import create_site
    from personalize.testing import throwaway_app

    with throwaway_app("pz-bench-assign-", RECOMMENDATION_CACHE_SECONDS=0, RATE_LIMIT_PER_IP=0, RATE_LIMIT_PER_SITE=0) as app:
        with app.app_context():
            site, _ = create_site("Bench shop", ["https://shop.example"])
            rng = np.random.default_rng(1)
            upsert_products(site.id, [ProductRecord(f"p{i}", f"Product {i}", f"/p/{i}", "", 10.0 + i % 50, "EUR", f"c{i % 12}") for i in range(400)])
            events = []
            for v in range(args.visitors):
                for j, item in enumerate(rng.choice(400, size=8, replace=False)):
                    events.append({"id": f"e{v}-{j}", "type": "product_viewed", "visitor": f"v{v}", "product_id": f"p{item}",
                                   "ts": 1_700_000_000_000 + j})
            for start in range(0, len(events), 1000):
                ingest_events(site, events[start : start + 1000])
            train_site(site.id)
            site = db.session.get(Site, site.id)
            set_holdout_share(site, 0.2)
            key, site_id = site.public_key, site.id

        new_query = service._VISITOR_KEYED
        # the old statement (no join to profiles), with an empty key column so the same code reads it
        old_stmt = service._visitor_statement()
        old_stmt = old_stmt.with_only_columns(*list(old_stmt.selected_columns)[:4], literal(None, String).label("assignment_key"),
                                              *list(old_stmt.selected_columns)[4:])
        old_query = DriverQuery(old_stmt)
        client = app.test_client()
        headers = {"Origin": "https://shop.example"}

        shown: dict[str, int] = {}

        def ask(n: int, label: str) -> float:
            started = time.perf_counter()
            r = client.get("/api/v1/recommendations", query_string={"key": key, "visitor": f"v{n % args.visitors}", "limit": 8},
                           headers=headers)
            took = time.perf_counter() - started
            assert r.status_code == 200, r.get_data(as_text=True)
            if r.json["strategy"] == "holdout":
                shown[label] = shown.get(label, 0) + 1
            return took

        def holdout(share: float) -> None:
            with app.app_context():
                set_holdout_share(db.session.get(Site, site_id), share)

        for n in range(200):  # warm up: compiled statements, the model, the cards
            ask(n, "warm-up")
        times: dict[str, list[float]] = {"new query (join)": [], "old query": [], "holdout off": []}
        for n in range(args.requests):
            service._VISITOR_KEYED = new_query
            times["new query (join)"].append(ask(n, "new query (join)"))
            service._VISITOR_KEYED = old_query
            times["old query"].append(ask(n, "old query"))
            service._VISITOR_KEYED = new_query
        holdout(0.0)
        for n in range(args.requests):
            times["holdout off"].append(ask(n, "holdout off"))
        with app.app_context():
            from personalize.recommend.holdout import hash_point

            held = sum(hash_point(site_id, f"v{v}") < 0.2 for v in range(args.visitors))
        dialect = app.config["DATABASE_URL"].split(":", 1)[0]
        print(f"GET /api/v1/recommendations in process, {dialect}, {args.requests} requests per variant, "
              f"20 % holdout ({held} of {args.visitors} visitors held out), ranking cache off")
        p50 = {}
        for label, values in times.items():
            ms = np.array(values) * 1000
            p50[label] = np.percentile(ms, 50)
            print(f"  {label:18} p50 {p50[label]:6.2f} ms   p99 {np.percentile(ms, 99):6.2f} ms   "
                  f"holdout lists {shown.get(label, 0)}")
        print(f"  ratio of p50s, new / old query (holdout on, same run): {p50['new query (join)'] / p50['old query']:.3f}")
        print(f"  (holdout off, measured after the alternating pairs: {p50['holdout off'] / p50['old query']:.3f} of the old query's p50)")


if __name__ == "__main__":
    main()
