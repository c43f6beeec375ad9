"""Generate a synthetic shop and save it as .npz (see personalize.recommend.synthetic).

    python bench/gen_data.py --items 100000 --interactions 10000000 --out bench/out/shop.npz
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from personalize.recommend.data import InteractionLog, ItemTable
from personalize.recommend.synthetic import SyntheticShop, generate


def save(shop: SyntheticShop, path: Path) -> None:
    """Write a generated shop to ``path`` (arrays plus the catalogue as JSON bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"titles": shop.items.titles, "categories": shop.items.categories, "descriptions": shop.items.descriptions, "n_users": shop.log.n_users}
    np.savez(path, user=shop.log.user, item=shop.log.item, kind=shop.log.kind, ts=shop.log.ts, qty=shop.log.qty,
             meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


def load(path: Path) -> tuple[InteractionLog, ItemTable]:
    """Read a shop written by :func:`save`."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        n = len(meta["titles"])
        log = InteractionLog(z["user"], z["item"], z["kind"], z["ts"], z["qty"], meta["n_users"], n)
    items = ItemTable([f"SKU{i:06d}" for i in range(n)], meta["titles"], meta["categories"], meta["descriptions"], np.ones(n, dtype=bool))
    return log, items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=0, help="default: one per 20 interactions")
    ap.add_argument("--interactions", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("bench/out/shop.npz"))
    args = ap.parse_args()
    started = time.perf_counter()
    shop = generate(args.items, args.users or max(100, args.interactions // 20), args.interactions, seed=args.seed)
    save(shop, args.out)
    print(f"{len(shop.log):,} interactions, {shop.log.n_users:,} users, {len(shop.items):,} items "
          f"-> {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
