"""The recommendation service: stored data → arrays → model file, and model → a visitor's list.

This is the only module of :mod:`personalize.recommend` that touches the database;
the models themselves work on the arrays of :mod:`personalize.recommend.data`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import secrets
import threading
import time
from calendar import timegm
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from flask import current_app, g, has_app_context
from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.exc import DBAPIError

from ..db import db
from ..experiments.arms import arm_rules, choose, pinned_versions
from ..models import Identity, Interaction, ModelVersion, Product, Profile, Site
from ..plugins import hooks, notify
from ..profiles.identity import VISITOR, assignment_key
from ..reasons import reason_fields
from ..records import Recommendation
from ..segments.models import ProfileScore
from ..segments.store import cluster_names_of
from ..validation import whole_number
from .data import CART, PURCHASE, VIEW, HistoryArrays, InteractionLog, ItemTable
from .engine import Recommender
from .holdout import HOLDOUT, HOLDOUT_REASON, holdout_share, in_holdout
from .strategies import describe_pages, rerank

log = logging.getLogger(__name__)
STALE_DATA_SECONDS = 2 * 86400  # data that ended longer before training than this is said so at train


def load_site_data(site_id: int, before=None) -> tuple[InteractionLog, ItemTable, list[str]]:
    """The site's catalogue and every interaction on a catalogue product, as arrays.

    Users are profiles; guest orders (no profile) count as one user each, so their
    baskets still teach which products go together.
    """
    products = db.session.execute(
        select(Product.external_id, Product.title, Product.category, Product.description, Product.in_stock)
        .where(Product.site_id == site_id).order_by(Product.id)
    ).all()
    items = ItemTable(
        ids=[p[0] for p in products], titles=[p[1] for p in products], categories=[p[2] or "" for p in products],
        descriptions=[p[3] or "" for p in products], in_stock=np.array([bool(p[4]) for p in products], dtype=bool),
    )
    index = items.index()
    q = select(Interaction.profile_id, Interaction.order_id, Interaction.product_id, Interaction.kind, Interaction.occurred_at, Interaction.quantity).where(Interaction.site_id == site_id)
    if before is not None:
        q = q.where(Interaction.occurred_at < before)
    users: dict[Any, int] = {}
    u, it, k, ts, qty = [], [], [], [], []
    for profile_id, order_id, product_id, kind, when, quantity in db.session.execute(q).yield_per(50_000):
        i = index.get(product_id)
        if i is None:
            continue
        key = profile_id if profile_id is not None else f"order:{order_id}"
        uid = users.setdefault(key, len(users))
        u.append(uid)
        it.append(i)
        k.append(kind)
        ts.append(timegm(when.timetuple()))
        qty.append(quantity or 1.0)
    interactions = InteractionLog(
        user=np.array(u, dtype=np.int32), item=np.array(it, dtype=np.int32), kind=np.array(k, dtype=np.int8),
        ts=np.array(ts, dtype=np.float64), qty=np.array(qty, dtype=np.float32), n_users=len(users), n_items=len(items),
    )
    return interactions, items, [str(key) for key in users]


def model_dir() -> Path:
    path = Path(current_app.config.get("MODEL_DIR") or Path(current_app.instance_path) / "models")
    path.mkdir(parents=True, exist_ok=True)
    return path


def train_site(site_id: int, progress=None) -> dict[str, Any]:
    """Train a model on the site's data, write it, and make it the one served.

    The fit runs the self-check (see :mod:`personalize.recommend.training`): the summary's
    ``served`` says what each view serves, ``check`` the validation figures and
    ``description`` the same in the owner's words. Running servers pick the model up
    within ``MODEL_CHECK_SECONDS`` without a restart.
    """
    say = progress or (lambda stage: None)
    say("loading interactions")
    started = time.perf_counter()
    log_, items, users = load_site_data(site_id)
    loaded = time.perf_counter()
    say(f"fitting on {len(log_):,} interactions, {log_.n_users:,} people, {len(items):,} products")
    clusters = cluster_names_of(site_id)  # "popular with customers like you": per cluster of personalize scores
    user_segments = [clusters.get(whole_number(u)) if whole_number(u) is not None else None for u in users] if clusters else None
    # the model's clock starts where the data ends (Recommender.clock): an imported history is
    # checked on its own last weeks and ranked as of its end, not years later
    wall = time.time()
    anchor = min(wall, float(log_.ts.max()) + 1.0) if len(log_) else wall
    model = Recommender.fit(log_, items, now=anchor, user_segments=user_segments, progress=say)
    model.clock_offset = wall - anchor
    fitted = time.perf_counter()
    description = model.describe()
    if model.clock_offset > STALE_DATA_SECONDS:
        ends = datetime.fromtimestamp(anchor, tz=UTC).date().isoformat()
        description += (f" The newest data is from {ends}, {model.clock_offset / 86400:,.0f} days ago: lists are ranked "
                        "as of that day, and the model's clock runs on from there.")
    pages = describe_pages(model.page_tables.choice)
    if pages:
        description += " " + pages
    say(description)
    path = model_dir() / f"site{site_id}-{int(time.time())}-{secrets.token_hex(3)}.model"
    say(f"saving {path.name}")
    model.save(path)
    version = ModelVersion(
        site_id=site_id, path=str(path), n_items=len(items), n_users=log_.n_users,
        n_interactions=len(log_), fit_seconds=round(fitted - loaded, 3), active=True,
    )
    db.session.add(version)
    db.session.commit()
    _prune_old_models(site_id, keep=version.id)
    summary = {
        "version": version.id, "path": str(path), "n_items": len(items), "n_users": log_.n_users,
        "n_interactions": len(log_), "load_seconds": round(loaded - started, 3), "fit_seconds": round(fitted - loaded, 3),
        "served": model.serve, "check": model.check, "description": description,
        # how bought-together was chosen for this shop (personalize.recommend.strategies)
        "pages": {k: v for k, v in model.page_tables.choice.items() if not k.endswith("recall")},
    }
    log.info("site %s: model %s trained in %.1f s. %s", site_id, version.id, fitted - loaded, description)
    notify("model_trained", site_id=site_id, summary=summary)
    return summary


def _prune_old_models(site_id: int, keep: int, retain: int = 3) -> None:
    """Keep the newest few model files (a server may still be loading the previous one), and
    those an experiment's arm or a rolled-out winner serves."""
    site = db.session.get(Site, site_id)
    pinned = pinned_versions((site.settings or {}) if site is not None else {})
    old = db.session.scalars(
        select(ModelVersion).where(ModelVersion.site_id == site_id, ModelVersion.id != keep).order_by(ModelVersion.id.desc())
    ).all()
    for version in old[retain - 1 :]:
        if version.id in pinned:
            continue
        Path(version.path).unlink(missing_ok=True)
        db.session.delete(version)
    db.session.commit()


