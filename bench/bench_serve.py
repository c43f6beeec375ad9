"""Latency of ``recommend()`` for known visitors, in-process (p50/p99 over many calls).

    python bench/bench_serve.py bench/out/shop.npz bench/out/model.npz
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_data import load  # noqa: E402

from personalize.recommend.data import HistoryEntry  # noqa: E402
from personalize.recommend.engine import Recommender  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shop", type=Path)
    ap.add_argument("model", type=Path)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--k", type=int, default=12)
    args = ap.parse_args()
    log, _ = load(args.shop)
    model = Recommender.load(args.model)
    order = np.argsort(log.user, kind="stable")
    bounds = np.searchsorted(log.user[order], np.arange(log.n_users + 1))
    counts = np.diff(bounds)
    rng = np.random.default_rng(0)
    users = rng.choice(np.flatnonzero(counts > 0), size=args.calls)
    histories = []
    for u in users:
        rows = order[bounds[u]:bounds[u + 1]]
        histories.append([HistoryEntry(int(i), int(k), float(t), float(q)) for i, k, t, q in zip(log.item[rows], log.kind[rows], log.ts[rows], log.qty[rows], strict=True)])
    for h in histories[:50]:  # warm up
        model.recommend(h, args.k)
    times, cpu = [], []
    for h in histories:
        started, started_cpu = time.perf_counter(), time.process_time()
        model.recommend(h, args.k)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    ms = np.array(times) * 1000
    cpu_ms = np.array(cpu) * 1000
    sizes = np.array([len(h) for h in histories])
    print(f"{args.calls} calls, history length median {np.median(sizes):.0f} / max {sizes.max()}, k={args.k}")
    print(f"recommend latency: p50 {np.percentile(ms, 50):.2f} ms   p99 {np.percentile(ms, 99):.2f} ms   max {ms.max():.2f} ms")
    # on a busy machine the wall time includes waiting for a core; the CPU time does not
    print(f"CPU time per call: p50 {np.percentile(cpu_ms, 50):.2f} ms   p99 {np.percentile(cpu_ms, 99):.2f} ms")
    print("load average (1 / 5 / 15 min): {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
