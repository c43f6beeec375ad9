"""Events/s as the stored events grow: the events API of ``personalize serve`` on instances that
already hold 0, 1 M and 10 M events (issue 18's "how cost grows"), side by side in one run.

Run from the repository root; ``wrk`` is not needed, the events phase of ``bench/bench_http.py``
is what loads each instance::

    python bench/bench_stored.py --stored 0,1000000,10000000 --rounds 2 --duration 15

The first time, it makes a base instance (``--base``; SQLite by default: the Online Retail orders
imported and a model trained, as ``bench_http.py --setup`` does) and, for each size, a copy of it
filled with that many events of the shop's products by visitors with 20 events each, spread
over the last 90 days, with ids as random as the widget's (22 characters). The filling goes
through the same ``store_events`` the API uses (events, the visitors' profiles, interactions),
in batches of 5,000, without what follows a batch (hooks, segments). Instances are kept under
``--folder`` and reused by later runs (each events phase adds its own events to them: about
80,000 per 15 s; a run says how many each held).

Then ``--rounds`` rounds: in each, the events phase on every instance in turn (the order reversed
every other round, so that what drifts over a run falls on all alike). Prints events/s and the
server's CPU per event for each, and their ratio to the smallest instance's in the same round.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def environ(folder: Path) -> dict[str, str]:
    env = dict(os.environ, PERSONALIZE_INSTANCE_PATH=str(folder))
    env.pop("PERSONALIZE_DATABASE_URL", None)  # SQLite: each instance its own file
    return env


def make_base(base: Path) -> None:
    if (base / "personalize.db").exists():
        return
    print(f"base instance {base}: importing Online Retail and training (about a minute)", flush=True)
    subprocess.run([sys.executable, str(HERE / "bench_http.py"), "--setup", "--only", "events", "--duration", "2"],
                   env=environ(base), check=True, stdout=subprocess.DEVNULL)


def stored_events(folder: Path) -> int:
    import sqlite3

    with sqlite3.connect(folder / "personalize.db") as connection:
        return connection.execute("SELECT count(*) FROM events").fetchone()[0]


def fill(folder: Path, n: int) -> None:
    """Store ``n`` events into the instance at ``folder`` through ``store_events``."""
    os.environ["PERSONALIZE_INSTANCE_PATH"] = str(folder)
    from personalize.app import create_app
    from personalize.db import db
    from personalize.models import Product
    from personalize.profiles.events import validate_batch
    from personalize.profiles.ingest import store_events
    from personalize.sites import list_sites

    app = create_app()
    rng = random.Random(n)
    now = datetime.now(UTC)
    start = int((now - timedelta(days=90)).timestamp() * 1000)
    span = 90 * 86400 * 1000
    with app.app_context():
        site_id = list_sites()[0].id  # read once: each batch's commit expires the object
        products = [p for (p,) in db.session.query(Product.external_id).filter(Product.site_id == site_id).limit(5000)]
        began, done = time.perf_counter(), 0
        while done < n:
            size = min(5000, n - done)
            events = []
            for i in range(done, done + size):
                visitor = f"fill{n}-{i // 20}"
                kind = "product_added" if rng.random() < 0.2 else "product_viewed"
                events.append({"id": "".join(rng.choices(ALPHABET, k=22)), "type": kind, "visitor": visitor,
                               "product_id": rng.choice(products), "ts": start + rng.randrange(span)})
            store_events(site_id, validate_batch(events, size))
            db.session.remove()
            done += size
            if done % 200_000 == 0 or done == n:
                rate = done / (time.perf_counter() - began)
                print(f"  {folder.name}: {done:,} of {n:,} events stored ({rate:,.0f}/s)", flush=True)


def instance(folder_root: Path, base: Path, n: int) -> Path:
    folder = folder_root / f"stored-{n}"
    if not (folder / "personalize.db").exists():
        print(f"instance {folder}: a copy of the base, then {n:,} events", flush=True)
        making = folder_root / f"making-{n}"  # renamed once filled: a run stopped half-way leaves no instance behind
        shutil.rmtree(making, ignore_errors=True)
        shutil.copytree(base, making, ignore=shutil.ignore_patterns("*.writer-lock", "*-wal", "*-shm"))
        if n:
            subprocess.run([sys.executable, __file__, "--fill-only", str(making), str(n)], check=True)
        shutil.rmtree(folder, ignore_errors=True)
        making.rename(folder)
    return folder


def events_phase(folder: Path, duration: int, clients: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, str(HERE / "bench_http.py"), "--only", "events", "--duration", str(duration), "--clients", str(clients)],
                         env=environ(folder), capture_output=True, text=True, check=True).stdout
    rate = re.search(r"= ([\d,]+) events/s", out)
    cpu = re.search(r"server CPU (\d+) µs per event", out)
    lost = re.search(r"lost (\d+); duplicated (\d+); errors (\d+)", out)
    if not rate or not lost or lost.groups() != ("0", "0", "0"):
        raise SystemExit(f"the events phase on {folder} did not end cleanly:\n{out}")
    return float(rate.group(1).replace(",", "")), float(cpu.group(1)) if cpu else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stored", default="0,1000000,10000000", help="events each instance holds before its runs, comma-separated")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=15, help="seconds per events phase")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--folder", default="/tmp/bench-stored", help="where the instances are kept")
    ap.add_argument("--base", default="", help="the base instance (default: FOLDER/base)")
    ap.add_argument("--fill-only", nargs=2, metavar=("FOLDER", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fill_only:
        fill(Path(args.fill_only[0]), int(args.fill_only[1]))
        return
    root = Path(args.folder)
    root.mkdir(parents=True, exist_ok=True)
    base = Path(args.base) if args.base else root / "base"
    make_base(base)
    sizes = [int(s) for s in args.stored.split(",")]
    folders = {n: instance(root, base, n) for n in sizes}
    print(f"{len(sizes)} instances: " + ", ".join(f"{stored_events(f):,} events stored" for f in folders.values()), flush=True)
    results: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
    for r in range(args.rounds):
        for n in (sizes if r % 2 == 0 else sizes[::-1]):
            rate, cpu = events_phase(folders[n], args.duration, args.clients)
            results[n].append((rate, cpu))
            print(f"round {r + 1}: {n:>12,} stored: {rate:7,.0f} events/s, server CPU {cpu:.0f} µs per event", flush=True)
    smallest = sizes[0]
    print("\n| events stored before | events/s (rounds) | server CPU per event | events/s against the smallest (per round) |")
    print("|---|---|---|---|")
    for n in sizes:
        rates = [rate for rate, _ in results[n]]
        ratios = [rate / base_rate for rate, (base_rate, _) in zip(rates, results[smallest], strict=True)]
        cpus = [cpu for _, cpu in results[n]]
        print(f"| {n:,} | {', '.join(f'{x:,.0f}' for x in rates)} | {', '.join(f'{c:.0f} µs' for c in cpus)} | "
              f"{statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)}) |")


if __name__ == "__main__":
    main()
