"""The holdout: a stable share of each site's visitors sees best sellers, not personal lists.

Whether a person is held out depends only on the site, the person's assignment key and the
share, through a hash, so the same person is in the same group on every page, in every
server process and whichever id a request names them by. The key is their profile's
``assignment_key``, set once when the profile was created (the widget's visitor id, or
``email:…`` / ``customer_id:…`` for people a server made known first) and kept through
identification and merges; someone without a profile yet is decided by the key their profile
will get (:func:`personalize.profiles.identity.assignment_key`). Raising the share only moves
people from the personalized group into the holdout (a key's hash point never moves).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from ..db import db
from ..models import Profile, Site

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


def hash_point(site_id: int, key: str) -> float:
    """The person's fixed point in [0, 1) for this site (``key``: their assignment key)."""
    digest = hashlib.sha256(f"personalize-holdout:{site_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_holdout(site: Site, key: str | None) -> bool:
    """True when the person with assignment key ``key`` belongs to the site's holdout group."""
    if not key:
        return False
    share = holdout_share(site)
    return share > 0 and hash_point(site.id, key) < share


def profile_in_holdout(site: Site, profile_id: int) -> bool:
    """Whether the profile's person is in the site's holdout (by their ``assignment_key``)."""
    if holdout_share(site) <= 0:
        return False
    return in_holdout(site, db.session.scalar(select(Profile.assignment_key).where(Profile.id == profile_id, Profile.site_id == site.id)))
