"""Quality of the page strategies (product page, cart) against simple baselines, on real shops.

    python bench/bench_pages.py                    # Online Retail and Amazon grocery (about 2 minutes)
    python bench/bench_pages.py --only retail      # one shop

Three tests, each ranking the full catalogue, Recall@10 (hits in the top 10 / min(10, truth)):

* bought together: given one item of a test-window order (every item of every order with two
  items or more, in turn), the order's other items;
* product page (similar items): given the last item a customer bought before the cutoff (the
  page they land on), the items they buy in the test window (that item left out);
* cart: given the first half of a test-window order's lines (the cart), the rest of the order;
  cart items never shown.

Train on everything before the cutoff (guest orders included: they are baskets); test on known
customers' orders in the window. Online Retail: the agreed split (2011-11-09, 30 days); Amazon
grocery: 2014-04-01, 60 days (its agreed split; an "order" there is a customer's reviews of one day).

Baselines: popularity (orders holding the item), plain co-occurrence counts (orders holding both),
item-kNN (cosine over customers, k=200, as in docs/evaluation.md). Ours: bought-together with the
per-shop setting chosen on the last 30 days before the cutoff; similar items and cart complements
as served (personalize.recommend.strategies). "before" rows: the same with the look-alike weight of
bought together at 0 and the similar-items weights fixed (item-kNN 1, bought together 1, look-alikes
0.3), as served before those were chosen per shop. Ties in every method go to popularity.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from personalize.recommend.data import PURCHASE, InteractionLog
from personalize.recommend.models import content_neighbours, cosine_neighbours, user_item_matrix
from personalize.recommend.strategies import (
    PAGE_PARAMS,
    Pages,
    basket_matrix,
    fit_page_tables,
    recall_at,
    top_k,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DATA = HERE.parents[1] / "shared/datasets"
SHOPS = {
    "retail": ("Online Retail", DATA / "online-retail/online_retail_2010_2011.csv.gz", "2011-11-09", 30),
    "grocery": ("Amazon grocery", DATA / "amazon-grocery/amazon_grocery_uci.csv.gz", "2014-04-01", 60),
}
DAY = 86400.0
K = 10
# what was served before the look-alike and similar-items choices (alpha, gamma, half life still chosen)
BEFORE = {"together_content_weight": 0.0, "similar_together_share": 0.5, "similar_content_weight": 0.3, "together_learned": False,
          "similar_learned": False}
# the fixed settings alone, chosen per shop: what bought together and similar items served before they were learned
COUNTS = {"together_learned": False, "similar_learned": False}


def load(path: Path):
    from bench_evaluate import load_online_retail

    return load_online_retail(path)


def test_orders(log: InteractionLog, guest: np.ndarray, start: float, end: float) -> list[np.ndarray]:
    """The known customers' orders in [start, end) with two items or more, lines in file order."""
    rows = np.flatnonzero((log.ts >= start) & (log.ts < end) & (log.kind == PURCHASE) & ~guest[log.user])
    key = log.user[rows].astype(np.int64) * 10**11 + log.ts[rows].astype(np.int64)
    order = np.argsort(key, kind="stable")
    rows, key = rows[order], key[order]
    cut = np.flatnonzero(np.diff(key)) + 1
    out = []
    for grp in np.split(rows, cut):
        items = np.array(list(dict.fromkeys(log.item[grp].tolist())), dtype=np.int64)
        if len(items) >= 2:
            out.append(items)
    return out


def ranked(score_of, cases, n: int, tie: np.ndarray, exclude_of, batch: int = 256) -> np.ndarray:
    """Top K per case from ``score_of(cases[lo:hi]) -> dense rows``; excluded items at -inf."""
    tops = []
    for lo in range(0, len(cases), batch):
        chunk = cases[lo:lo + batch]
        s = np.asarray(score_of(chunk), dtype=np.float64) + tie[None, :]
        for r, c in enumerate(chunk):
            s[r, exclude_of(c)] = -np.inf
        tops.append(top_k(s, K))
    return np.vstack(tops) if tops else np.zeros((0, K), dtype=np.int64)


def dense_rows(table: sp.csr_matrix, anchors) -> np.ndarray:
    return table[np.asarray(anchors, dtype=np.int64)].toarray()


def picks_rows(fn, cases, n: int) -> np.ndarray:
    out = np.zeros((len(cases), n))
    for r, c in enumerate(cases):
        for rank, p in enumerate(fn(c)):
            out[r, p.item] = 1e3 - rank
    return out


