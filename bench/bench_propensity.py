"""Purchase propensity: calibration, Brier score and AUC against naive baselines, the reliability
plot, the choice of calibration and windows, and the time at 100,000 customers.

    python bench/bench_propensity.py                 # every table of docs/evaluation.md, "Purchase propensity", and the plot
    python bench/bench_propensity.py --only quality  # the quality tables and the plot only
    python bench/bench_propensity.py --only choice   # calibration methods × number of windows
    python bench/bench_propensity.py --only scale    # fit and scoring time, 100,000 synthetic customers

Splits: Online Retail scored as of 2011-11-09 (the agreed split) and 2011-10-09, the truth
being who ordered in the 30 days after; Amazon grocery as of 2014-04-01. The models see
nothing after the cutoff. Amazon's product categories are the category ids the data set's
makers put in its titles ("item 3 category 21"); Online Retail has none, so only its order
propensity is measured. The same functions ``personalize scores`` uses run here on arrays.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from personalize.importers import read_uci_orders
from personalize.segments import propensity as P
from personalize.segments import synthetic
from personalize.segments.scores import customer_countries
from personalize.segments.vap import fit_bgnbd

SHARED = Path(__file__).resolve().parents[2] / "shared/datasets"
RETAIL = SHARED / "online-retail/online_retail_2010_2011.csv.gz"
AMAZON = SHARED / "amazon-grocery/amazon_grocery_uci.csv.gz"
FIGURE = Path(__file__).resolve().parents[1] / "docs/figures/propensity-reliability.svg"
DAY = 86400.0
CATEGORY_IN_TITLE = re.compile(r"\bcategory (\S+)")


@dataclass
class Shop:
    name: str
    orders: P.OrderHistory
    categories: P.CategoryHistory


def load(name: str, path: Path, categories_from_titles: bool) -> Shop:
    """Known customers' orders as arrays (days on the unix clock), as ``personalize scores`` builds them."""
    ids: dict[str, int] = {}
    customer, day, total, country = [], [], [], []
    cat_customer, cat_day, cat_name = [], [], []
    for order in read_uci_orders(path):
        if not order.customer_id:
            continue
        i = ids.setdefault(order.customer_id, len(ids))
        d = order.occurred_at.timestamp() / DAY
        customer.append(i)
        day.append(d)
        total.append(order.total)
        country.append(order.country)
        if categories_from_titles:
            for found in {m.group(1) for line in order.lines if (m := CATEGORY_IN_TITLE.search(line.title))}:
                cat_customer.append(i)
                cat_day.append(d)
                cat_name.append(found)
    c = np.array(customer, dtype=np.int64)
    names, cat = np.unique(np.array(cat_name, dtype=object), return_inverse=True) if cat_name else (np.array([]), np.zeros(0, dtype=np.int64))
    return Shop(
        name, P.OrderHistory(c, np.array(day), np.array(total), len(ids), customer_countries(c, country, len(ids))),
        P.CategoryHistory(np.array(cat_customer, dtype=np.int64), np.array(cat_day), cat.ravel().astype(np.int64), [str(n) for n in names]),
    )


def at(date: str) -> float:
    return datetime.fromisoformat(date).timestamp() / DAY


def load_note() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


# ---------------------------------------------------------------- baselines


def bgnbd_baseline(h: P.OrderHistory, now: float, customers: np.ndarray) -> np.ndarray:
    """BG/NBD fitted on the history up to ``now``: P(an order in the next 30 days)."""
    keep = h.day <= now
    n = np.bincount(h.customer[keep], minlength=h.n_customers).astype(np.float64)
    first = np.full(h.n_customers, np.inf)
    last = np.full(h.n_customers, -np.inf)
    np.minimum.at(first, h.customer[keep], h.day[keep])
    np.maximum.at(last, h.customer[keep], h.day[keep])
    x, tx, T = (n - 1)[customers], ((last - first) / 7.0)[customers], ((now - first) / 7.0)[customers]
    return fit_bgnbd(x, tx, T).p_order(30 / 7.0, x, tx, T)


def recent_baseline(h: P.OrderHistory, now: float, state: P.CustomerState) -> np.ndarray:
    """"Ordered in the last 30 days" or not, each worth the rate it had in the 30 days before ``now``."""
    col = P.ORDER_FEATURES.index("orders_30d")
    before = P.customer_state(h, now - 30)
    label = P.ordered_in(h, now - 30, now)[before.customers]
    recent = before.features[:, col] > 0
    return np.where(state.features[:, col] > 0, label[recent].mean(), label[~recent].mean())