def latest_version(site_id: int) -> ModelVersion | None:
    return db.session.scalar(
        select(ModelVersion).where(ModelVersion.site_id == site_id, ModelVersion.active.is_(True)).order_by(ModelVersion.id.desc()).limit(1)
    )


@dataclass
class _Loaded:
    version: int
    model: Recommender
    index: dict[str, int]
    checked: float


class ModelCache:
    """Models loaded once per process and swapped whole when a newer version appears.

    A request always holds one complete model object: loading happens beside the
    old one, and the swap is a single assignment.
    """

    def __init__(self, check_seconds: float = 5.0):
        self.check_seconds = check_seconds
        self._loaded: dict[int, _Loaded] = {}
        self._pinned: dict[tuple[int, int], _Loaded] = {}  # (site, version): stored versions experiments serve
        self._lock = threading.Lock()

    def get(self, site_id: int, version: int | None = None) -> _Loaded | None:
        """The site's newest active model; with ``version``, that stored version (an experiment's arm
        may serve one), else the newest if it is gone."""
        if version is not None:
            pinned = self._version(site_id, version)
            if pinned is not None:
                return pinned
        now = time.monotonic()
        current = self._loaded.get(site_id)
        if current is not None and now - current.checked < self.check_seconds:
            return current
        found = _LATEST.rows({"site_id": site_id})  # on the driver's cursor: a request may read on its own connection
        if not found:
            return None
        version_id, path = found[0]
        if current is not None and current.version == version_id:
            current.checked = now
            return current
        with self._lock:
            current = self._loaded.get(site_id)
            if current is not None and current.version == version_id:
                return current
            try:
                model = Recommender.load(path)
            except (OSError, ValueError) as exc:
                log.error("model %s for site %s cannot be loaded: %s", path, site_id, exc)
                return current
            loaded = _Loaded(version_id, model, model.items.index(), now)
            self._loaded[site_id] = loaded
            return loaded

    def _version(self, site_id: int, version: int) -> _Loaded | None:
        found = self._pinned.get((site_id, version))
        if found is not None:
            return found
        rows = _VERSION.rows({"site_id": site_id, "version": version})
        if not rows:
            return None
        with self._lock:
            try:
                model = Recommender.load(rows[0][1])
            except (OSError, ValueError) as exc:
                log.error("model %s for site %s cannot be loaded: %s", rows[0][1], site_id, exc)
                return None
            if len(self._pinned) >= 8:
                self._pinned.clear()
            found = self._pinned[(site_id, version)] = _Loaded(version, model, model.items.index(), time.monotonic())
            return found

    def expire(self, site_id: int) -> None:
        """Look for a newer model at the next request, not the next poll (a new one was announced)."""
        current = self._loaded.get(site_id)
        if current is not None:
            current.checked = float("-inf")


def model_cache() -> ModelCache:
    return current_app.extensions["personalize.models"]


@dataclass
class RecommendationList:
    rec_id: str
    slot: str
    strategy: str
    items: list[dict[str, Any]] = field(default_factory=list)
    products: list[str] | None = None  # a re-ordered listing (rank_for): every given id

    def as_json(self) -> dict[str, Any]:
        out = {"rec_id": self.rec_id, "slot": self.slot, "strategy": self.strategy, "items": self.items}
        if self.products is not None:
            out["products"] = self.products
        return out


def new_rec_id() -> str:
    return "r_" + secrets.token_hex(8)


