"""The recommendation service: stored data → arrays → model file, and model → a visitor's list.

This is the only module of :mod:`personalize.recommend` that touches the database;
the models themselves work on the arrays of :mod:`personalize.recommend.data`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from calendar import timegm
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flask import current_app
from sqlalchemy import func, select

from ..cache import shared_cache
from ..catalog import product_cards
from ..db import db
from ..insights.holdout import HOLDOUT, holdout_items, in_holdout
from ..models import Interaction, ModelVersion, Product, Site
from ..plugins import hooks
from ..profiles import profile_for_visitor, recent_interactions
from ..records import Recommendation
from ..segments.store import cluster_name_of, cluster_names_of
from .data import VIEW, HistoryEntry, InteractionLog, ItemTable
from .engine import Recommender

log = logging.getLogger(__name__)


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

    Running servers pick it up within ``MODEL_CHECK_SECONDS`` without a restart.
    """
    say = progress or (lambda stage: None)
    say("loading interactions")
    started = time.perf_counter()
    log_, items, users = load_site_data(site_id)
    loaded = time.perf_counter()
    say(f"fitting on {len(log_):,} interactions, {log_.n_users:,} people, {len(items):,} products")
    clusters = cluster_names_of(site_id)  # "popular with customers like you": per cluster of personalize scores
    user_segments = [clusters.get(int(u)) if u.isdigit() else None for u in users] if clusters else None
    model = Recommender.fit(log_, items, now=time.time(), user_segments=user_segments)
    fitted = time.perf_counter()
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
    }
    hooks().model_trained(site_id=site_id, summary=summary)
    return summary


def _prune_old_models(site_id: int, keep: int, retain: int = 3) -> None:
    """Keep the newest few model files (a server may still be loading the previous one)."""
    old = db.session.scalars(
        select(ModelVersion).where(ModelVersion.site_id == site_id, ModelVersion.id != keep).order_by(ModelVersion.id.desc())
    ).all()
    for version in old[retain - 1 :]:
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
        self._lock = threading.Lock()

    def get(self, site_id: int) -> _Loaded | None:
        now = time.monotonic()
        current = self._loaded.get(site_id)
        if current is not None and now - current.checked < self.check_seconds:
            return current
        version = latest_version(site_id)
        if version is None:
            return None
        if current is not None and current.version == version.id:
            current.checked = now
            return current
        with self._lock:
            current = self._loaded.get(site_id)
            if current is not None and current.version == version.id:
                return current
            try:
                model = Recommender.load(version.path)
            except (OSError, ValueError) as exc:
                log.error("model %s for site %s cannot be loaded: %s", version.path, site_id, exc)
                return current
            loaded = _Loaded(version.id, model, model.items.index(), now)
            self._loaded[site_id] = loaded
            return loaded

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

    def as_json(self) -> dict[str, Any]:
        return {"rec_id": self.rec_id, "slot": self.slot, "strategy": self.strategy, "items": self.items}


def new_rec_id() -> str:
    return "r_" + secrets.token_hex(8)


def recommend_for(site: Site, visitor: str | None, slot: str = "home", limit: int = 8, product: str | None = None) -> RecommendationList:
    """The visitor's list for a page slot, best first, each item with a human reason.

    Reads the visitor's newest interactions live, so their latest event already
    counts; drops out-of-stock and unknown products; lets plugins add and re-rank.
    """
    if in_holdout(site, visitor):  # test and learn: this visitor sees best sellers (personalize.insights)
        return RecommendationList(new_rec_id(), slot, HOLDOUT, holdout_items(site, limit, product))
    loaded = model_cache().get(site.id)
    # the same visitor moments ago, with no event and no new model since (personalize.cache)
    variant = f"{slot}|{limit}|{product or ''}|{loaded.version if loaded else 0}"
    cached = shared_cache().get_list(site.id, visitor or "", variant)
    if cached is not None:
        return RecommendationList(new_rec_id(), slot, cached["strategy"], cached["items"])
    profile_id = profile_for_visitor(site.id, visitor) if visitor else None
    want = limit * 3 + 5
    candidates: list[Recommendation] = []
    strategy = "popular"
    exclude_ids = {product} if product else set()
    if loaded is not None:
        history: list[HistoryEntry] = []
        if profile_id is not None:
            for pid, kind, ts, qty in recent_interactions(site.id, profile_id, current_app.config.get("HISTORY_LENGTH", 200)):
                idx = loaded.index.get(pid)
                if idx is not None:
                    history.append(HistoryEntry(idx, kind, ts, qty))
        exclude = set()
        if product and product in loaded.index:
            idx = loaded.index[product]
            exclude.add(idx)
            history.insert(0, HistoryEntry(idx, VIEW, time.time(), 1.0))
        segment = cluster_name_of(profile_id) if profile_id is not None else None
        scored = loaded.model.recommend(history, k=want, now=time.time(), exclude=exclude, segment=segment) if history else loaded.model.popular(want, exclude=exclude, segment=segment)
        if history:
            strategy = "personal"
        ids = loaded.model.items.ids
        candidates = [Recommendation(ids[s.item], float(s.score), s.reason, s.source) for s in scored]
    else:
        candidates = _popular_from_database(site.id, want)
    for extra in hooks().recommendation_candidates(site_id=site.id, profile_id=profile_id, slot=slot, product_id=product, limit=limit):
        candidates.extend(extra or [])
    best: dict[str, Recommendation] = {}
    for cand in candidates:
        if cand.product_id in exclude_ids:
            continue
        if cand.product_id not in best or cand.score > best[cand.product_id].score:
            best[cand.product_id] = cand
    products = product_cards(site.id, list(best))
    items = [c for c in best.values() if c.product_id in products and products[c.product_id].in_stock]
    items.sort(key=lambda c: -c.score)
    hooks().modify_recommendations(site_id=site.id, profile_id=profile_id, slot=slot, items=items)
    items.sort(key=lambda c: -c.score)
    out = RecommendationList(new_rec_id(), slot, strategy)
    for cand in items[:limit]:
        p = products.get(cand.product_id)
        if p is None or not p.in_stock:
            continue
        out.items.append({
            "id": p.external_id, "title": p.title, "url": p.url, "image": p.image, "price": p.price,
            "currency": p.currency, "reason": cand.reason,
        })
    shared_cache().put_list(site.id, visitor or "", variant, {"strategy": out.strategy, "items": out.items})
    return out


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
