"""Quality and fit time of the engine against the baselines: Online Retail (two cutoffs) and synthetic shops.

    python bench/bench_evaluate.py                       # every table of docs/evaluation.md
    python bench/bench_evaluate.py --only fit --repeat 5 # our fit time on the agreed split, min / median

The machine's load average is printed next to every timing: on a shared
2-core machine the fit time depends on what else runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from personalize.recommend.engine import Recommender
from personalize.recommend.evaluate import Split, format_table, run_evaluation
from personalize.recommend.synthetic import generate

ONLINE_RETAIL = Path(__file__).resolve().parents[2] / "shared/datasets/online-retail/online_retail_2010_2011.csv.gz"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=Path, default=ONLINE_RETAIL)
    ap.add_argument("--only", choices=["retail", "synthetic", "fit"], default=None)
    ap.add_argument("--repeat", type=int, default=3, help="fits timed for --only fit")
    args = ap.parse_args()
    if args.only in (None, "retail", "fit"):
        log, items, guests = load_online_retail(args.orders)
    if args.only in (None, "retail"):
        for cutoff in CUTOFFS:
            result = run_evaluation(log, items, datetime.fromisoformat(cutoff), 30, guests=guests)
            print(f"\nOnline Retail, cutoff {cutoff}, 30 days ({load_note()})")
            print(format_table(result))
    if args.only in (None, "synthetic"):
        for seed in SYNTHETIC_SEEDS:
            shop = generate(n_items=800, n_users=2500, n_interactions=250_000, seed=seed)
            cutoff = datetime.fromtimestamp(float(shop.log.ts.min()) + 300 * DAY)
            result = run_evaluation(shop.log, shop.items, cutoff, 30)
            print(f"\nSynthetic shop, seed {seed}, 800 items, 2,500 users, cutoff day 300 ({load_note()})")
            print(format_table(result))
    if args.only == "fit":
        split = Split(log, datetime.fromisoformat(CUTOFFS[0]).timestamp(), 30)
        train = split.train.select(~guests[split.train.user])  # what run_evaluation gives our engine
        Recommender.fit(train, items, now=split.cutoff)  # warm up: imports, page cache
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            Recommender.fit(train, items, now=split.cutoff)
            times.append(time.perf_counter() - started)
            print(f"fit {times[-1]:.1f} s ({load_note()})", flush=True)
        print(f"fit seconds over {len(times)} runs: min {min(times):.1f}, median {statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
