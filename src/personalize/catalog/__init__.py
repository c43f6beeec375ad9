"""The product catalogue of each site: upsert, look-up, availability."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm import Session

from ..db import db
from ..models import Product, Site, utcnow
from ..records import ProductRecord

CHUNK = 500
_FIELDS = ("title", "url", "image", "price", "currency", "category", "description", "in_stock", "attributes")


@dataclass
class UpsertResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


def upsert_products(site_id: int, products: Iterable[ProductRecord], commit: bool = True,
                    columns: Collection[str] | None = None) -> UpsertResult:
    """Insert new products and update changed ones, keyed by the shop's product id.

    The last record wins when the same id appears twice in ``products``. With ``columns``
    (the names a file has: product fields such as ``url`` and attribute names), an existing
    product changes only in those: the other fields and attributes stay as they are, so a
    file of ``id,url,image`` adds links and images and keeps titles. New products take every
    field of their record.
    """
    result = UpsertResult()
    batch: dict[str, ProductRecord] = {}
    for record in products:
        batch[record.id] = record
        if len(batch) >= CHUNK:
            _upsert_chunk(site_id, batch, result, columns)
            batch = {}
    if batch:
        _upsert_chunk(site_id, batch, result, columns)
    if commit:
        db.session.commit()
    return result


def _upsert_chunk(site_id: int, batch: dict[str, ProductRecord], result: UpsertResult, columns: Collection[str] | None = None) -> None:
    existing = {
        p.external_id: p
        for p in db.session.scalars(
            select(Product).where(Product.site_id == site_id, Product.external_id.in_(list(batch)))
        )
    }
    now = utcnow()
    for pid, rec in batch.items():
        values = {f: getattr(rec, f) for f in _FIELDS}
        values["attributes"] = dict(rec.attributes)
        row = existing.get(pid)
        if row is not None and columns is not None:
            values = _only(values, columns, row)
        if row is None:
            db.session.add(Product(site_id=site_id, external_id=pid, updated_at=now, **values))
            result.inserted += 1
        elif any(getattr(row, f) != v for f, v in values.items()):
            for f, v in values.items():
                setattr(row, f, v)
            row.updated_at = now
            result.updated += 1
        else:
            result.unchanged += 1
    db.session.flush()


def _only(values: dict, columns: Collection[str], row: Product) -> dict:
    """``values`` reduced to the fields in ``columns``; attributes merged, by name, into the row's."""
    out = {f: v for f, v in values.items() if f in columns and f != "attributes"}
    named = [c for c in columns if c not in _FIELDS and c != "id"]
    if named:
        merged = dict(row.attributes or {})
        for name in named:
            if name in values["attributes"]:
                merged[name] = values["attributes"][name]
            else:
                merged.pop(name, None)  # an empty cell in an attribute's column removes it
        out["attributes"] = merged
    return out


@event.listens_for(Session, "before_flush")
def _raise_catalog_version(session: Session, _context, _instances) -> None:
    """Every flush that inserts, changes or deletes products raises their site's ``catalog_version``.

    Web processes keep product cards in memory tagged with the version they were read at
    and compare it on every recommendation (:class:`personalize.recommend.service.CardCache`),
    so a price or stock change shows at once. The raise is part of the writer's
    transaction, so a process sees the new version exactly when it can see the new cards.
    It is written before the products: every catalogue writer locks the site's row before
    any product row, so two concurrent writes to one catalogue queue instead of deadlocking.
    Writes to ``products`` must go through the ORM (as :func:`upsert_products` does) to be seen.
    """
    sites = {o.site_id for o in session.new if isinstance(o, Product)}
    sites.update(o.site_id for o in session.deleted if isinstance(o, Product))
    sites.update(o.site_id for o in session.dirty if isinstance(o, Product) and session.is_modified(o))
    sites.discard(None)  # a product of a site inserted in this same flush: it starts at version 0
    if not sites:
        return
    connection = session.connection()
    for site_id in sorted(sites):
        connection.execute(update(Site.__table__).where(Site.__table__.c.id == site_id).values(catalog_version=Site.__table__.c.catalog_version + 1))


