"""The holdout: a stable share of each site's visitors sees best sellers, not personal lists.

Whether a visitor is held out depends only on the site, the visitor id and the share,
through a hash, so the same visitor is in the same group on every page and in every
server process, with nothing stored. Raising the share only moves visitors from the
personalized group into the holdout (a visitor's hash point never moves).
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import func, select

from ..db import db
from ..models import Interaction, Site
from ..reasons import reason_fields

HOLDOUT = "holdout"
DEFAULT_SHARE = 0.0
MAX_SHARE = 0.5
HOLDOUT_REASON = "Popular right now"


def holdout_share(site: Site) -> float:
    """The share of the site's visitors in the holdout (0 = off), from ``settings["holdout"]``."""
    raw = ((site.settings or {}).get("holdout") or {}).get("share", DEFAULT_SHARE)
    try:
        share = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_SHARE
    return min(max(share, 0.0), MAX_SHARE)


def set_holdout_share(site: Site, share: float) -> None:
    """Store a new holdout share (0 to :data:`MAX_SHARE`) and commit."""
    if not 0.0 <= share <= MAX_SHARE:
        raise ValueError(f"the holdout share must be between 0 and {MAX_SHARE:g}")
    settings = dict(site.settings or {})
    settings["holdout"] = {**(settings.get("holdout") or {}), "share": round(float(share), 4)}
    site.settings = settings
    db.session.commit()


def hash_point(site_id: int, visitor: str) -> float:
    """The visitor's fixed point in [0, 1) for this site."""
    digest = hashlib.sha256(f"personalize-holdout:{site_id}:{visitor}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(site: Site, visitor: str | None) -> bool:
    """True when ``visitor`` belongs to the site's holdout group."""
    if not visitor:
        return False
    share = holdout_share(site)
    return share > 0 and hash_point(site.id, visitor) < share


def holdout_items(site: Site, limit: int, product: str | None = None) -> list[dict[str, Any]]:
    """Best sellers in stock, the same for everyone: what the holdout group is shown.

    Uses the served model's popularity when there is one, else counts interactions.
    Products the shop excluded in its rules never show, as for everyone else.
    """
    from ..recommend.service import cards_of, model_cache

    rules = (site.settings or {}).get("rules") or {}
    skip = set(rules.get("exclude") or [])
    if product:
        skip.add(product)
    want = limit + len(skip) + 5
    loaded = model_cache().get(site.id)
    if loaded is not None:
        ids = loaded.model.items.ids
        ranked = [ids[s.item] for s in loaded.model.popular(want)]
    else:
        ranked = list(db.session.scalars(
            select(Interaction.product_id).where(Interaction.site_id == site.id)
            .group_by(Interaction.product_id).order_by(func.sum(Interaction.kind).desc(), Interaction.product_id).limit(want)
        ))
    ranked = [pid for pid in ranked if pid not in skip]
    cards = cards_of(site.id, ranked)
    out = []
    for pid in ranked:
        card = cards.get(pid)
        if card is None or not card[6]:  # unknown, or out of stock
            continue
        out.append({
            "id": card[0], "title": card[1], "url": card[2], "image": card[3], "price": card[4],
            "currency": card[5], "reason": HOLDOUT_REASON, **reason_fields(HOLDOUT_REASON),
        })
        if len(out) == limit:
            break
    return out