class DriverQuery:
    """A SELECT compiled once per database dialect and run on the driver's own cursor.

    A recommendation request runs a few small indexed queries; for those, building
    and executing through SQLAlchemy's ORM layer costs more than the database does.
    Values come back as the driver gives them (SQLite: text for dates and JSON).
    """

    def __init__(self, stmt):
        self.stmt = stmt
        self._compiled: dict[str, tuple[str, dict[str, Any], list[str] | None]] = {}

    def rows(self, params: dict[str, Any]) -> list[tuple]:
        for attempt in itertools.count():  # ends in a return or a raise (see _read_attempts)
            dialect, raw, kept = _driver_connection()
            compiled = self._compiled.get(dialect.name)
            if compiled is None:
                c = self.stmt.compile(dialect=dialect)
                compiled = (str(c), dict(c.params), list(c.positiontup) if c.positional else None)
                self._compiled[dialect.name] = compiled
            sql, defaults, order = compiled
            values = {**defaults, **params}
            args = [values[k] for k in order] if order is not None else values
            cursor = kept or raw.cursor()
            try:
                cursor.execute(sql, args)
                return cursor.fetchall()
            except dialect.loaded_dbapi.Error as exc:
                gone = dialect.is_disconnect(exc, raw, cursor)
                # a pooled connection the database dropped (it restarted): the request's own read
                # connection is replaced and the read tried again, on each dead one in turn
                if gone and attempt + 1 < _read_attempts() and _renew_read_connection(exc):
                    continue
                # as SQLAlchemy would raise it (a database down is a 503)
                raise DBAPIError.instance(sql, args, exc, dialect.loaded_dbapi.Error, dialect=dialect,
                                          connection_invalidated=gone) from exc
            finally:
                if kept is None:
                    with contextlib.suppress(dialect.loaded_dbapi.Error):  # a cursor of a connection that died
                        cursor.close()


_READ_ATTEMPTS = 12


def _read_attempts() -> int:
    """More reads than the web process's pool holds connections (each may be dead after a
    restart, and each failed read takes the next), so a restart costs no request an error."""
    size = getattr(db.engine.pool, "size", None)
    return max(_READ_ATTEMPTS, size() + 2) if callable(size) else _READ_ATTEMPTS


def _renew_read_connection(error: Exception) -> bool:
    """Drop the request's read connection (see :func:`use_read_connection`) after the database
    closed it, with the other kept ones, so the next read takes a fresh one; ``False`` when
    reads go through the session."""
    if not has_app_context() or g.get("personalize_read_connection") is None:
        return False
    readers, kept = g.personalize_read_connection
    g.personalize_read_connection = None
    log.warning("dropped a database connection that had gone away: %s", error)
    readers.discard(kept)
    return True


_VERSION = DriverQuery(
    select(ModelVersion.id, ModelVersion.path).where(ModelVersion.site_id == bindparam("site_id"), ModelVersion.id == bindparam("version"))
)
_LATEST = DriverQuery(
    select(ModelVersion.id, ModelVersion.path).where(ModelVersion.site_id == bindparam("site_id"), ModelVersion.active.is_(True))
    .order_by(ModelVersion.id.desc()).limit(1)
)


def use_read_connection() -> None:
    """For the rest of this request, :class:`DriverQuery` reads outside any transaction on a
    connection of :class:`personalize.db.ReadConnections`, not through the session (beginning
    and ending a session transaction costs a recommendation about as much as one of its
    queries). Only for requests that write nothing. The connection is given back in
    :func:`release_read_connection`, at the end of the request."""
    g.personalize_read_connection = None


def release_read_connection() -> None:
    taken = g.pop("personalize_read_connection", None)
    if taken is not None:
        taken[0].give_back(taken[1])


def _driver_connection():
    """``(dialect, driver connection, cursor or None)``: the session's current transaction's,
    looked up once per transaction of a request (asking the session each time costs more than
    a small query), or the request's own read connection and its cursor (see
    :func:`use_read_connection`)."""
    if has_app_context() and "personalize_read_connection" in g:
        taken = g.personalize_read_connection
        if taken is None:
            readers = current_app.extensions["personalize.read_connections"]
            taken = g.personalize_read_connection = (readers, readers.take())
        return taken[0].dialect, taken[1][0], taken[1][1]
    session = db.session()
    memo = g.get("personalize_driver_connection") if has_app_context() else None
    if memo is not None and memo[0] is session.get_transaction() and memo[0].is_active:
        return memo[1], memo[2], None
    conn = session.connection()
    memo = (session.get_transaction(), conn.dialect, conn.connection)
    if has_app_context():
        g.personalize_driver_connection = memo
    return memo[1], memo[2], None


def _visitor_statement(keyed: bool = False):
    """The visitor's facts; ``keyed``: with their profile's ``assignment_key`` (one more join, read
    only while a holdout or an experiment needs it)."""
    site, ident, inter, scores = Site.__table__, Identity.__table__, Interaction.__table__, ProfileScore.__table__
    source = site.outerjoin(
        ident, and_(ident.c.site_id == site.c.id, ident.c.kind == bindparam("kind"), ident.c.value == bindparam("value"))
    ).outerjoin(
        inter, and_(inter.c.site_id == ident.c.site_id, inter.c.profile_id == ident.c.profile_id)
    ).outerjoin(scores, scores.c.profile_id == ident.c.profile_id)
    head = [site.c.catalog_version, site.c.created_at, ident.c.profile_id, scores.c.cluster_name]
    if keyed:
        profile = Profile.__table__
        source = source.outerjoin(profile, profile.c.id == ident.c.profile_id)
        head.append(profile.c.assignment_key)
    return (
        select(*head, inter.c.product_id, inter.c.kind, inter.c.occurred_at, inter.c.quantity)
        .select_from(source)
        .where(site.c.id == bindparam("site_id"))
        .order_by(inter.c.occurred_at.desc(), inter.c.id.desc())
        .limit(bindparam("limit"))
    )


