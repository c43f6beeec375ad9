"""Recommendations outside the shop's pages: a person's list for email and the systems it is pushed to.

- :func:`contact_recommendations` — a known person's list (by profile, following merges), read
  from the same service as the widget's, with the same reasons and a ``rec_id``;
- :class:`ContactList` — the list a person was last shown in one channel (``block``: the
  open-time email image; ``push``: the fields pushed to an email provider or CRM), so a click
  on position *n* opens the product that was at position *n* there, whichever process served
  it, and so attribution carries the ``rec_id`` of the list shown;
- the email block's PNG, cached per person and list version (:class:`BlockCache`);
- product pictures for it: only files already on disk (:func:`thumbnail_path`), filled in the
  background by :func:`personalize.sync.recommendations.fetch_thumbnails` through the guarded HTTP client with tight limits.

Addresses are built from a base the caller gives (:func:`block_urls`); tokens are sealed
(:mod:`personalize.profiles.contact_tokens`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import JSON, DateTime, ForeignKey, Index, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db
from ..models import BigId, Identity, utcnow
from ..profiles.identity import CUSTOMER, EMAIL, VISITOR
from ..profiles.trust import site_token
from .email_image import Card, draw_cards
from .service import RecommendationList, recommend_for

log = logging.getLogger(__name__)

CHANNELS = ("block", "push")
EMAIL_SLOT = "email"
MAX_POSITIONS = 12
THUMBNAIL_BYTES = 2_000_000
THUMBNAIL_PIXELS = 4096 * 4096  # a product picture larger than this is not decoded (a PNG of 2 MB can hold 200 million pixels)


class ContactList(db.Model):
    """The list a person was last shown in a channel: product ids in order, with its ``rec_id``."""

    __tablename__ = "contact_lists"
    __table_args__ = (Index("ix_contact_lists_profile_channel", "profile_id", "channel"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    rec_id: Mapped[str] = mapped_column(String(64))
    items: Mapped[list] = mapped_column(JSON)
    version: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# ---------------------------------------------------------------- people and their lists


_PREFERRED = {EMAIL: 0, CUSTOMER: 1, VISITOR: 2}


def person_identity(site_id: int, profile_id: int) -> tuple[int, str, str] | None:
    """``(live profile id, identity kind, value)`` to read a person's history by: the profile (or
    the one it was merged into) and one of its identities; ``None`` when the person is gone."""
    from ..profiles.merge import resolve_profile_id

    live = resolve_profile_id(site_id, profile_id)
    if live is None:
        return None
    rows = db.session.execute(
        select(Identity.kind, Identity.value).where(Identity.site_id == site_id, Identity.profile_id == live).order_by(Identity.id).limit(50)
    ).all()
    if not rows:
        return None
    kind, value = min(rows, key=lambda r: _PREFERRED.get(r[0], 3))
    return live, kind, value


def contact_recommendations(site, profile_id: int, limit: int, slot: str = EMAIL_SLOT) -> tuple[int, RecommendationList] | None:
    """A known person's list (live profile id, list); ``None`` when the profile is gone."""
    found = person_identity(site.id, profile_id)
    if found is None:
        return None
    live, kind, value = found
    return live, recommend_for(site, value, slot=slot, limit=min(int(limit), MAX_POSITIONS), kind=kind)


def price_text(price: Any, currency: str | None) -> str:
    if not isinstance(price, int | float) or isinstance(price, bool):
        return ""
    return f"{price:,.2f} {currency or ''}".strip()


