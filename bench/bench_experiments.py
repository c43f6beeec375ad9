"""Coverage of experiment intervals when the owner looks every day (issue 16, part 4).

Simulates many 30-day two-arm experiments with a known true lift, looks after every day,
and prints the share of experiments whose every daily interval held the truth: the
always-valid intervals of the experiment page (mixture SPRT confidence sequences) against
the naive fixed-sample 95 % interval, plus the naive interval at one pre-set look.

    python bench/bench_experiments.py [--replications 4000] [--serving 2000]

``--serving N`` also times N in-process ``recommend_for`` calls on a small trained shop without an
experiment and with one running on the slot, interleaved in one run (the cost of choosing a version).
"""

from __future__ import annotations

import argparse
import time

from personalize.insights.peeking import simulate_peeking

SCENARIOS = (
    # (name, visitors a day per arm, conversion, true relative lift)
    ("busy shop, no real difference", 300, 0.03, 0.0),
    ("busy shop, +15 % lift", 300, 0.03, 0.15),
    ("small shop, +20 % lift", 60, 0.05, 0.20),
    ("large shop, +5 % lift", 2000, 0.02, 0.05),
)
METRICS = ("conversion", "conversion_relative", "revenue_per_visitor", "revenue_per_visitor_relative")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=4000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--serving", type=int, default=0, help="also time this many recommend_for calls each way")
    args = parser.parse_args()
    if args.serving:
        serving_overhead(args.serving)
    print(f"{args.replications} simulated experiments per scenario, looked at after each of {args.days} days\n")
    print(f"{'scenario':32} {'metric':30} {'always-valid':>12} {'naive daily':>12} {'naive 1 look':>12}")
    for name, visitors, conversion, lift in SCENARIOS:
        started = time.perf_counter()
        result = simulate_peeking(replications=args.replications, days=args.days, visitors_per_day=visitors,
                                  conversion=conversion, lift=lift, seed=args.seed)
        for metric in METRICS:
            print(f"{name:32} {metric:30} {result.always_valid[metric]:12.1%} {result.naive[metric]:12.1%} "
                  f"{result.naive_single_look[metric]:12.1%}")
        print(f"{'':32} {'width at day ' + str(args.days) + ', always-valid / naive':30} "
              f"{result.always_valid_width['conversion']:12.2f}   ({time.perf_counter() - started:.1f} s)")


def serving_overhead(calls: int) -> None:
    """p50/p99 of recommend_for without and with a running experiment on the slot, alternating."""
    import numpy as np

    from personalize.catalog import upsert_products
    from personalize.db import db
    from personalize.experiments.store import create_experiment, start_experiment, stop_experiment
    from personalize.models import Site
    from personalize.profiles import ingest_events
    from personalize.recommend.service import recommend_for, train_site
    from personalize.records import ProductRecord
    from personalize.sites import create_site
    from personalize.testing import throwaway_app

    with throwaway_app("pz-bench-exp-", RECOMMENDATION_CACHE_SECONDS=0) as app, app.app_context():
        site, _ = create_site("Bench shop")
        rng = np.random.default_rng(1)
        upsert_products(site.id, [ProductRecord(f"p{i}", f"Product {i}", f"/p/{i}", "", 10.0 + i % 50, "EUR", f"c{i % 12}") for i in range(400)])
        events = []
        for v in range(600):
            for j, item in enumerate(rng.choice(400, size=6, replace=False)):
                events.append({"id": f"e{v}-{j}", "type": "product_viewed", "visitor": f"v{v}", "product_id": f"p{item}", "ts": 1_700_000_000_000 + j})
        for start in range(0, len(events), 1000):
            ingest_events(site, events[start : start + 1000])
        train_site(site.id)
        site = db.session.get(Site, site.id)
        experiment = create_experiment(site, {"name": "bench", "slot": "home", "arms": [
            {"name": "A", "override": {}}, {"name": "B", "override": {"rules": {"weights": {"popular": 2.0}}}}]})
        times: dict[str, list[float]] = {"no experiment": [], "experiment running": []}
        for n in range(calls):
            for label in times:
                if label == "experiment running":
                    start_experiment(site, experiment)
                started = time.perf_counter()
                recommend_for(site, f"v{n % 600}", slot="home", limit=8)
                times[label].append(time.perf_counter() - started)
                if label == "experiment running":
                    stop_experiment(site, experiment)
                    experiment.status, experiment.started_at, experiment.stopped_at = "draft", None, None
                    db.session.commit()
        print(f"recommend_for, in-process, {calls} calls each, alternating (ranking cache off):")
        for label, values in times.items():
            ms = np.array(values) * 1000
            print(f"  {label:20} p50 {np.percentile(ms, 50):6.2f} ms   p99 {np.percentile(ms, 99):6.2f} ms")
        p50 = [np.percentile(np.array(v), 50) for v in times.values()]
        print(f"  ratio of p50s (running / none): {p50[1] / p50[0]:.2f}\n")


if __name__ == "__main__":
    main()