# one round trip per request: the catalogue's version (see CardCache), the visitor's profile, its
# cluster ("customers like you") and newest interactions
_VISITOR = DriverQuery(_visitor_statement())
# the same with the profile's assignment key, while the site has a holdout or the slot an experiment
_VISITOR_KEYED = DriverQuery(_visitor_statement(keyed=True))
_CARD_COLUMNS = (Product.external_id, Product.title, Product.url, Product.image, Product.price, Product.currency, Product.in_stock)
_CARDS: dict[int, DriverQuery] = {}  # by the number of ids asked for


@dataclass(frozen=True)
class VisitorFacts:
    """What one query tells about a visitor and their site: ``catalog`` is the tag of the site's
    product cards (``None`` if the site is gone), ``rows`` the newest interactions first as
    ``(product id, kind, occurred_at, quantity)`` in the driver's own types."""

    catalog: tuple | None
    profile_id: int | None
    segment: str | None
    rows: list[tuple]
    assignment_key: str | None = None  # the profile's (read with ``keyed=True`` only)


def visitor_history(site_id: int, visitor: str | None, limit: int, kind: str = VISITOR, keyed: bool = False) -> VisitorFacts:
    """The visitor's profile, cluster name and newest interactions (none for a visitor we have
    never seen, or no visitor), with the site's catalogue version, in one round trip.
    ``kind``: which identity ``visitor`` is (``email``, ``customer_id``: a server asking by person);
    ``keyed``: read the profile's ``assignment_key`` too."""
    query = _VISITOR_KEYED if keyed else _VISITOR
    rows = query.rows({"site_id": site_id, "kind": kind, "value": visitor or "", "limit": limit})
    if not rows:
        return VisitorFacts(None, None, None, [])
    first, n = rows[0], 5 if keyed else 4
    return VisitorFacts((first[0], str(first[1])), first[2], first[3], [r[n:] for r in rows if r[n] is not None],
                        first[4] if keyed else None)


def assignment_needed(site: Site, slot: str | None = None) -> bool:
    """Whether a list for ``slot`` depends on who the person is beyond their history: the site
    holds some people out, or an experiment runs on the slot (``None``: on any slot)."""
    if holdout_share(site) > 0:
        return True
    running = ((site.settings or {}).get("experiments") or {}).get("running") or {}
    return bool(running) if slot is None else bool(running.get(slot))


def assigned_key(facts: VisitorFacts, visitor: str | None, kind: str = VISITOR) -> str | None:
    """What the holdout and the arms are decided by: the person's profile's key, else (nobody
    known by this id yet) the key their profile will get (:func:`assignment_key`)."""
    if facts.assignment_key:
        return facts.assignment_key
    return assignment_key(kind, visitor) if visitor else None


