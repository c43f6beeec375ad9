"""Latency of the learned ranker in-process: one visitor's ranking (candidates, features, trees,
reasons) and the trees alone on 200 candidates, p50 / p99 over many calls.

    python bench/bench_rank.py                       # Online Retail, fitted at the agreed cutoff
    python bench/bench_rank.py --synthetic grocery   # a synthetic regime instead

The trees alone are timed twice, call by call alternately: the served complete-tree walk
and the node-by-node walk it replaced (``Forest._walk``, still used for forests deeper than
10 levels). For recommend() before / after, run this script from a checkout of the previous
commit and from this one alternately (docs/evaluation.md "Serving latency").

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
    forest = model.ranker

    def before(rows):  # Forest.predict as it was: the node-by-node walk
        raw = forest.baseline + forest.value[forest._walk(np.nan_to_num(rows, nan=0.0))[0]].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-raw))

    walks = {"complete-tree walk": forest.predict, "node-by-node walk (before)": before}
    per_walk: dict[str, list[float]] = {name: [] for name in walks}
    for _ in range(args.calls):  # the two walks alternate call by call
        for name, walk in walks.items():
            t = time.perf_counter()
            walk(x)
            per_walk[name].append(time.perf_counter() - t)
    trees = per_walk["complete-tree walk"]
    ms = lambda a: np.percentile(np.array(a) * 1000, [50, 99])  # noqa: E731
    print(f"{len(items):,} items, ranker of {model.ranker.n_trees} trees (depth {model.ranker.depth}), {args.calls} calls, k={args.k}")
    print("recommend() wall: p50 {:.2f} ms, p99 {:.2f} ms".format(*ms(wall)))
    print("recommend() CPU:  p50 {:.2f} ms, p99 {:.2f} ms".format(*ms(cpu)))
    print("trees on 200 candidates: p50 {:.2f} ms, p99 {:.2f} ms".format(*ms(trees)))
    for name, t in per_walk.items():
        print("  {}: p50 {:.2f} ms, p99 {:.2f} ms".format(name, *ms(t)))
    print("  ratio before / now, p50: {:.2f}".format(ms(per_walk["node-by-node walk (before)"])[0] / ms(trees)[0]))
    print("load average (1 / 5 / 15 min): {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
