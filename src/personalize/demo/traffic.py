"""Generated browsing and buying histories for the demo shop.

Each visitor has a persona (a runner, a coffee lover, a new parent, or a mix of
two) that decides which categories they browse. Within a category a few products
are far more popular than the rest (a power law). Buying a product of some kinds
makes its complements likely in the same order (espresso machine → beans, milk
frother), and each such product has a favourite partner, so a co-occurrence
model learns real item-to-item pairs. Everything is fixed by the seed.

The events are shaped exactly as the widget sends them to ``POST /api/v1/events``;
event ids are deterministic, so ingesting the same history twice stores it once.
"""

from __future__ import annotations

import random
import time
from bisect import bisect
from collections.abc import Sequence
from itertools import accumulate

from personalize.demo.catalog import COMPLEMENTS, CURRENCY, category_slug
from personalize.records import ProductRecord

HISTORY_DAYS = 60
DAY = 86_400.0

# Category affinities per persona (category slug → share of the persona's browsing).
PERSONAS: dict[str, dict[str, float]] = {
    "runner": {"running": 0.65, "audio": 0.2, "hiking": 0.15},
    "hiker": {"hiking": 0.65, "running": 0.15, "coffee-tea": 0.2},
    "coffee lover": {"coffee-tea": 0.7, "kitchen": 0.3},
    "home cook": {"kitchen": 0.65, "coffee-tea": 0.2, "garden": 0.15},
    "gardener": {"garden": 0.7, "kitchen": 0.15, "pets": 0.15},
    "new parent": {"kids": 0.7, "coffee-tea": 0.15, "kitchen": 0.15},
    "home office": {"office": 0.6, "audio": 0.25, "coffee-tea": 0.15},
    "pet owner": {"pets": 0.7, "garden": 0.15, "hiking": 0.15},
    "yogi": {"yoga": 0.65, "coffee-tea": 0.2, "running": 0.15},
    "music fan": {"audio": 0.7, "office": 0.3},
}
# How common each persona is among the shop's visitors.
PERSONA_SHARE: dict[str, float] = {
    "runner": 14,
    "hiker": 9,
    "coffee lover": 15,
    "home cook": 10,
    "gardener": 10,
    "new parent": 9,
    "home office": 12,
    "pet owner": 10,
    "yogi": 6,
    "music fan": 5,
}
MIX_SHARE = 0.25  # visitors whose interests are an even mix of two personas
NOISE_SHARE = 0.08  # share of category picks made at random (everyone browses a little)

SESSIONS_PER_VISITOR = (1, 2, 3, 4, 5, 6)
SESSION_WEIGHTS = (45, 25, 13, 8, 5, 4)
ADD_TO_CART = 0.12
COMPLEMENT_VIEW = 0.6
COMPLEMENT_ADD = 0.7
FAVOURITE_PARTNER = 0.7
CHECKOUT = 0.45


def visitor_id(number: int, n_visitors: int) -> str:
    """The visitor id of visitor ``number`` (1-based): ``demo-v0001``."""
    return f"demo-v{number:0{max(4, len(str(n_visitors)))}d}"


def persona_affinities(persona: str) -> dict[str, float]:
    """Category slug → browsing share for a persona name from :func:`demo_personas`.

    A mix such as ``"runner+coffee lover"`` is the even average of its parts.
    """
    parts = persona.split("+")
    mixed: dict[str, float] = {}
    for part in parts:
        for slug, share in PERSONAS[part].items():
            mixed[slug] = mixed.get(slug, 0.0) + share / len(parts)
    return mixed


def demo_personas(n_visitors: int = 3000, seed: int = 7) -> dict[str, str]:
    """Visitor id → persona name (``"runner"`` or a mix ``"runner+coffee lover"``)."""
    rng = random.Random(seed * 7919 + 1)
    names = list(PERSONA_SHARE)
    cum = list(accumulate(PERSONA_SHARE[n] for n in names))
    personas = {}
    for number in range(1, n_visitors + 1):
        first = rng.choices(names, cum_weights=cum)[0]
        persona = first
        if rng.random() < MIX_SHARE:
            second = rng.choices(names, cum_weights=cum)[0]
            if second != first:
                persona = f"{first}+{second}"
        personas[visitor_id(number, n_visitors)] = persona
    return personas


class _Picker:
    """Weighted choice over a fixed list, with the cumulative weights computed once."""

    def __init__(self, items: Sequence, weights: Sequence[float]):
        self.items = list(items)
        self.cum = list(accumulate(weights))

    def pick(self, rng: random.Random):
        return self.items[bisect(self.cum, rng.random() * self.cum[-1])]


