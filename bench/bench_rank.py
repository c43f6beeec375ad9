"""Latency of the learned ranker in-process: one visitor's ranking (candidates, features, trees,
reasons) and the trees alone on 200 candidates, p50 / p99 over many calls.

    python bench/bench_rank.py                       # Online Retail, fitted at the agreed cutoff
    python bench/bench_rank.py --synthetic grocery   # a synthetic regime instead

No timed assertion anywhere: this prints figures (with the machine's load, which moves them).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from personalize.recommend.data import HistoryArrays
from personalize.recommend.engine import Recommender
from personalize.recommend.evaluate import Split
from personalize.recommend.synthetic import REGIMES

ONLINE_RETAIL = Path(__file__).resolve().parents[2] / "shared/datasets/online-retail/online_retail_2010_2011.csv.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", choices=sorted(REGIMES), default=None)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--k", type=int, default=12)
    args = ap.parse_args()
    if args.synthetic:
        shop = REGIMES[args.synthetic]()
        log, items = shop.log, shop.items
        cutoff = float(log.ts.min()) + (log.ts.max() - log.ts.min()) * 0.8
    else:
        from bench_evaluate import load_online_retail

        log, items, _ = load_online_retail(ONLINE_RETAIL)
        cutoff = datetime(2011, 11, 9).timestamp()
    split = Split(log, cutoff, 30)
    model = Recommender.fit(split.train, items, now=cutoff, params={"serve": "ranker"})
    train = split.train
    order = np.argsort(train.user, kind="stable")
    bounds = np.searchsorted(train.user[order], np.arange(train.n_users + 1))
    users = np.random.default_rng(0).choice(np.flatnonzero(np.diff(bounds) > 0), size=args.calls)
    hists = []
    for u in users:
        r = order[bounds[u]:bounds[u + 1]][-200:]  # what the server reads (HISTORY_LENGTH)
        hists.append(HistoryArrays(train.item[r].astype(np.int64), train.kind[r].astype(np.int64), train.ts[r], train.qty[r].astype(np.float64)))
    for h in hists[:50]:
        model.recommend(h, args.k, now=cutoff)
    wall, cpu = [], []
    for h in hists:
        t, c = time.perf_counter(), time.process_time()
        model.recommend(h, args.k, now=cutoff)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    x = np.random.default_rng(1).random((200, int(model.ranker.feature.max()) + 1)) * 10
    trees = []
    for _ in range(args.calls):
        t = time.perf_counter()
        model.ranker.predict(x)
        trees.append(time.perf_counter() - t)
    ms = lambda a: np.percentile(np.array(a) * 1000, [50, 99])  # noqa: E731
    print(f"{len(items):,} items, ranker of {model.ranker.n_trees} trees (depth {model.ranker.depth}), {args.calls} calls, k={args.k}")
    print("recommend() wall: p50 {:.2f} ms, p99 {:.2f} ms".format(*ms(wall)))
    print("recommend() CPU:  p50 {:.2f} ms, p99 {:.2f} ms".format(*ms(cpu)))
    print("trees on 200 candidates: p50 {:.2f} ms, p99 {:.2f} ms".format(*ms(trees)))
    print("load average (1 / 5 / 15 min): {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