def category_baseline(shop: Shop, now: float, pairs: P.PairState) -> np.ndarray:
    """Bought in the category in the last 30 days / before that / never: each worth its rate in the window before ``now``."""
    n_cat = len(shop.categories.names)

    def bucket(features: np.ndarray) -> np.ndarray:
        return np.where(features[:, 3] > 0, 2, np.where(features[:, 0] > 0, 1, 0))

    state = P.customer_state(shop.orders, now - 30)
    before = P.pair_state(shop.orders, shop.categories, now - 30, state)
    label = np.isin(before.customer * n_cat + before.category, P.bought_in(shop.categories, now - 30, now))
    b = bucket(before.features)
    rates = np.array([label[b == k].mean() if (b == k).any() else 0.0 for k in range(3)])
    return rates[bucket(pairs.features)]


# ---------------------------------------------------------------- quality


def row(name: str, q: dict) -> str:
    return f"| {name} | {q['ece']:.4f} | {q['brier']:.4f} | {q['auc']:.3f} | {q['log_loss']:.4f} | {q['mean_predicted']:.3f} |"


HEAD = "| model | ECE (10 bins) | Brier | AUC | log loss | mean prediction |\n|---|---|---|---|---|---|"


def order_quality(shop: Shop, cutoff: str, plots: dict) -> None:
    now = at(cutoff)
    started = time.perf_counter()
    ours = P.order_propensity(shop.orders, now)
    seconds = time.perf_counter() - started
    state = P.customer_state(shop.orders, now)
    c = state.customers
    truth = P.ordered_in(shop.orders, now, now + 30)[c]
    models = {
        "**personalize** (gradient boosting, calibrated)": ours.probability[c],
        "BG/NBD P(order in 30 days)": bgnbd_baseline(shop.orders, now, c),
        "ordered in the last 30 days (rate of each group)": recent_baseline(shop.orders, now, state),
    }
    print(f"\n**{shop.name}, as of {cutoff}**: {len(c):,} customers with an order before, "
          f"{truth.mean():.1%} of them ordered in the next 30 days; fit and scoring {seconds:.1f} s ({load_note()}); "
          f"{ours.details.get('rows', 0):,} training rows from {ours.details.get('windows', 0)} windows\n")
    print(HEAD)
    for name, p in models.items():
        print(row(name, P.quality(p, truth)))
    plots[f"{shop.name}, as of {cutoff}"] = {name.replace("*", "").split(" (")[0]: (p, truth) for name, p in list(models.items())[:2]}


