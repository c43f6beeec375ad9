"""Latency of the open-time email block, in-process: ``GET /email/recs/<site>/<token>.png``
(4 product cards, 2 columns), p50/p99 over many people, three ways side by side:

- first open: the person's list is computed, remembered, and the PNG drawn;
- drawn again: the list is the same but the image cache was emptied (every card drawn);
- repeat open: the same list, the PNG from the cache.

    python bench/bench_email_block.py [--people 300] [--products 400]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from personalize.catalog import upsert_products
from personalize.db import db
from personalize.profiles import ingest_events
from personalize.profiles.identity import lookup
from personalize.recommend.channels import block_cache, block_urls, thumbnail_dir, thumbnail_path
from personalize.recommend.service import train_site
from personalize.records import ProductRecord
from personalize.sites import create_site
from personalize.testing import throwaway_app

CATEGORIES = ["running", "tea", "garden", "office", "kitchen", "audio", "pets", "yoga", "kids", "hiking"]


def build(people: int, products: int, seed: int = 0) -> tuple[int, list[int]]:
    rng = random.Random(seed)
    site, _secret = create_site("Bench shop", ["https://shop.example"])
    records = [ProductRecord(f"p{i}", f"{CATEGORIES[i % 10].title()} product number {i} with a longer name", f"/p/p{i}",
                             f"https://cdn.shop.example/img/p{i}.jpg" if i % 2 == 0 else "", 5.0 + i % 90, "EUR", CATEGORIES[i % 10])
               for i in range(products)]
    upsert_products(site.id, records)
    thumbnail_dir().mkdir(parents=True, exist_ok=True)
    for r in records:  # half the products have a picture on disk, as a sync's prefetch leaves them
        if r.image:
            Image.new("RGB", (200, 200), (rng.randrange(256), rng.randrange(256), rng.randrange(256))).save(thumbnail_path(r.image))
    events = []
    for u in range(people):
        taste = rng.sample(CATEGORIES, 2)
        for j in range(15):
            cat = CATEGORIES.index(rng.choice(taste))
            pid = f"p{cat + 10 * rng.randrange(products // 10)}"
            events.append({"id": f"u{u}-{j}", "type": "product_viewed", "visitor": f"v{u}", "product_id": pid, "ts": 1_700_000_000_000 + j})
        events.append({"id": f"u{u}-id", "type": "identify", "visitor": f"v{u}", "email": f"person{u}@example.com"})
    for start in range(0, len(events), 1000):
        ingest_events(site, events[start : start + 1000])
    train_site(site.id)
    found = lookup(site.id, "email", [f"person{u}@example.com" for u in range(people)])
    return site.id, [found[f"person{u}@example.com"] for u in range(people)]


def timed(client, paths: list[str], before=None) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU milliseconds per request (on a busy machine the wall time includes waiting for a core)."""
    wall, cpu = [], []
    for p in paths:
        if before is not None:
            before()
        started, started_cpu = time.perf_counter(), time.process_time()
        r = client.get(p)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        assert r.status_code == 200 and r.mimetype == "image/png", r.status_code
    return np.array(wall) * 1000, np.array(cpu) * 1000


def line(name: str, ms: tuple[np.ndarray, np.ndarray]) -> str:
    wall, cpu = ms
    return (f"{name:<36} wall p50 {np.percentile(wall, 50):6.1f} p99 {np.percentile(wall, 99):6.1f} ms"
            f"   CPU p50 {np.percentile(cpu, 50):5.1f} p99 {np.percentile(cpu, 99):5.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=300)
    ap.add_argument("--products", type=int, default=400)
    args = ap.parse_args()
    with throwaway_app("pz-bench-email-", RATE_LIMIT_PER_IP=0, RATE_LIMIT_PER_SITE=0) as app, app.app_context():
        site_id, profiles = build(args.people, args.products)
        paths = [urlsplit(block_urls("", site_id, p).image).path for p in profiles]
        client = app.test_client()
        client.get(paths[0])  # warm up: imports, compiled queries, fonts
        cache = block_cache()
        first = timed(client, paths[1:])
        drawn = timed(client, paths[1:], before=cache.__init__)
        repeat = timed(client, paths[1:])
        print(f"{len(paths) - 1} people, {args.products} products (half with a picture on disk), 4 cards in 2 columns")
        print(line("first open (list + remember + draw)", first))
        print(line("drawn again (image cache emptied)", drawn))
        print(line("repeat open (cached PNG)", repeat))
        print(f"CPU p99, drawn / cached: {np.percentile(drawn[1], 99) / np.percentile(repeat[1], 99):.1f}x")
        print("load average (1 / 5 / 15 min): {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg()))
        db.session.remove()


if __name__ == "__main__":
    main()
