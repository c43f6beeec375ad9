"""Time a full engine fit on a generated shop and report wall time and peak memory.

    python bench/gen_data.py --items 100000 --interactions 10000000
    python bench/bench_train.py bench/out/shop.npz
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_data import load  # noqa: E402

from personalize.recommend.engine import Recommender  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shop", type=Path)
    ap.add_argument("--model-out", type=Path, default=Path("bench/out/model.npz"))
    args = ap.parse_args()
    log, items = load(args.shop)
    print(f"{len(log):,} interactions, {log.n_users:,} users, {len(items):,} items")
    started = time.perf_counter()
    model = Recommender.fit(log, items)
    wall = time.perf_counter() - started
    model.save(args.model_out)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"item model: {model.item_model}, neighbour entries: {model.neighbours.nnz:,}, content entries: {model.content.nnz:,}")
    print(f"fit wall time: {wall:.1f} s   peak RSS: {peak_gib:.2f} GiB   model file: {args.model_out.stat().st_size / 1e6:.0f} MB")
    print("load average (1 / 5 / 15 min): {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg()))
    print(f"tuned: {dict((k, model.params.get(k)) for k in ('item_weight', 'popular_weight', 'content_weight', 'personal_half_life_days', 'context_half_life_days', 'tuned_recall_all', 'tuned_recall_new'))}")


if __name__ == "__main__":
    main()