def category_quality(shop: Shop, cutoff: str) -> None:
    now = at(cutoff)
    started = time.perf_counter()
    likely = P.category_propensity(shop.orders, shop.categories, now)
    seconds = time.perf_counter() - started
    pairs, n_cat = likely.pairs, len(shop.categories.names)
    bought = P.bought_in(shop.categories, now, now + 30)
    truth = np.isin(pairs.customer * n_cat + pairs.category, bought)
    known = P.customer_state(shop.orders, now).customers
    wanted = bought[np.isin(bought // n_cat, known)]
    top = np.isin(wanted, likely.customer * n_cat + likely.category).mean()
    dominant = np.bincount(shop.categories.category, minlength=n_cat).max() / len(shop.categories.category)
    print(f"\n**{shop.name}, likely categories as of {cutoff}**: {n_cat} categories (the commonest holds {dominant:.0%} "
          f"of purchases), {len(truth):,} customer-category pairs scored, {truth.mean():.2%} bought in the next 30 days; "
          f"{top:.1%} of the (customer, category) purchases of the next 30 days were among the customer's three likeliest; "
          f"{seconds:.1f} s\n")
    print(HEAD)
    print(row("**personalize** (gradient boosting, calibrated)", P.quality(likely.scores, truth)))
    print(row("bought in the category in the last 30 days / before / never (rate of each)", P.quality(category_baseline(shop, now, pairs), truth)))
    other = pairs.category != np.bincount(shop.categories.category, minlength=n_cat).argmax()
    q = P.quality(likely.scores[other], truth[other])
    print(f"\nWithout the commonest category: {other.sum():,} pairs, ECE {q['ece']:.4f}, Brier {q['brier']:.4f}, AUC {q['auc']:.3f}.")


def synthetic_quality() -> None:
    print("\n**Synthetic shops with known probabilities** (`personalize.segments.synthetic.generate`, 5,000 customers): "
          "the ECE here compares predictions with each customer's true probability, so it has no sampling noise on that side.\n")
    print("| seed | order: ECE vs truth | order: AUC (realised) | order: correlation with truth | categories: ECE vs truth | categories: correlation |")
    print("|---|---|---|---|---|---|")
    for seed in (1, 2, 3):
        shop = synthetic.generate(n_customers=5000, seed=seed)
        p = P.order_propensity(shop.orders, shop.now).probability
        truth = P.ordered_in(shop.orders, shop.now, shop.now + shop.horizon)
        likely = P.category_propensity(shop.orders, shop.categories, shop.now)
        pt = shop.p_category[likely.pairs.customer, likely.pairs.category]
        print(f"| {seed} | {P.expected_calibration_error(p, shop.p_order):.4f} | {P.quality(p, truth)['auc']:.3f} | "
              f"{np.corrcoef(p, shop.p_order)[0, 1]:.3f} | {P.expected_calibration_error(likely.scores, pt):.4f} | "
              f"{np.corrcoef(likely.scores, pt)[0, 1]:.3f} |")


# ---------------------------------------------------------------- the choice of calibration and windows


def choice(shops: list[tuple[Shop, str]]) -> None:
    print("\n**Calibration and windows**: ECE / Brier / AUC of the order propensity for each way of calibrating and "
          "number of stacked 30-day windows.\n")
    windows = (1, 3, 6, 12)
    for shop, cutoff in shops:
        now = at(cutoff)
        c = P.customer_state(shop.orders, now).customers
        truth = P.ordered_in(shop.orders, now, now + 30)[c]
        print(f"\n{shop.name}, as of {cutoff}:\n")
        print("| calibration | " + " | ".join(f"{w} window{'s' if w > 1 else ''}" for w in windows) + " |")
        print("|---|" + "---|" * len(windows))
        for calibration in P.CALIBRATIONS:
            cells = []
            for w in windows:
                p = P.order_propensity(shop.orders, now, windows=w, calibration=calibration).probability[c]
                q = P.quality(p, truth)
                cells.append(f"{q['ece']:.4f} / {q['brier']:.4f} / {q['auc']:.3f}")
            print(f"| {calibration} | " + " | ".join(cells) + " |", flush=True)


def small_shops(shop: Shop, cutoff: str, share: float = 0.12, seeds: tuple[int, ...] = (1, 2, 3)) -> None:
    """The same choice on small shops: random samples of the customers (about 500 of Online Retail's)."""
    now = at(cutoff)
    print(f"\nSmall shops: {share:.0%} of {shop.name}'s customers, drawn at random, as of {cutoff}, 6 windows "
          "(ECE / Brier / AUC):\n")
    methods = ("holdout-isotonic", "holdout-sigmoid", "isotonic", "sigmoid")
    print("| sample | customers | BG/NBD | " + " | ".join(methods) + " |\n|---|---|---|" + "---|" * len(methods))
    h = shop.orders
    for seed in seeds:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(h.n_customers, int(h.n_customers * share), replace=False))
        index = np.full(h.n_customers, -1)
        index[chosen] = np.arange(len(chosen))
        keep = index[h.customer] >= 0
        sample = P.OrderHistory(index[h.customer[keep]], h.day[keep], h.total[keep], len(chosen),
                                None if h.country is None else h.country[chosen])
        c = P.customer_state(sample, now).customers
        truth = P.ordered_in(sample, now, now + 30)[c]

        def cell(p: np.ndarray, truth: np.ndarray = truth) -> str:
            q = P.quality(p, truth)
            return f"{q['ece']:.4f} / {q['brier']:.4f} / {q['auc']:.3f}"

        cells = [cell(P.order_propensity(sample, now, calibration=m).probability[c]) for m in methods]
        print(f"| {seed} | {len(c):,} | {cell(bgnbd_baseline(sample, now, c))} | " + " | ".join(cells) + " |", flush=True)


# ---------------------------------------------------------------- scale


def scale(n: int) -> None:
    shop = synthetic.generate(n_customers=n, n_categories=40, seed=9)
    print(f"\n**Scale**: a synthetic shop of {n:,} customers, {len(shop.orders.customer):,} orders, 40 categories ({load_note()})\n")
    print("| step | seconds | training rows |\n|---|---|---|")
    for name, run in (("order propensity", lambda: P.order_propensity(shop.orders, shop.now)),
                      ("category propensity", lambda: P.category_propensity(shop.orders, shop.categories, shop.now))):
        started = time.perf_counter()
        got = run()
        print(f"| {name} | {time.perf_counter() - started:.1f} | {got.details.get('rows', 0):,} |", flush=True)
    print(f"\npeak memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


# ---------------------------------------------------------------- the reliability plot


COLOURS = {"personalize": "#1f6feb", "BG/NBD P(order in 30 days)": "#d1242f"}


def reliability_svg(plots: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], path: Path) -> None:
    """One panel per split: observed rate against mean prediction per bin (10 equal bins), the diagonal,
    and under it how many customers each bin holds."""
    size, pad, gap, hist = 260, 44, 36, 50
    width = len(plots) * (size + pad + gap) + gap
    height = size + hist + pad * 2 + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="sans-serif" font-size="11">', f'<rect width="{width}" height="{height}" fill="white"/>']
    for k, (title, series) in enumerate(plots.items()):
        x0, y0 = gap + pad + k * (size + pad + gap), 30

        def sx(v: float, x0: float = x0) -> float:
            return x0 + v * size

        def sy(v: float, y0: float = y0) -> float:
            return y0 + size - v * size

        out.append(f'<text x="{x0 + size / 2}" y="18" text-anchor="middle" font-weight="bold">{title}</text>')
        out.append(f'<rect x="{x0}" y="{y0}" width="{size}" height="{size}" fill="none" stroke="#888"/>')
        for t in (0.2, 0.4, 0.6, 0.8):
            out.append(f'<line x1="{sx(t)}" y1="{y0}" x2="{sx(t)}" y2="{y0 + size}" stroke="#eee"/>')
            out.append(f'<line x1="{x0}" y1="{sy(t)}" x2="{x0 + size}" y2="{sy(t)}" stroke="#eee"/>')
        for t in (0.0, 0.5, 1.0):
            out.append(f'<text x="{sx(t)}" y="{y0 + size + 14}" text-anchor="middle">{t:g}</text>')
            out.append(f'<text x="{x0 - 6}" y="{sy(t) + 4}" text-anchor="end">{t:g}</text>')
        out.append(f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(1)}" y2="{sy(1)}" stroke="#999" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x0 + size / 2}" y="{y0 + size + 28}" text-anchor="middle">predicted chance of an order in 30 days</text>')
        out.append(f'<text transform="translate({x0 - 30} {y0 + size / 2}) rotate(-90)" text-anchor="middle">share who ordered</text>')
        for j, (name, (p, y)) in enumerate(series.items()):
            colour = COLOURS.get(name, "#555")
            bins = [b for b in P.reliability(p, y) if b["count"] >= 20]  # fewer customers make a noisy point
            points = " ".join(f"{sx(b['predicted']):.1f},{sy(b['observed']):.1f}" for b in bins)
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
            out.extend(f'<circle cx="{sx(b["predicted"]):.1f}" cy="{sy(b["observed"]):.1f}" r="3" fill="{colour}"/>' for b in bins)
            ece = P.expected_calibration_error(p, y)
            out.append(f'<text x="{x0 + 6}" y="{y0 + 14 + 14 * j}" fill="{colour}">{name}: ECE {ece:.3f}</text>')
            if j == 0:  # how many customers each bin of our predictions holds
                counts = [b["count"] for b in P.reliability(p, y)]
                top, base = max(counts), y0 + size + 40 + hist
                for i, n in enumerate(counts):
                    h = hist * n / top if top else 0
                    out.append(f'<rect x="{sx(i / 10) + 1:.1f}" y="{base - h:.1f}" width="{size / 10 - 2:.1f}" height="{h:.1f}" fill="{colour}" opacity="0.35"/>')
                out.append(f'<text x="{x0 + size}" y="{base + 12}" text-anchor="end" fill="#555">customers per bin of our prediction (largest {top:,})</text>')
    out.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"\nreliability plot written to {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["quality", "choice", "scale"])
    ap.add_argument("--customers", type=int, default=100_000, help="customers of the synthetic shop for --only scale")
    ap.add_argument("--figure", type=Path, default=FIGURE)
    args = ap.parse_args()
    want: Callable[[str], bool] = lambda part: args.only in (None, part)  # noqa: E731
    shops = []
    if want("quality") or want("choice"):
        retail, amazon = load("Online Retail", RETAIL, False), load("Amazon grocery", AMAZON, True)
        shops = [(retail, "2011-11-09"), (retail, "2011-10-09"), (amazon, "2014-04-01")]
    if want("quality"):
        plots: dict = {}
        for shop, cutoff in shops:
            order_quality(shop, cutoff, plots)
        category_quality(shops[-1][0], "2014-04-01")
        synthetic_quality()
        reliability_svg({k: v for k, v in plots.items() if "2011-10-09" not in k}, args.figure)
    if want("choice"):
        choice([shops[0], shops[2]])
        small_shops(shops[0][0], "2011-11-09")
    if want("scale"):
        scale(args.customers)


if __name__ == "__main__":
    main()
