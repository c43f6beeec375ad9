"""Synthetic order histories whose true purchase probabilities are known, for tests and benchmarks.

Each customer arrives on a random day, then buys as a Poisson process with their own
rate λ (Gamma distributed across customers, so a few buy often and many rarely) until
they leave for good on an exponentially distributed day. Each order holds one or two
categories drawn from the customer's own preferences θ (Dirichlet, concentrated on a few).

Because the simulation knows λ, θ and how long each customer still buys within the
next ``horizon`` days (``a``: the horizon, less the part after they leave), it knows the
probability that they order in it, ``1 − exp(−λ · a)``, and that they buy in category
``c``, ``1 − exp(−λ · q_c · a)``, where ``q_c`` is the share of their orders holding ``c``
(the Poisson process thinned). A model cannot know λ or whether someone has left, but
if it is calibrated, the true probabilities of the customers it gives "30 %" average
30 %: its predictions must agree with these in every band of prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from ..records import OrderLine, OrderRecord, ProductRecord
from .propensity import CategoryHistory, OrderHistory


@dataclass
class SyntheticShop:
    orders: OrderHistory
    categories: CategoryHistory
    now: float
    p_order: np.ndarray  # per customer: the true P(an order in the horizon after ``now``)
    p_category: np.ndarray  # (customers, categories): the true P(buying in each category in it)
    horizon: float


def generate(n_customers: int = 2000, n_categories: int = 8, days: float = 540.0, horizon: float = 30.0,
             mean_rate: float = 1 / 40, seed: int = 0) -> SyntheticShop:
    """A shop with ``n_customers`` customers over ``days`` days; "now" is ``days`` (orders after it are the future)."""
    rng = np.random.default_rng(seed)
    shape = 0.9
    rate = rng.gamma(shape, mean_rate / shape, n_customers)
    arrive = rng.uniform(0.0, days * 0.9, n_customers)
    leave = arrive + rng.exponential(365.0, n_customers)
    popularity = rng.dirichlet(np.ones(n_categories))
    prefs = np.vstack([rng.dirichlet(0.3 + 3 * popularity) for _ in range(n_customers)])
    end = days + horizon
    # the first order brings a customer in; after it, a Poisson process over their active span
    # (a Poisson number of orders placed uniformly in the span is exactly that)
    span = np.clip(np.minimum(leave, end) - arrive, 0.0, None)
    n_orders = 1 + rng.poisson(rate * span)
    customer = np.repeat(np.arange(n_customers), n_orders)
    day = arrive[customer] + rng.uniform(0.0, 1.0, len(customer)) * span[customer]
    first = np.r_[True, customer[1:] != customer[:-1]]
    day[first] = arrive[customer[first]]
    country = rng.choice(4, n_customers, p=[0.7, 0.15, 0.1, 0.05])
    total = np.round(rng.gamma(2.0, 20.0, len(customer)) * (1 + country[customer] * 0.2), 2)
    # each order's categories: one from the customer's preferences, a second one sometimes
    cum = np.cumsum(prefs[customer], axis=1)
    cat1 = (rng.random(len(customer))[:, None] > cum).sum(axis=1)
    two = rng.random(len(customer)) < 0.3
    cat2 = (rng.random(len(customer))[:, None] > cum).sum(axis=1)
    c_customer = np.concatenate([customer, customer[two]])
    c_day = np.concatenate([day, day[two]])
    c_cat = np.minimum(np.concatenate([cat1, cat2[two]]), n_categories - 1)
    keys = np.unique(np.column_stack([c_customer, c_day, c_cat]), axis=0)  # an order holds a category once
    # the time each customer is still buying inside the horizon (0 when they have left)
    active = np.clip(np.minimum(leave, end) - days, 0.0, horizon)
    # an order holds category c when the first draw is c, or a second draw happens and is c
    cat_rate = rate[:, None] * (1 - (1 - prefs) * (1 - 0.3 * prefs))
    return SyntheticShop(
        orders=OrderHistory(customer, day, total, n_customers, country),
        categories=CategoryHistory(keys[:, 0].astype(np.int64), keys[:, 1], keys[:, 2].astype(np.int64),
                                   [f"Category {chr(65 + i)}" for i in range(n_categories)]),
        now=days, p_order=1 - np.exp(-rate * active),
        p_category=1 - np.exp(-cat_rate * active[:, None]), horizon=horizon,
    )


COUNTRIES = ("United Kingdom", "Germany", "France", "Norway")


def records(shop: SyntheticShop, now: datetime, categorised: bool = True) -> tuple[list[ProductRecord], list[OrderRecord]]:
    """The shop as a catalogue (two products per category) and its orders up to ``now`` (a wall-clock
    moment standing for ``shop.now``), ready for ``upsert_products`` and ``import_orders``.

    Customer ``i`` is ``c<i>``. Without ``categorised`` the products carry no category.
    """
    names = shop.categories.names
    products = [
        ProductRecord(f"p{k}-{j}", f"{names[k]} item {j}", price=10.0 + j, category=names[k] if categorised else "")
        for k in range(len(names)) for j in range(2)
    ]
    h, ch = shop.orders, shop.categories
    lines: dict[tuple[int, float], list[int]] = {}
    for cust, day, cat in zip(ch.customer.tolist(), ch.day.tolist(), ch.category.tolist(), strict=True):
        lines.setdefault((cust, day), []).append(cat)
    orders = []
    for n, (cust, day, total) in enumerate(zip(h.customer.tolist(), h.day.tolist(), h.total.tolist(), strict=True)):
        if day > shop.now:
            continue
        cats = lines.get((cust, day), [])
        share = round(total / max(len(cats), 1), 2)
        orders.append(OrderRecord(
            id=f"o{n}", occurred_at=now - timedelta(days=shop.now - day), customer_id=f"c{cust}",
            country=COUNTRIES[int(h.country[cust])] if h.country is not None else "",
            lines=tuple(OrderLine(f"p{k}-{n % 2}", 1.0, share) for k in cats),
        ))
    return products, orders
