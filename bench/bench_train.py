"""Time a full engine fit on a generated shop and report wall time and peak memory.

    python bench/gen_data.py --items 100000 --interactions 10000000
    python bench/bench_train.py bench/out/shop.npz
    python bench/bench_train.py bench/out/shop.npz --stages   # and each stage's peak memory and time
    python bench/bench_train.py grocery --stages              # a synthetic regime, at its cutoff (bench_evaluate's split)
    python bench/bench_train.py grocery --threads 1           # the windows and rankers fitted one at a time
    python bench/bench_train.py grocery --params '{"popular_candidates_wide": 0}'  # with other settings of the engine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_evaluate import REGIME_SPLITS  # noqa: E402  (the regimes are split as bench_evaluate.py splits them)
from gen_data import load  # noqa: E402

from personalize.recommend.engine import Recommender  # noqa: E402


class StageMemory:
    """The peak resident memory and the wall time of each stage of the fit (the progress messages
    name the stages), memory sampled from /proc every 20 ms by a background thread."""

    def __init__(self) -> None:
        self.stage = "loading"
        self.peaks: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self._since = time.perf_counter()
        self._done = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _rss_gib(self) -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page / 1024 ** 3

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            rss = self._rss_gib()
            if rss > self.peaks.get(self.stage, 0.0):
                self.peaks[self.stage] = rss

    def progress(self, message: str) -> None:
        now = time.perf_counter()
        self.seconds[self.stage] = self.seconds.get(self.stage, 0.0) + now - self._since
        self.stage, self._since = message, now

    def report(self) -> None:
        self.progress("")
        self._done.set()
        self._thread.join()
        print("by stage: peak RSS (GiB), wall time (s)")
        for stage, peak in self.peaks.items():
            print(f"  {peak:5.2f}  {self.seconds.get(stage, 0.0):6.1f}  {stage}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shop", help="a shop written by gen_data.py (.npz), or a synthetic regime's name: grocery, electronics, fashion")
    ap.add_argument("--model-out", type=Path, default=Path("bench/out/model.npz"))
    ap.add_argument("--stages", action="store_true", help="also print the peak resident memory and wall time of each stage of the fit")
    ap.add_argument("--threads", type=int, default=None,
                    help="training windows and rankers fitted at once (the engine's fit_threads; default: the engine's default)")
    ap.add_argument("--params", type=json.loads, default=None, metavar="JSON",
                    help='overrides of the engine\'s settings, e.g. \'{"popular_candidates_wide": 0}\' (to time the fit with other settings)')
    args = ap.parse_args()
    memory = StageMemory() if args.stages else None
    now = None
    if args.shop.endswith(".npz"):
        log, items = load(Path(args.shop))
    else:
        from personalize.recommend.evaluate import Split
        from personalize.recommend.synthetic import REGIMES

        if args.shop not in REGIMES:
            raise SystemExit(f"{args.shop}: neither a .npz shop nor one of the regimes {', '.join(REGIMES)}")
        day, days = REGIME_SPLITS[args.shop]
        shop = REGIMES[args.shop]()
        split = Split(shop.log, float(shop.log.ts.min()) + day * 86400.0, days)
        log, items, now = split.train, shop.items, split.cutoff  # what bench_evaluate.py fits
    print(f"{len(log):,} interactions, {log.n_users:,} users, {len(items):,} items")
    started = time.perf_counter()
    params = dict(args.params or {})
    if args.threads:
        params["fit_threads"] = args.threads
    model = Recommender.fit(log, items, now=now, params=params, progress=memory.progress if memory else None)
    wall = time.perf_counter() - started
    if memory:
        memory.progress("saving the model")
    args.model_out.parent.mkdir(parents=True, exist_ok=True)  # bench/out/ is not in a fresh clone
    model.save(args.model_out)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"item model: {model.item_model}, neighbour entries: {model.neighbours.nnz:,}, content entries: {model.content.nnz:,}")
    print(f"fit wall time: {wall:.1f} s   peak RSS: {peak_gib:.2f} GiB   model file: {args.model_out.stat().st_size / 1e6:.0f} MB")
    if memory:
        memory.report()
    print("load average (1 / 5 / 15 min): {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg()))
    print(f"tuned: {dict((k, model.params.get(k)) for k in ('item_weight', 'popular_weight', 'content_weight', 'personal_half_life_days', 'context_half_life_days', 'tuned_recall_all', 'tuned_recall_new'))}")


if __name__ == "__main__":
    main()
