"""Turn a shop's order history into the arrays models learn from.

Every order line becomes one PURCHASE interaction. Known customers keep one user
index across all their orders; a guest order (no customer id) becomes a user of
its own, keyed ``order:<id>``, so its basket still teaches which items go together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..records import OrderRecord
from .data import PURCHASE, InteractionLog, ItemTable

GUEST_PREFIX = "order:"  # user keys of guest baskets start with this


@dataclass
class OrderData:
    """An order history as model arrays, plus the key and country of every user index."""

    log: InteractionLog
    items: ItemTable
    users: list[str]
    countries: list[str]


def orders_to_arrays(orders: Iterable[OrderRecord]) -> OrderData:
    """Build an :class:`OrderData` from orders, in the order they are given.

    Items are indexed by first appearance; an item's title is the one its order
    lines use most often (ties: the first seen). A user's country is that of their
    latest order; an item's price is the median unit price of its first 50 lines. All items are
    marked in stock: orders say nothing about stock.
    """
    user_index: dict[str, int] = {}
    user_keys: list[str] = []
    countries: list[str] = []
    item_index: dict[str, int] = {}
    item_ids: list[str] = []
    titles: list[Counter[str]] = []
    prices: list[list[float]] = []
    user_col: list[int] = []
    item_col: list[int] = []
    ts_col: list[float] = []
    qty_col: list[float] = []
    for order in orders:
        key = order.customer_id or f"{GUEST_PREFIX}{order.id}"
        u = user_index.get(key)
        if u is None:
            u = user_index[key] = len(user_keys)
            user_keys.append(key)
            countries.append(order.country)
        elif order.country:
            countries[u] = order.country
        when = order.occurred_at.timestamp()
        for line in order.lines:
            i = item_index.get(line.product_id)
            if i is None:
                i = item_index[line.product_id] = len(item_ids)
                item_ids.append(line.product_id)
                titles.append(Counter())
                prices.append([])
            if line.price and line.price > 0 and len(prices[i]) < 50:
                prices[i].append(float(line.price))
            if line.title:
                titles[i][line.title] += 1
            user_col.append(u)
            item_col.append(i)
            ts_col.append(when)
            qty_col.append(line.quantity)
    n = len(user_col)
    log = InteractionLog(
        user=np.asarray(user_col, dtype=np.int32),
        item=np.asarray(item_col, dtype=np.int32),
        kind=np.full(n, PURCHASE, dtype=np.int8),
        ts=np.asarray(ts_col, dtype=np.float64),
        qty=np.asarray(qty_col, dtype=np.float32),
        n_users=len(user_keys),
        n_items=len(item_ids),
    )
    names = [c.most_common(1)[0][0] if c else pid for c, pid in zip(titles, item_ids, strict=True)]
    items = ItemTable(
        ids=item_ids,
        titles=names,
        categories=[""] * len(item_ids),
        descriptions=[""] * len(item_ids),
        in_stock=np.ones(len(item_ids), dtype=bool),
        prices=np.array([float(np.median(p)) if p else np.nan for p in prices], dtype=np.float64),
    )
    return OrderData(log=log, items=items, users=user_keys, countries=countries)


def log_from_orders(orders: Iterable[OrderRecord]) -> tuple[InteractionLog, ItemTable, list[str]]:
    """Return ``(log, items, user_keys)`` for an order history.

    ``user_keys[u]`` is the customer id of user index ``u``, or ``order:<id>`` for
    a guest order. See :func:`orders_to_arrays` for the details.
    """
    data = orders_to_arrays(orders)
    return data.log, data.items, data.users