def run(shop: str) -> list[tuple]:
    name, path, cutoff_day, days = SHOPS[shop]
    t0 = time.perf_counter()
    log, items, guest = load(path)
    cutoff = datetime.fromisoformat(cutoff_day).timestamp()
    train = log.select(log.ts < cutoff)
    n = len(items)
    loaded = time.perf_counter()
    b = basket_matrix(train)
    orders = np.asarray(b.sum(axis=0)).ravel()
    tie = orders / (orders.max() + 1.0) * 1e-6
    counts = sp.csr_matrix(b.T @ b)
    counts.setdiag(0)
    counts.eliminate_zeros()
    binary = user_item_matrix(train, np.ones(len(train)))
    binary.data[:] = 1.0
    knn = sp.csr_matrix(cosine_neighbours(binary, 200).T)  # row a: the targets having a among their 200 nearest
    content = content_neighbours(items, 30)  # the model's look-alike table (fitted with it, not timed here)
    base_seconds = time.perf_counter() - loaded
    titles = [t or i for t, i in zip(items.titles, items.ids, strict=True)]
    # before: the counts family alone and fixed similar-items weights (as served before the look-alike
    # and similar-items choices); after: everything chosen per shop on its own held-out window
    t_fit = time.perf_counter()
    tables_before = fit_page_tables(train, cutoff, BEFORE, content=content)
    before_seconds = time.perf_counter() - t_fit
    t_fit = time.perf_counter()
    tables_counts = fit_page_tables(train, cutoff, COUNTS, content=content)
    counts_seconds = time.perf_counter() - t_fit
    t_fit = time.perf_counter()
    tables = fit_page_tables(train, cutoff, content=content)
    fit_seconds = time.perf_counter() - t_fit
    pages = Pages(tables, titles, np.ones(n, dtype=bool), knn, content, orders.astype(np.float64))
    counted = Pages(tables_counts, titles, np.ones(n, dtype=bool), knn, content, orders.astype(np.float64))
    before = Pages(tables_before, titles, np.ones(n, dtype=bool), knn, content, orders.astype(np.float64))
    c = tables.choice
    print(f"\n{name}: {n:,} items, {len(train):,} training rows, cutoff {cutoff_day}, {days} test days; "
          f"bought-together chose half life={c['half_life_days']:g} d, gamma={c['gamma']:g}, alpha={c['alpha']:g}, "
          f"look-alikes={c['content']:g} on {c.get('orders', 0):,} held-out orders; similar items chose "
          f"bought-together share={c['similar_together_share']:g}, look-alikes={c['similar_content']:g} on "
          f"{c.get('similar_customers', 0):,} held-out customers; page tables fitted in {fit_seconds:.1f} s "
          f"(counts family alone {counts_seconds:.1f} s; before: {before_seconds:.1f} s; baselines' tables {base_seconds:.1f} s; load average {os.getloadavg()[0]:.1f})", flush=True)
    print("  held-out choice, bought together (recall@10):", c.get("recall"))
    print("  held-out choice, similar items (recall@10):", c.get("similar_recall"))
    print("  held-out choice, bought together learned or counts family (recall@10):", c.get("learned"))
    print("  held-out choice, similar items learned or chosen mix (recall@10):", c.get("similar_learned"))
    rows: list[tuple] = []
    orders_t = test_orders(log, guest, cutoff, cutoff + days * DAY)
    popular_rows = lambda chunk: np.zeros((len(chunk), n))  # noqa: E731  (the tie alone: popularity)

    # 1. bought together: every item of every test order as the anchor
    pairs = [(int(a), o[o != a]) for o in orders_t for a in o]
    anchors = np.array([a for a, _ in pairs], dtype=np.int64)
    truths = [t for _, t in pairs]
    cases = list(range(len(pairs)))
    excl = lambda c: [anchors[c]]  # noqa: E731
    methods = {
        "popularity": popular_rows,
        "co-occurrence counts": lambda ch: dense_rows(counts, anchors[ch]),
        "item-kNN": lambda ch: dense_rows(knn, anchors[ch]),
        "bought together (before)": lambda ch: picks_rows(lambda c: before.together(int(anchors[c]), K, fill=False), ch, n),
        "bought together (counts family)": lambda ch: picks_rows(lambda c: counted.together(int(anchors[c]), K, fill=False), ch, n),
        "bought together (ours)": lambda ch: picks_rows(lambda c: pages.together(int(anchors[c]), K, fill=False), ch, n),
        "similar items (before)": lambda ch: picks_rows(lambda c: before.similar(int(anchors[c]), K, fill=False), ch, n),
        "similar items (chosen mix)": lambda ch: picks_rows(lambda c: counted.similar(int(anchors[c]), K, fill=False), ch, n),
        "similar items (ours)": lambda ch: picks_rows(lambda c: pages.similar(int(anchors[c]), K, fill=False), ch, n),
    }
    for label, fn in methods.items():
        rows.append((name, f"bought together ({len(orders_t):,} orders, {len(pairs):,} anchors)", label,
                     recall_at(ranked(fn, cases, n, tie, excl), truths, K)))

    # 2. product page: the last item bought before the cutoff -> items bought in the window
    buys = train.select((train.kind == PURCHASE) & ~guest[train.user])
    last = {}
    for u, i in zip(buys.user.tolist(), buys.item.tolist(), strict=True):  # file order: the last line wins
        last[u] = i
    win = log.select((log.ts >= cutoff) & (log.ts < cutoff + days * DAY) & (log.kind == PURCHASE) & ~guest[log.user])
    bought: dict[int, set[int]] = {}
    for u, i in zip(win.user.tolist(), win.item.tolist(), strict=True):
        bought.setdefault(u, set()).add(i)
    users = [u for u in sorted(bought) if u in last and bought[u] - {last[u]}]
    anchors2 = np.array([last[u] for u in users], dtype=np.int64)
    truths2 = [np.array(sorted(bought[u] - {last[u]}), dtype=np.int64) for u in users]
    cases2 = list(range(len(users)))
    excl2 = lambda c: [anchors2[c]]  # noqa: E731
    methods2 = {
        "popularity": popular_rows,
        "co-occurrence counts": lambda ch: dense_rows(counts, anchors2[ch]),
        "item-kNN": lambda ch: dense_rows(knn, anchors2[ch]),
        "bought together (before)": lambda ch: picks_rows(lambda c: before.together(int(anchors2[c]), K, fill=False), ch, n),
        "bought together (ours)": lambda ch: picks_rows(lambda c: pages.together(int(anchors2[c]), K, fill=False), ch, n),
        "similar items (before)": lambda ch: picks_rows(lambda c: before.similar(int(anchors2[c]), K, fill=False), ch, n),
        "similar items (chosen mix)": lambda ch: picks_rows(lambda c: counted.similar(int(anchors2[c]), K, fill=False), ch, n),
        "similar items (ours)": lambda ch: picks_rows(lambda c: pages.similar(int(anchors2[c]), K, fill=False), ch, n),
    }
    for label, fn in methods2.items():
        rows.append((name, f"product page, next items ({len(users):,} customers)", label,
                     recall_at(ranked(fn, cases2, n, tie, excl2), truths2, K)))

    # 3. cart: the first half of an order's lines -> the rest
    carts = [o[: (len(o) + 1) // 2] for o in orders_t]
    truths3 = [o[(len(o) + 1) // 2:] for o in orders_t]
    cases3 = list(range(len(carts)))
    excl3 = lambda c: carts[c]  # noqa: E731

    def summed(table):
        return lambda ch: np.vstack([np.asarray(table[carts[c]].sum(axis=0)).ravel() for c in ch])

    methods3 = {
        "popularity": popular_rows,
        "co-occurrence counts": summed(counts),
        "item-kNN": summed(knn),
        "cart complements (before)": lambda ch: picks_rows(lambda c: before.complements(carts[c].tolist(), K, fill=False), ch, n),
        "cart complements (ours)": lambda ch: picks_rows(lambda c: pages.complements(carts[c].tolist(), K, fill=False), ch, n),
    }
    for label, fn in methods3.items():
        rows.append((name, f"cart, rest of the order ({len(carts):,} orders)", label,
                     recall_at(ranked(fn, cases3, n, tie, excl3), truths3, K)))
    # serving cost in-process: one list of 12 per call, anchors from the test orders
    picks = np.random.default_rng(0).choice(anchors, size=min(2000, len(anchors)))
    timing = []
    for label, call in (("bought together", lambda a: pages.together(int(a), 12)), ("similar items", lambda a: pages.similar(int(a), 12)),
                        ("cart complements (3 items)", lambda a: pages.complements([int(a), int(a) + 1, int(a) + 2], 12))):
        spent = []
        for a in picks:
            c = time.perf_counter()
            call(min(a, n - 3))
            spent.append(time.perf_counter() - c)
        timing.append(f"{label} p50 {np.percentile(spent, 50) * 1e3:.2f} ms / p99 {np.percentile(spent, 99) * 1e3:.2f} ms")
    print(f"  serving, per list of 12 (load average {os.getloadavg()[0]:.1f}): " + "; ".join(timing))
    print(f"  ({time.perf_counter() - t0:.0f} s)")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(SHOPS), default=None)
    args = ap.parse_args()
    rows: list[tuple] = []
    for shop in ([args.only] if args.only else list(SHOPS)):
        rows.extend(run(shop))
    print("\n| shop | test | method | Recall@10 | vs counts | vs item-kNN | vs popularity |")
    print("|---|---|---|---|---|---|---|")
    for shop, test, method, r in rows:
        same = {m: v for s, t, m, v in rows if s == shop and t == test}
        rel = [f"{(r / same[o] - 1) * 100:+.1f} %" if same.get(o) else "—" for o in ("co-occurrence counts", "item-kNN", "popularity")]
        print(f"| {shop} | {test} | {method} | {r:.4f} | {' | '.join(rel)} |")
    print(f"\nparameters: {PAGE_PARAMS}")


if __name__ == "__main__":
    main()
