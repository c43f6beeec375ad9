"""Coverage of experiment intervals when the owner looks every day (issue 16, part 4).

Simulates many 30-day two-arm experiments with a known true lift, looks after every day,
and prints the share of experiments whose every daily interval held the truth: the
always-valid intervals of the experiment page (mixture SPRT confidence sequences) against
the naive fixed-sample 95 % interval, plus the naive interval at one pre-set look.

    python bench/bench_experiments.py [--replications 4000]
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