def list_version(items: list[dict[str, Any]]) -> str:
    """What the person would see, hashed: the same products with the same titles, prices and
    pictures give the same version (the image is cached under it)."""
    shown = [[i.get("id"), i.get("title"), i.get("price"), i.get("currency"), i.get("image"), i.get("url")] for i in items]
    return hashlib.sha1(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()


def shown_list(site_id: int, profile_id: int, channel: str) -> ContactList | None:
    return db.session.scalar(
        select(ContactList).where(ContactList.site_id == site_id, ContactList.profile_id == profile_id, ContactList.channel == channel)
        .order_by(ContactList.id.desc()).limit(1)
    )


def remember(site_id: int, profile_id: int, channel: str, recs: RecommendationList, version: str, commit: bool = True) -> str:
    """Keep ``recs`` as what the person is shown in ``channel``; the ``rec_id`` attribution uses:
    the one stored with this version when it is still the same list, else the new list's."""
    current = shown_list(site_id, profile_id, channel)
    if current is not None and current.version == version:
        return current.rec_id
    db.session.execute(delete(ContactList).where(ContactList.site_id == site_id, ContactList.profile_id == profile_id, ContactList.channel == channel))
    db.session.add(ContactList(site_id=site_id, profile_id=profile_id, channel=channel, rec_id=recs.rec_id,
                               items=[i["id"] for i in recs.items], version=version, created_at=utcnow()))
    if commit:
        db.session.commit()
    return recs.rec_id


# ---------------------------------------------------------------- addresses


def token_days() -> int:
    return max(1, int(current_app.config.get("EMAIL_TOKEN_DAYS") or 60))


def block_token(site_id: int, profile_id: int, now: float | None = None) -> str:
    return site_token(site_id, profile_id, token_days() * 86400, "email", now)


@dataclass(frozen=True)
class BlockUrls:
    """The addresses of one person's email block (``base`` is the server's public address)."""

    base: str
    site_id: int
    token: str

    @property
    def prefix(self) -> str:
        return f"{self.base}/email/recs/{self.site_id}/{self.token}"

    @property
    def image(self) -> str:
        return self.prefix + ".png"

    def click(self, position: int, channel: str = "block") -> str:
        return f"{self.prefix}/{'s' if channel == 'push' else ''}{position}"

    def card(self, position: int, of: int | None = None) -> str:
        """The card at ``position`` alone; ``of``: how long the list is (every card of one email
        must name the same length, so they come from the same list)."""
        return f"{self.prefix}/{position}.png" + (f"?n={of}" if of else "")


def block_urls(base: str, site_id: int, profile_id: int, now: float | None = None) -> BlockUrls:
    return BlockUrls(base.rstrip("/"), site_id, block_token(site_id, profile_id, now))


def site_addresses(site) -> tuple[str, str]:
    """``(server base, shop base)`` of a site: the email settings of its journeys (server address,
    shop address), else ``PUBLIC_URL`` and the site's first allowed origin."""
    table = db.metadata.tables.get("journey_settings")  # read, not imported: journeys sit above this module
    server = shop = ""
    if table is not None:
        row = db.session.execute(select(table.c.server_url, table.c.shop_url).where(table.c.site_id == site.id)).first()
        if row is not None:
            server, shop = row[0] or "", row[1] or ""
    server = server or str(current_app.config.get("PUBLIC_URL") or "")
    origins = list(getattr(site, "allowed_origins", None) or [])
    return server.rstrip("/"), (shop or (origins[0] if origins else "")).rstrip("/")


# ---------------------------------------------------------------- the image


class BlockCache:
    """Rendered PNGs in this process's memory, keyed by site, person, list version and layout,
    bounded in bytes (least recently used go first). A new list is a new version: nothing has
    to be told to forget anything."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            png = self._entries.get(key)
            if png is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return png

    def put(self, key: tuple, png: bytes) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            self._size -= len(old) if old else 0
            self._entries[key] = png
            self._size += len(png)
            while self._size > self.max_bytes and self._entries:
                _k, gone = self._entries.popitem(last=False)
                self._size -= len(gone)

    def forget_profile(self, site_id: int, profile_id: int) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == site_id and k[1] == profile_id]:
                self._size -= len(self._entries.pop(key))


def block_cache() -> BlockCache:
    cache = current_app.extensions.get("personalize.email_blocks")
    if cache is None:
        cache = current_app.extensions.setdefault("personalize.email_blocks", BlockCache())
    return cache


def thumbnail_dir() -> Path:
    path = Path(current_app.config.get("EMAIL_IMAGE_DIR") or Path(current_app.instance_path) / "email-images")
    return path


def thumbnail_path(image_url: str) -> Path:
    """Where the picture of ``image_url`` is kept on disk (it may not be there)."""
    return thumbnail_dir() / (hashlib.sha256(image_url.encode()).hexdigest()[:40] + ".png")


def card_of(item: dict[str, Any], shop: str = "") -> Card:
    image = absolute(shop, item.get("image") or "")
    picture = thumbnail_path(image) if image else None
    return Card(str(item.get("title") or ""), price_text(item.get("price"), item.get("currency")),
                str(picture) if picture is not None and picture.exists() else None)


def render_block(site_id: int, profile_id: int, version: str, items: list[dict[str, Any]], shop: str = "",
                 columns: int = 2, position: int | None = None) -> bytes:
    """The PNG of a person's list (or of its card at ``position``), from the cache when the
    same version was drawn before."""
    key = (site_id, profile_id, version, columns, position)
    cache = block_cache()
    png = cache.get(key)
    if png is None:
        chosen = items if position is None else items[position - 1 : position]
        png = draw_cards([card_of(i, shop) for i in chosen], columns=columns if position is None else 1)
        cache.put(key, png)
    return png


def absolute(base: str, url: str) -> str:
    from urllib.parse import urljoin, urlsplit

    if not url:
        return ""
    full = urljoin(base + "/", url) if base else url
    return full if urlsplit(full).scheme in ("http", "https") else ""