def catalog_rows(site_id: int) -> list[tuple]:
    """Every product of the site as ``(id, title, category, price, attributes, in_stock)``, in
    insertion order: what rules by attribute are compiled against (once per catalogue version)."""
    return [tuple(row) for row in db.session.execute(
        select(Product.external_id, Product.title, Product.category, Product.price, Product.attributes, Product.in_stock)
        .where(Product.site_id == site_id).order_by(Product.id)
    )]


def delete_products(site_id: int, external_ids: Sequence[str]) -> int:
    """Delete the site's products with these ids (unknown ids are ignored; no commit); how many went.

    The catalogue version is raised first, as every catalogue writer does (see
    :func:`_raise_catalog_version`), and the rows go in one statement, so two processes
    deleting the same product at once (a webhook delivered twice) do not trip over each other.
    """
    ids = list(dict.fromkeys(external_ids))
    if not ids:
        return 0
    table = Product.__table__
    exists = select(table.c.id).where(table.c.site_id == site_id, table.c.external_id.in_(ids)).limit(1)
    if db.session.execute(exists).first() is None:
        return 0
    connection = db.session.connection()
    connection.execute(update(Site.__table__).where(Site.__table__.c.id == site_id).values(catalog_version=Site.__table__.c.catalog_version + 1))
    gone = connection.execute(table.delete().where(table.c.site_id == site_id, table.c.external_id.in_(ids))).rowcount
    for obj in [o for o in db.session.identity_map.values() if isinstance(o, Product) and o.site_id == site_id and o.external_id in ids]:
        db.session.expunge(obj)  # the session must not write a row that is gone
    return gone


def get_product(site_id: int, external_id: str) -> Product | None:
    return db.session.scalar(select(Product).where(Product.site_id == site_id, Product.external_id == external_id))


# Built once: building a statement with a fresh IN list costs more than running it (hot path).
_BY_IDS = select(Product).where(Product.site_id == bindparam("site_id"), Product.external_id.in_(bindparam("ids", expanding=True)))
_CARD_COLUMNS = (Product.external_id, Product.title, Product.url, Product.image, Product.price, Product.currency, Product.in_stock)
_CARDS_BY_IDS = select(*_CARD_COLUMNS).where(Product.site_id == bindparam("site_id"), Product.external_id.in_(bindparam("ids", expanding=True)))


def products_by_ids(site_id: int, external_ids: Sequence[str]) -> dict[str, Product]:
    """The site's products among ``external_ids``, keyed by id (unknown ids are absent)."""
    if not external_ids:
        return {}
    out: dict[str, Product] = {}
    ids = list(dict.fromkeys(external_ids))
    for start in range(0, len(ids), CHUNK):
        for p in db.session.scalars(_BY_IDS, {"site_id": site_id, "ids": ids[start : start + CHUNK]}):
            out[p.external_id] = p
    return out


def product_cards(site_id: int, external_ids: Sequence[str]):
    """What a recommendation shows of each product (id, title, url, image, price, currency,
    in_stock), as read-only rows keyed by id: a third of the cost of :func:`products_by_ids`."""
    out = {}
    ids = list(dict.fromkeys(external_ids))
    for start in range(0, len(ids), CHUNK):
        for row in db.session.execute(_CARDS_BY_IDS, {"site_id": site_id, "ids": ids[start : start + CHUNK]}):
            out[row.external_id] = row
    return out


def list_products(site_id: int, category: str | None = None, limit: int = 100, offset: int = 0, in_stock: bool | None = None) -> list[Product]:
    q = select(Product).where(Product.site_id == site_id)
    if category is not None:
        q = q.where(Product.category == category)
    if in_stock is not None:
        q = q.where(Product.in_stock.is_(in_stock))
    return list(db.session.scalars(q.order_by(Product.id).limit(limit).offset(offset)))


def count_products(site_id: int) -> int:
    from sqlalchemy import func

    return db.session.scalar(select(func.count()).select_from(Product).where(Product.site_id == site_id)) or 0


def categories(site_id: int) -> list[str]:
    rows = db.session.scalars(select(Product.category).where(Product.site_id == site_id).distinct())
    return sorted(c for c in rows if c)


def product_record(p: Product) -> ProductRecord:
    return ProductRecord(
        id=p.external_id, title=p.title, url=p.url, image=p.image, price=p.price, currency=p.currency,
        category=p.category, description=p.description, in_stock=p.in_stock, attributes=dict(p.attributes or {}),
    )
