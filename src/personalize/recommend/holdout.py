"""The holdout: a stable share of each site's visitors sees best sellers, not personal lists.

Whether a visitor is held out depends only on the site, the visitor id and the share,
through a hash, so the same visitor is in the same group on every page and in every
server process, with nothing stored. Raising the share only moves visitors from the
personalized group into the holdout (a visitor's hash point never moves).
"""

from __future__ import annotations

import hashlib

from ..db import db
from ..models import Site

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
