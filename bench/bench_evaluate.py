"""Quality and fit time of the engine against the baselines, on every kind of shop we can test.

    python bench/bench_evaluate.py                       # the table of docs/evaluation.md (all shops)
    python bench/bench_evaluate.py --only regimes        # the synthetic grocery, electronics and fashion shops
    python bench/bench_evaluate.py --only fit --repeat 5 # our fit time on the agreed split, min / median

Shops: Online Retail (the agreed split and a second cutoff), Amazon grocery (reviews as
purchases, cutoff 2014-04-01, 60 days), the synthetic shop of the tests (three seeds), and
three synthetic regimes (personalize.recommend.synthetic): a repeat-heavy grocery (25,000
items, staples on rhythms, strong best sellers), a sparse long-tail electronics shop and a
fashion month with a 7-day test window. Every row prints every baseline beside ours and
what the self-check chose to serve.

The machine's load average is printed next to every timing: on a shared
2-core machine the fit time depends on what else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from personalize.recommend.engine import Recommender
from personalize.recommend.evaluate import Split, format_table, run_evaluation
from personalize.recommend.synthetic import REGIMES, generate

ONLINE_RETAIL = Path(__file__).resolve().parents[2] / "shared/datasets/online-retail/online_retail_2010_2011.csv.gz"
AMAZON = Path(__file__).resolve().parents[2] / "shared/datasets/amazon-grocery/amazon_grocery_uci.csv.gz"
# regime: (cutoff day from the log's start, test days)
REGIME_SPLITS = {"grocery": (90, 30), "electronics": (240, 30), "fashion": (23, 7)}
SUMMARY: list[tuple[str, dict]] = []
CUTOFFS = ("2011-11-09", "2011-10-09")
SYNTHETIC_SEEDS = (11, 5, 23)
DAY = 86400.0


def load_online_retail(path: Path):
    from personalize.importers import read_uci_orders
    from personalize.recommend.orders import GUEST_PREFIX, log_from_orders

    log, items, users = log_from_orders(read_uci_orders(path))
    return log, items, np.array([u.startswith(GUEST_PREFIX) for u in users])


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f}"


def report(title: str, result: dict) -> None:
    print(f"\n{title} ({load_note()})")
    print(format_table(result))
    print(result["served"]["summary"], flush=True)
    SUMMARY.append((title, result))


def print_summary() -> None:
    """One Markdown table: Recall@20 of every model per shop and view, and our lead over the best baseline."""
    print("\n| shop | view | ours (served) | popularity | buy-again | item-kNN | EASE | lead |")
    print("|---|---|---|---|---|---|---|---|")
    for title, result in SUMMARY:
        models = result["models"]
        for view in ("all", "new"):
            ours = models["personalize"][view]["recall@20"]
            cells = [f"{models[m][view]['recall@20']:.3f}" if m in models else "–" for m in ("popularity", "buy-again", "item-knn", "ease")]
            best = max(models[m][view]["recall@20"] for m in models if m != "personalize")
            served = result["served"]["serve"][view]
            lead = f"{(ours / best - 1) * 100:+.0f} %" if best > 0 else "–"
            print(f"| {title.split(',')[0].split(':')[0] if view == 'all' else ''} | {view} | **{ours:.3f}** ({served}) | {' | '.join(cells)} | {lead} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=Path, default=ONLINE_RETAIL)
    ap.add_argument("--only", choices=["retail", "amazon", "synthetic", "regimes", "fit"], default=None)
    ap.add_argument("--repeat", type=int, default=3, help="fits timed for --only fit")
    ap.add_argument("--params", type=json.loads, default=None, metavar="JSON",
                    help='overrides of the engine\'s settings, e.g. \'{"ranker_learning_rate": 0.1}\' (to compare with other settings)')
    args = ap.parse_args()
    params = args.params
    if args.only in (None, "retail", "fit"):
        log, items, guests = load_online_retail(args.orders)
    if args.only in (None, "retail"):
        for cutoff in CUTOFFS:
            result = run_evaluation(log, items, datetime.fromisoformat(cutoff), 30, guests=guests, params=params)
            report(f"Online Retail, cutoff {cutoff}, 30 days", result)
    if args.only in (None, "amazon") and AMAZON.exists():
        a_log, a_items, a_guests = load_online_retail(AMAZON)
        report("Amazon grocery, cutoff 2014-04-01, 60 days", run_evaluation(a_log, a_items, datetime(2014, 4, 1), 60, guests=a_guests, params=params))
    if args.only in (None, "synthetic"):
        for seed in SYNTHETIC_SEEDS:
            shop = generate(n_items=800, n_users=2500, n_interactions=250_000, seed=seed)
            cutoff = datetime.fromtimestamp(float(shop.log.ts.min()) + 300 * DAY)
            result = run_evaluation(shop.log, shop.items, cutoff, 30, params=params)
            report(f"Synthetic shop, seed {seed}, 800 items, 2,500 users, cutoff day 300", result)
    if args.only in (None, "regimes"):
        for name, (day, days) in REGIME_SPLITS.items():
            shop = REGIMES[name]()
            cutoff = datetime.fromtimestamp(float(shop.log.ts.min()) + day * DAY)
            result = run_evaluation(shop.log, shop.items, cutoff, days, params=params)
            report(f"Synthetic {name}: {len(shop.items):,} items, {len(shop.log):,} rows, cutoff day {day}, {days} days", result)
    if SUMMARY:
        print_summary()
    if args.only == "fit":
        split = Split(log, datetime.fromisoformat(CUTOFFS[0]).timestamp(), 30)
        train = split.train.select(~guests[split.train.user])  # what run_evaluation gives our engine
        Recommender.fit(train, items, now=split.cutoff, params=params)  # warm up: imports, page cache
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            Recommender.fit(train, items, now=split.cutoff, params=params)
            times.append(time.perf_counter() - started)
            print(f"fit {times[-1]:.1f} s ({load_note()})", flush=True)
        print(f"fit seconds over {len(times)} runs: min {min(times):.1f}, median {statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
