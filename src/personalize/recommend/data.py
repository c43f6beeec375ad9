"""The arrays a recommendation model learns from and serves with.

Everything in :mod:`personalize.recommend` except ``service`` works on these
plain numpy structures: no ORM, no Flask, so models are testable and benchmarkable
on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..kinds import CART, KIND_NAMES, PURCHASE, VIEW  # noqa: F401  (named here too, as the models' vocabulary)


@dataclass
class ItemTable:
    """The catalogue as arrays; row ``i`` is item index ``i`` everywhere in a model."""

    ids: list[str]
    titles: list[str]
    categories: list[str]
    descriptions: list[str]
    in_stock: np.ndarray  # bool, shape (n_items,)
    prices: np.ndarray | None = None  # float, shape (n_items,); NaN or absent: unknown

    def __len__(self) -> int:
        return len(self.ids)

    def index(self) -> dict[str, int]:
        return {pid: i for i, pid in enumerate(self.ids)}


@dataclass
class InteractionLog:
    """Every interaction as parallel arrays (one row per user × item × moment).

    ``user`` indexes users 0..n_users-1 (a known customer, or for guests a single
    basket); ``item`` indexes :class:`ItemTable` rows; ``kind`` is VIEW, CART or
    PURCHASE; ``ts`` is unix seconds; ``qty`` the quantity (1 for views).
    """

    user: np.ndarray  # int32
    item: np.ndarray  # int32
    kind: np.ndarray  # int8
    ts: np.ndarray  # float64
    qty: np.ndarray  # float32
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return len(self.user)

    def select(self, mask: np.ndarray) -> InteractionLog:
        return InteractionLog(
            self.user[mask], self.item[mask], self.kind[mask], self.ts[mask], self.qty[mask],
            self.n_users, self.n_items,
        )


@dataclass(frozen=True)
class HistoryEntry:
    """One step of a single visitor's history, as the server hands it to a model."""

    item: int
    kind: int
    ts: float
    qty: float = 1.0


class HistoryArrays(NamedTuple):
    """A visitor's history as four equal-length arrays, oldest first: item indexes (negative:
    not in the model, ignored), kinds, unix seconds and quantities. What a server builds
    from the rows it reads, without one :class:`HistoryEntry` object per step."""

    items: np.ndarray
    kinds: np.ndarray
    ts: np.ndarray
    qty: np.ndarray

    @classmethod
    def of(cls, history: Sequence[HistoryEntry]) -> HistoryArrays:
        hist = list(history)
        n = len(hist)
        return cls(
            np.fromiter((h.item for h in hist), dtype=np.int64, count=n),
            np.fromiter((h.kind for h in hist), dtype=np.int64, count=n),
            np.fromiter((h.ts for h in hist), dtype=np.float64, count=n),
            np.fromiter((h.qty for h in hist), dtype=np.float64, count=n),
        )