class _History:
    """One visitor's sessions, written as events in the order they happen."""

    def __init__(self, visitor: str, rng: random.Random, now: float, partners: dict, events: list):
        self.visitor = visitor
        self.rng = rng
        self.now = now
        self.partners = partners
        self.events = events
        self.counter = 0
        self.ts = 0.0
        self.seen: list[ProductRecord] = []
        self.cart: dict[str, list] = {}

    def emit(self, kind: str, **fields) -> None:
        self.counter += 1
        event = {
            "id": f"{self.visitor}-{self.counter:03d}",
            "type": kind,
            "visitor": self.visitor,
            "ts": int(min(self.ts, self.now - 1) * 1000),
        }
        event.update(fields)
        self.events.append(event)

    def start_session(self, ts: float) -> None:
        # Sessions drawn close together would overlap; a new one starts after a break.
        self.ts = max(ts, self.ts + 1800) if self.counter else ts
        self.cart = {}
        self.emit("page_viewed", url="/")

    def view(self, product: ProductRecord, add_chance: float) -> None:
        rng = self.rng
        self.ts += rng.uniform(15, 140)
        self.emit("product_viewed", product_id=product.id, url=product.url)
        self.seen.append(product)
        if not product.in_stock or rng.random() >= add_chance:
            return
        self.ts += rng.uniform(5, 40)
        self.emit("product_added", product_id=product.id, quantity=1, price=product.price)
        self.cart.setdefault(product.id, [product, 0])[1] += 1
        for favourite, candidates in self.partners.get(product.id, ()):
            if rng.random() < COMPLEMENT_VIEW:
                partner = favourite if rng.random() < FAVOURITE_PARTNER else rng.choice(candidates)
                self.view(partner, COMPLEMENT_ADD)

    def checkout(self, order_id: str) -> None:
        self.ts += self.rng.uniform(60, 300)
        items = [
            {"product_id": p.id, "quantity": qty, "price": p.price} for p, qty in self.cart.values()
        ]
        revenue = round(sum(i["price"] * i["quantity"] for i in items), 2)
        self.emit(
            "order_completed", order_id=order_id, items=items, revenue=revenue, currency=CURRENCY
        )
        self.cart = {}


def _slug_of(product: ProductRecord) -> str:
    return (
        product.attributes.get("category_slug")
        or category_slug(product.category)
        or product.category
    )


def demo_events(
    products: Sequence[ProductRecord],
    n_visitors: int = 3000,
    seed: int = 7,
    now: float | None = None,
) -> list[dict]:
    """The browsing and buying history of ``n_visitors`` over the last 60 days, oldest first.

    ``now`` is unix seconds (default: the current time); timestamps in the events
    are epoch milliseconds before it. Same products, seed and ``now`` → same list.
    """
    now = time.time() if now is None else now
    rng = random.Random(seed)
    personas = demo_personas(n_visitors, seed)

    by_slug: dict[str, list[ProductRecord]] = {}
    for product in products:
        by_slug.setdefault(_slug_of(product), []).append(product)
    # Popularity: within a category the product at rank r is viewed ∝ 1/(r+1).
    pickers: dict[str, _Picker] = {}
    for slug, items in by_slug.items():
        ranked = sorted(items, key=lambda p: p.id)
        rng.shuffle(ranked)
        weights = [
            (1.0 / (rank + 1)) * (1.0 if p.in_stock else 0.5) for rank, p in enumerate(ranked)
        ]
        pickers[slug] = _Picker(ranked, weights)
    all_slugs = sorted(by_slug)

    by_kind: dict[str, list[ProductRecord]] = {}
    for product in products:
        kind = product.attributes.get("kind")
        if kind:
            by_kind.setdefault(kind, []).append(product)
    # Every product with complements has one favourite partner per complementary
    # kind (the same brand if there is one), bought with it most of the time.
    partners: dict[str, list[tuple[ProductRecord, list[ProductRecord]]]] = {}
    for product in products:
        for kind in COMPLEMENTS.get(product.attributes.get("kind", ""), ()):
            candidates = by_kind.get(kind, [])
            if not candidates:
                continue
            brand = product.attributes.get("brand")
            same_brand = [c for c in candidates if c.attributes.get("brand") == brand]
            favourite = rng.choice(same_brand or candidates)
            partners.setdefault(product.id, []).append((favourite, candidates))

    category_pickers = {}
    for persona in set(personas.values()):
        shares = persona_affinities(persona)
        weights = [
            (1 - NOISE_SHARE) * shares.get(s, 0.0) + NOISE_SHARE / len(all_slugs) for s in all_slugs
        ]
        category_pickers[persona] = _Picker(all_slugs, weights)

    events: list[dict] = []
    start = now - HISTORY_DAYS * DAY
    for visitor, persona in personas.items():
        history = _History(visitor, rng, now, partners, events)
        n_sessions = rng.choices(SESSIONS_PER_VISITOR, weights=SESSION_WEIGHTS)[0]
        first_seen = start + rng.random() * (HISTORY_DAYS - 1) * DAY
        session_starts = sorted(
            first_seen + rng.random() * (now - 3600 - first_seen) for _ in range(n_sessions)
        )
        for session, ts in enumerate(session_starts, 1):
            history.start_session(ts)
            focus = category_pickers[persona].pick(rng)
            n_views = min(12, 1 + int(rng.expovariate(1 / 3)))
            for _ in range(n_views):
                if history.seen and rng.random() < 0.15:
                    product = rng.choice(history.seen)  # coming back to something seen before
                else:
                    slug = focus if rng.random() < 0.7 else category_pickers[persona].pick(rng)
                    product = pickers[slug].pick(rng)
                history.view(product, ADD_TO_CART)
            if history.cart and rng.random() < CHECKOUT:
                history.checkout(f"{visitor}-o{session}")

    events.sort(key=lambda e: (e["ts"], e["id"]))
    return events


__all__ = [
    "PERSONAS",
    "demo_events",
    "demo_personas",
    "persona_affinities",
    "visitor_id",
]