def _history_of(rows: list[tuple], index: dict[str, int]) -> HistoryArrays:
    """A visitor's rows from :func:`visitor_history` (newest first, times in the driver's own type:
    ISO text on SQLite, naive UTC datetimes on PostgreSQL) as the model's arrays, oldest first;
    products the model does not know get index -1, which it ignores."""
    if not rows:
        return HistoryArrays(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    pids, kinds, whens, qty = zip(*reversed(rows), strict=True)
    seconds = np.array(whens, dtype="datetime64[us]").astype(np.int64) / 1e6
    return HistoryArrays(
        np.array([index.get(p, -1) for p in pids], dtype=np.int64), np.array(kinds, dtype=np.int64),
        seconds, np.array(qty, dtype=np.float64),
    )


class CardCache:
    """Product cards (what a list shows of a product) in this process's memory, per site, valid
    for one catalogue version.

    Every product write raises its site's ``catalog_version`` in the same transaction
    (:mod:`personalize.catalog`), and every recommendation reads the version in the query
    that reads the visitor's history. Cards are kept under the version that was read
    *before* them, so they are never older than their tag: when the version moves on, the
    site's cards are dropped and read again. A price or stock change made by any process
    therefore shows at the next request, and an out-of-stock product is never shown.
    The tag also holds the site's creation time, so a new site that reuses a deleted
    site's id (SQLite may) never sees the old cards.
    """

    def __init__(self, max_cards: int = 50_000):
        self.max_cards = max_cards
        self._sites: dict[int, tuple[tuple, dict[str, tuple]]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def cards(self, site_id: int, tag: tuple | None, product_ids: list[str]) -> dict[str, tuple]:
        """The cards of ``product_ids`` known to the site, keyed by id; read from the database
        for those not kept under ``tag`` (everything when ``tag`` is ``None``)."""
        entry = self._sites.get(site_id)
        if tag is not None and (entry is None or entry[0] != tag):
            with self._lock:
                entry = self._sites.get(site_id)
                # a request that read an older version than the one kept reads for itself
                if entry is None or (entry[0] != tag and not (entry[0][1] == tag[1] and entry[0][0] > tag[0])):
                    entry = self._sites[site_id] = (tag, {})
        kept = entry[1] if entry is not None and entry[0] == tag else None
        if kept is None:
            return _read_cards(site_id, product_ids)
        out, missing = {}, []
        for pid in product_ids:
            card = kept.get(pid, _ABSENT)
            if card is _ABSENT:
                missing.append(pid)
            elif card is not None:
                out[pid] = card
        self.hits += len(product_ids) - len(missing)
        if missing:
            self.misses += len(missing)
            found = _read_cards(site_id, missing)
            if sum(len(e[1]) for e in self._sites.values()) + len(missing) > self.max_cards:
                kept.clear()  # bounded: start this site afresh (the busiest products come back first)
            for pid in missing:
                kept[pid] = found.get(pid)  # None: no such product (asked for by a plugin, say)
            out.update(found)
        return out

    def clear(self) -> None:
        with self._lock:
            self._sites.clear()


_ABSENT = object()


def card_cache() -> CardCache:
    cache = current_app.extensions.get("personalize.cards")
    if cache is None:
        cache = current_app.extensions.setdefault("personalize.cards", CardCache())
    return cache


def cards_of(site_id: int, product_ids: list[str], catalog: tuple | None = None) -> dict[str, tuple]:
    """What a list shows of each product, keyed by id:
    ``(id, title, url, image, price, currency, in_stock)``; unknown ids are absent.
    With the ``catalog`` tag of :func:`visitor_history`, from this process's :class:`CardCache`."""
    if catalog is None:
        return _read_cards(site_id, product_ids)
    return card_cache().cards(site_id, catalog, product_ids)


def _read_cards(site_id: int, product_ids: list[str]) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for start in range(0, len(product_ids), 100):
        chunk = product_ids[start : start + 100]
        query = _CARDS.get(len(chunk))
        if query is None:
            names = [bindparam(f"p{i}") for i in range(len(chunk))]
            query = _CARDS.setdefault(len(chunk), DriverQuery(
                select(*_CARD_COLUMNS).where(Product.site_id == bindparam("site_id"), Product.external_id.in_(names))
            ))
        params: dict[str, Any] = {f"p{i}": pid for i, pid in enumerate(chunk)}
        params["site_id"] = site_id
        for row in query.rows(params):
            out[row[0]] = tuple(row)
    return out


def _item(card: tuple, reason: str) -> dict[str, Any]:
    return {"id": card[0], "title": card[1], "url": card[2], "image": card[3], "price": card[4], "currency": card[5], "reason": reason, **reason_fields(reason)}


class RankingCache:
    """Ranked lists computed moments ago, in this process's memory, bounded in size and age.

    An entry's key holds everything the ranking was computed from: the site, the
    served model's version, slot, limit and product, the site's business rules, the
    visitor's profile, cluster and every history row read for them. Each request
    reads those afresh from the database (one query), so a new event, another
    model, a changed rule or cluster is a different key, whichever process
    stored it; nothing has to be told to forget anything. What is cached is the
    order of products and their reasons, never the products themselves: each
    answer takes the cards it shows from :class:`CardCache` under the catalogue
    version read with the history, so a price or stock change shows at once and
    an out-of-stock product is never shown.
    """

    def __init__(self, seconds: float = 30.0, max_entries: int = 20_000):
        self.seconds = float(seconds)
        self.max_entries = max_entries
        self._entries: dict[tuple, tuple[float, str, list[tuple[str, str]]]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> tuple[str, list[tuple[str, str]]] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self.misses += 1
            return None
        self.hits += 1
        return entry[1], entry[2]

    def put(self, key: tuple, strategy: str, ranked: list[tuple[str, str]]) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            while len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))  # the oldest first (dicts keep insertion order)
            self._entries[key] = (time.monotonic() + self.seconds, strategy, ranked)

    def forget_profile(self, profile_id: int) -> None:
        """Drop the rankings of an erased profile now (they could no longer be reached anyway)."""
        with self._lock:
            for key in [k for k in self._entries if len(k) > 6 and k[6] == profile_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def ranking_cache() -> RankingCache:
    cache = current_app.extensions.get("personalize.rankings")
    if cache is None:
        seconds = current_app.config.get("RECOMMENDATION_CACHE_SECONDS")
        cache = current_app.extensions.setdefault("personalize.rankings", RankingCache(30.0 if seconds is None else float(seconds)))
    return cache


_BUILTIN_RANKING_PLUGINS = {"personalize.builtins.rules"}


def _only_builtin_rules() -> bool:
    """Whether the built-in rules are the only plugin that adds or re-ranks candidates."""
    hook = current_app.extensions["personalize.plugins"].pm.hook
    return all(
        impl.plugin_name in _BUILTIN_RANKING_PLUGINS
        for name in ("recommendation_candidates", "modify_recommendations")
        for impl in getattr(hook, name).get_hookimpls()
    )


def _rankings_reproducible(site_settings: dict, builtin_only: bool) -> bool:
    """Whether a ranking depends only on what the cache key holds: no plugin but the built-in
    rules takes part (a plugin may look at anything), and no rule depends on segment membership."""
    return builtin_only and not (site_settings.get("rules") or {}).get("segments")


def recommend_for(site: Site, visitor: str | None, slot: str = "home", limit: int = 8, product: str | None = None,
                  cart: list[str] | None = None, strategy: str | None = None, kind: str = VISITOR) -> RecommendationList:
    """The visitor's list for a page slot, best first, each item with a human reason.

    Reads the visitor's newest interactions live, so their latest event already
    counts; drops out-of-stock and unknown products; lets plugins add and re-rank.
    ``site`` needs only ``id`` and ``settings``. The page strategy (see
    :func:`page_strategy`) comes from ``strategy`` or the slot's name: a product page's
    similar items or bought-together, a cart's complements (``cart``: its product ids;
    ``None``: what the visitor added since their last order), recently viewed.
    """
    page = page_strategy(slot, strategy)
    history_length = current_app.config.get("HISTORY_LENGTH", 200)
    facts, person = None, visitor
    if visitor and assignment_needed(site, slot):
        # the holdout and the arms follow the person: their profile's key, whichever id asked
        facts = visitor_history(site.id, visitor, history_length, kind, keyed=True)
        person = assigned_key(facts, visitor, kind)
    if in_holdout(site, person):  # test and learn: this person sees best sellers (personalize.insights)
        if page == CART_PAGE and cart is None:  # never what is in the cart, for them too
            cart = cart_of((facts or visitor_history(site.id, visitor, history_length, kind)).rows)
        in_cart = set(cart or ())
        shown = holdout_items(site, limit + len(in_cart), product)
        return RecommendationList(new_rec_id(), slot, HOLDOUT, [i for i in shown if i["id"] not in in_cart][:limit])
    settings = site.settings or {}
    # an experiment's arm, or a rolled-out winner, may change how this slot's list is computed (personalize.experiments)
    arm = choose(settings, site.id, person, slot)
    override = arm.override if arm is not None else {}
    if override.get("strategy") in PAGE_STRATEGIES:  # an arm may try a page strategy against the slot's own
        page = override["strategy"]
    elif override.get("strategy") in ("personal", "popular"):
        page = None
    loaded = model_cache().get(site.id, override.get("model_version"))
    if facts is None:
        facts = visitor_history(site.id, visitor, history_length, kind)
    profile_id, segment, rows = facts.profile_id, facts.segment, facts.rows
    if override.get("strategy") == "popular":
        rows = []  # ranked as for a newcomer: best sellers
    key = None
    builtin_only = _only_builtin_rules()
    if loaded is not None and _rankings_reproducible(settings, builtin_only):
        rules = settings.get("rules")
        key = (
            site.id, loaded.version, slot, limit, product, json.dumps(rules, sort_keys=True) if rules else "",
            profile_id, segment, len(rows), rows[0] if rows else None, hash(tuple(rows)), page, tuple(cart or ()),
            facts.catalog if rules and rules.get("attribute_rules") else None,  # rules by attribute read the catalogue
            arm.key if arm else "",
        )
        cached = ranking_cache().get(key)
        if cached is not None:
            out = _serve_ranking(site.id, facts.catalog, slot, limit, *cached)
            if out is not None:
                if arm is not None:
                    out.rec_id = arm.tag(out.rec_id)
                return out
    # the built-in rules are the only plugin and the site has none: asking them would change nothing
    hooks_apply = bool(settings.get("rules")) or bool(override.get("rules")) or not builtin_only
    with arm_rules(override.get("rules")):
        if page is not None:
            strategy, ranked, cards = _rank_page(site.id, facts.catalog, loaded, profile_id, rows, slot, limit, product, cart, page, hooks_apply)
        else:
            strategy, ranked, cards = _rank(site.id, facts.catalog, loaded, profile_id, segment, rows, slot, limit, product, hooks_apply)
    if key is not None:
        ranking_cache().put(key, strategy, ranked)
    out = RecommendationList(arm.tag(new_rec_id()) if arm is not None else new_rec_id(), slot, strategy)
    for pid, reason in ranked[:limit]:
        out.items.append(_item(cards[pid], reason))
    return out


def _serve_ranking(site_id: int, catalog: tuple | None, slot: str, limit: int, strategy: str, ranked: list[tuple[str, str]]) -> RecommendationList | None:
    """A cached ranking with today's cards; ``None`` when too many of its products left the shelf."""
    out = RecommendationList(new_rec_id(), slot, strategy)
    start, step = 0, limit + 4
    while len(out.items) < limit and start < len(ranked):
        chunk = ranked[start : start + step]
        cards = cards_of(site_id, [pid for pid, _ in chunk], catalog)
        for pid, reason in chunk:
            card = cards.get(pid)
            if card is not None and card[6]:
                out.items.append(_item(card, reason))
                if len(out.items) == limit:
                    break
        start += step
    if len(out.items) < min(limit, len(ranked)):
        return None  # fewer left than asked for: rank again, others may take their places
    return out


def _rank_page(site_id: int, catalog: tuple | None, loaded: _Loaded | None, profile_id: int | None, rows: list[tuple], slot: str,
               limit: int, product: str | None, cart: list[str] | None, page: str, hooks_apply: bool) -> tuple[str, list[tuple[str, str]], dict[str, tuple]]:
    """A page strategy's list (see :mod:`personalize.recommend.strategies`), then plugins and stock
    as for :func:`_rank`: ``(strategy, [(product id, reason)], cards)``."""
    want = limit * 3 + 5
    cart_ids = list(cart) if cart is not None else (cart_of(rows) if page == CART_PAGE else [])
    never = set(cart_ids) | ({product} if product else set())
    picks: list[tuple[str, float, str, str]] = []
    if page == RECENT_PAGE:
        seen: set[str] = set()
        for pid, kind, _, _ in rows:  # newest first
            if kind == VIEW and pid not in seen and pid not in never:
                seen.add(pid)
                picks.append((pid, float(want - len(picks)), "You viewed this recently", "recent"))
    elif loaded is not None:
        pages, index, ids = loaded.model.pages, loaded.index, loaded.model.items.ids
        exclude = [index[p] for p in never if p in index]
        if page == CART_PAGE:
            found = pages.complements([index[p] for p in cart_ids if p in index], want, exclude)
        elif product in index:
            found = (pages.together if page == TOGETHER_PAGE else pages.similar)(index[product], want, exclude)
        else:
            found = [s for s in loaded.model.popular(want) if ids[s.item] not in never]
        picks = [(ids[f.item], f.score, f.reason, f.source) for f in found]
    else:
        picks = [(c.product_id, c.score, c.reason, c.source) for c in _popular_from_database(site_id, want)]
    candidates = [Recommendation(pid, score, reason, source) for pid, score, reason, source in picks[:want]]
    seen_history = [(r[0], _KIND_WORDS.get(r[1], "view")) for r in rows] if hooks_apply else []  # what rules by attribute look at
    if hooks_apply:
        g.personalize_catalog = (site_id, catalog)
        for extra in hooks().recommendation_candidates(site_id=site_id, profile_id=profile_id, slot=slot, product_id=product, limit=limit,
                                                       history=seen_history):
            candidates.extend(extra or [])
    best: dict[str, Recommendation] = {}
    for cand in candidates:
        if cand.product_id not in never and (cand.product_id not in best or cand.score > best[cand.product_id].score):
            best[cand.product_id] = cand
    cards = cards_of(site_id, list(best), catalog)
    items = sorted((c for c in best.values() if c.product_id in cards and cards[c.product_id][6]), key=lambda c: -c.score)
    if hooks_apply:
        hooks().modify_recommendations(site_id=site_id, profile_id=profile_id, slot=slot, items=items, product_id=product,
                                       history=seen_history)
        items.sort(key=lambda c: -c.score)
    ranked = [(c.product_id, c.reason) for c in items
              if c.product_id not in never and (card := cards.get(c.product_id)) is not None and card[6]]
    return page, ranked, cards


SIMILAR_PAGE, TOGETHER_PAGE, CART_PAGE, RECENT_PAGE = "similar", "together", "cart", "recent"
PAGE_STRATEGIES = (SIMILAR_PAGE, TOGETHER_PAGE, CART_PAGE, RECENT_PAGE)
# a slot's name chooses its strategy unless the request names one
_SLOT_TYPES = {"product": SIMILAR_PAGE, "similar": SIMILAR_PAGE, "together": TOGETHER_PAGE, "cart": CART_PAGE,
               "recent": RECENT_PAGE, "recently-viewed": RECENT_PAGE}


def page_strategy(slot: str, strategy: str | None = None) -> str | None:
    """The page strategy a request asks for: ``strategy`` (one of :data:`PAGE_STRATEGIES`,
    ``"personal"`` for the visitor's own list) or else the slot's type, the part of its name
    before any ``:`` (``product``, ``product:below``, ``cart``, ``recent``…); ``None``: the
    visitor's own list, as a home page shows."""
    if strategy:
        return None if strategy == "personal" else strategy
    return _SLOT_TYPES.get(slot.split(":", 1)[0])


def cart_of(rows: list[tuple]) -> list[str]:
    """What the visitor added to their cart since their last order (``rows`` newest first)."""
    out: list[str] = []
    for pid, kind, _, _ in rows:
        if kind == PURCHASE:
            break
        if kind == CART and pid not in out:
            out.append(pid)
    return out


def rank_for(site: Site, visitor: str | None, product_ids: list[str], limit: int = 8) -> RecommendationList:
    """``product_ids`` re-ordered for the visitor (a listing or search page): the model's scores
    for them blended with their given place (:func:`personalize.recommend.strategies.rerank`).
    The list's ``products`` are every id in the new order (unknown ones too); its ``items`` the
    cards of the first ``limit`` known, in-stock ones. Strategy ``rank``, or ``as-given`` (the
    order unchanged) when there is no model or no history, or ``holdout`` (the order unchanged too)
    for a person in the site's holdout."""
    keyed = bool(visitor) and holdout_share(site) > 0
    facts = visitor_history(site.id, visitor, current_app.config.get("HISTORY_LENGTH", 200), keyed=keyed)
    if keyed and in_holdout(site, assigned_key(facts, visitor)):
        strategy, ordered = HOLDOUT, list(product_ids)
    else:
        strategy, ordered = _ranked_ids(site, facts, product_ids)
    out = RecommendationList(new_rec_id(), "listing", strategy)
    out.products = ordered
    cards = cards_of(site.id, ordered, facts.catalog)
    reason = "Picked for you" if strategy == "rank" else ""
    out.items = [_item(cards[p], reason) for p in ordered if p in cards and cards[p][6]][:limit]
    return out


def _ranked_ids(site: Site, facts: VisitorFacts, product_ids: list[str]) -> tuple[str, list[str]]:
    loaded = model_cache().get(site.id)
    if loaded is None or not product_ids:
        return "as-given", list(product_ids)
    history = _history_of(facts.rows, loaded.index)
    if not bool((history.items >= 0).any()):
        return "as-given", list(product_ids)
    listed = [loaded.index.get(p, -1) for p in product_ids]
    known = sorted({i for i in listed if i >= 0})
    keep = set(known)
    others = [i for i in range(len(loaded.model.items)) if i not in keep]
    scored = loaded.model.recommend(history, k=len(known), now=loaded.model.clock(), exclude=others, segment=facts.segment)
    by_item = {s.item: s.score for s in scored}
    order = rerank(np.array([by_item.get(i, 0.0) if i >= 0 else 0.0 for i in listed]))
    return "rank", [product_ids[o] for o in order.tolist()]


def _rank(site_id: int, catalog: tuple | None, loaded: _Loaded | None, profile_id: int | None, segment: str | None, rows: list[tuple],
          slot: str, limit: int, product: str | None, hooks_apply: bool = True) -> tuple[str, list[tuple[str, str]], dict[str, tuple]]:
    """Score, add plugins' candidates, keep known in-stock products, let plugins re-rank:
    ``(strategy, [(product id, reason)] best first, the cards read)``."""
    want = limit * 3 + 5
    candidates: list[Recommendation] = []
    strategy = "popular"
    exclude_ids = {product} if product else set()
    if loaded is not None:
        history = _history_of(rows, loaded.index)
        exclude = set()
        if product and product in loaded.index:
            idx = loaded.index[product]
            exclude.add(idx)
            # the product on screen counts as the newest view
            history = HistoryArrays(*(np.append(a, v) for a, v in zip(history, (idx, VIEW, loaded.model.clock(), 1.0), strict=True)))
        known = bool((history.items >= 0).any())
        scored = loaded.model.recommend(history, k=want, now=loaded.model.clock(), exclude=exclude, segment=segment) if known else loaded.model.popular(want, exclude=exclude, segment=segment)
        if known:
            strategy = "personal"
        ids = loaded.model.items.ids
        candidates = [Recommendation(ids[s.item], float(s.score), s.reason, s.source) for s in scored]
    else:
        candidates = _popular_from_database(site_id, want)
    if hooks_apply:
        seen = [(r[0], _KIND_WORDS.get(r[1], "view")) for r in rows]  # what rules by attribute look at
        g.personalize_catalog = (site_id, catalog)  # and the catalogue's version, read with the history
        for extra in hooks().recommendation_candidates(site_id=site_id, profile_id=profile_id, slot=slot, product_id=product, limit=limit, history=seen):
            candidates.extend(extra or [])
    best: dict[str, Recommendation] = {}
    for cand in candidates:
        if cand.product_id in exclude_ids:
            continue
        if cand.product_id not in best or cand.score > best[cand.product_id].score:
            best[cand.product_id] = cand
    cards = cards_of(site_id, list(best), catalog)
    items = [c for c in best.values() if c.product_id in cards and cards[c.product_id][6]]
    items.sort(key=lambda c: -c.score)
    if hooks_apply:
        hooks().modify_recommendations(site_id=site_id, profile_id=profile_id, slot=slot, items=items, product_id=product, history=seen)
        items.sort(key=lambda c: -c.score)
    ranked = []
    for cand in items:
        card = cards.get(cand.product_id)
        if card is not None and card[6]:  # a plugin may have added one of its own
            ranked.append((cand.product_id, cand.reason))
    return strategy, ranked, cards


_KIND_WORDS = {1: "view", 2: "cart", 3: "purchase"}  # recommend.data's VIEW, CART, PURCHASE, as hooks see them


def _popular_from_database(site_id: int, k: int) -> list[Recommendation]:
    """Best sellers straight from the interactions, for a site that has no model yet."""
    rows = db.session.execute(
        select(Interaction.product_id, func.sum(Interaction.kind).label("w"))
        .where(Interaction.site_id == site_id).group_by(Interaction.product_id)
        .order_by(func.sum(Interaction.kind).desc()).limit(k)
    ).all()
    if not rows:
        rows = db.session.execute(select(Product.external_id, func.count()).where(Product.site_id == site_id, Product.in_stock.is_(True)).group_by(Product.external_id).limit(k)).all()
    return [Recommendation(pid, float(w), "Popular right now", "popular") for pid, w in rows]


def holdout_items(site: Site, limit: int, product: str | None = None) -> list[dict[str, Any]]:
    """Best sellers in stock, the same for everyone: what the holdout group is shown.

    Uses the served model's popularity when there is one, else counts interactions.
    Products the shop excluded in its rules never show, as for everyone else.
    """
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
