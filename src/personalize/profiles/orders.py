"""Loading an order history (e.g. a shop's export) as customers, products and orders."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..catalog import products_by_ids, upsert_products
from ..db import db, insert_ignoring_conflicts, refresh_statistics
from ..kinds import PURCHASE
from ..models import Identity, Interaction, Order, Product, Profile
from ..records import OrderRecord, ProductRecord
from .identity import CUSTOMER, profiles_for

CHUNK = 2000


@dataclass
class OrderImportResult:
    orders: int = 0
    duplicates: int = 0
    lines: int = 0
    customers: int = 0
    new_products: int = 0


def import_orders(site_id: int, orders: Iterable[OrderRecord], progress: Callable[[int], None] | None = None,
                  result: OrderImportResult | None = None) -> OrderImportResult:
    """Store orders idempotently (by order id); unknown products are created from the order lines.

    Customers are matched or created by ``customer_id`` (guests stay without a
    profile). Commits every chunk, so a long import keeps what it has done. When reading
    ``orders`` fails (a bad line in a file), every order read before it is stored first and
    the error is raised again; pass ``result`` to learn how far it got. Running the same
    import again stores only the orders that are not there yet.
    """
    result = result if result is not None else OrderImportResult()
    customers: set[str] = set()
    chunk: list[OrderRecord] = []
    source = iter(orders)
    while True:
        try:
            order = next(source)
        except StopIteration:
            break
        except Exception:
            if chunk:  # the orders read before the error are complete: keep them
                _import_chunk(site_id, chunk, result, customers)
            result.customers = len(customers)
            raise
        chunk.append(order)
        if len(chunk) >= CHUNK:
            _import_chunk(site_id, chunk, result, customers)
            if progress:
                progress(len(chunk))
            chunk = []
    if chunk:
        _import_chunk(site_id, chunk, result, customers)
        if progress:
            progress(len(chunk))
    result.customers = len(customers)
    if result.orders:
        refresh_statistics(Order, Interaction, Product, Profile, Identity)
    return result


def _import_chunk(site_id: int, chunk: list[OrderRecord], result: OrderImportResult, customers: set[str]) -> None:
    try:
        # products first: unknown ids get a product from the line's title and last price
        seen: dict[str, ProductRecord] = {}
        for order in chunk:
            for line in order.lines:
                seen[line.product_id] = ProductRecord(id=line.product_id, title=line.title or line.product_id, price=line.price, currency=order.currency)
        known = products_by_ids(site_id, list(seen))
        new_products = [rec for pid, rec in seen.items() if pid not in known]
        if new_products:
            upsert_products(site_id, new_products, commit=False)
            result.new_products += len(new_products)

        ids = [o.customer_id for o in chunk if o.customer_id]
        profile_of = profiles_for(site_id, CUSTOMER, ids, attrs={c: {"customer_id": c} for c in ids})
        customers.update(ids)
        rows = [
            {
                "site_id": site_id, "external_id": o.id, "profile_id": profile_of.get(o.customer_id) if o.customer_id else None,
                "total": round(o.total, 2), "currency": o.currency, "country": o.country, "source": "import",
                "occurred_at": o.occurred_at,
            }
            for o in chunk
        ]
        order_pk = dict((ext, pk) for pk, ext in insert_ignoring_conflicts(Order, rows, ["site_id", "external_id"], returning=(Order.id, Order.external_id)))
        interactions = []
        for o in chunk:
            pk = order_pk.get(o.id)
            if pk is None:
                result.duplicates += 1
                continue
            result.orders += 1
            pid = profile_of.get(o.customer_id) if o.customer_id else None
            for line in o.lines:
                interactions.append({
                    "site_id": site_id, "profile_id": pid, "order_id": pk, "product_id": line.product_id,
                    "kind": PURCHASE, "quantity": line.quantity, "price": line.price, "occurred_at": o.occurred_at,
                })
        if interactions:
            db.session.execute(Interaction.__table__.insert(), interactions)
        result.lines += len(interactions)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def orders_of(site_id: int, profile_id: int, limit: int = 20) -> list[dict]:
    """The profile's newest orders (at most ``limit``), each with its lines: what they bought, when, for how much."""
    from sqlalchemy import select

    orders = db.session.execute(
        select(Order.id, Order.external_id, Order.occurred_at, Order.total, Order.currency, Order.source, Order.rec_id)
        .where(Order.site_id == site_id, Order.profile_id == profile_id)
        .order_by(Order.occurred_at.desc(), Order.id.desc()).limit(limit)
    ).all()
    lines: dict[int, list[dict]] = {}
    if orders:
        rows = db.session.execute(
            select(Interaction.order_id, Interaction.product_id, Interaction.quantity, Interaction.price)
            .where(Interaction.site_id == site_id, Interaction.order_id.in_([o.id for o in orders]))
            .order_by(Interaction.id)
        )
        for order_id, product_id, quantity, price in rows:
            lines.setdefault(order_id, []).append({"product_id": product_id, "quantity": quantity, "price": price})
    return [
        {"id": o.external_id, "at": o.occurred_at, "total": o.total, "currency": o.currency, "source": o.source,
         "rec_id": o.rec_id, "lines": lines.get(o.id, [])}
        for o in orders
    ]
