"""Product cards kept in each web process, and the catalogue version that keeps them true.

A recommendation reads the site's ``catalog_version`` in the same query as the visitor's
history and shows cards kept in memory under that version. These tests pin down the
contract that makes that safe: every kind of product write raises the version (and a
write that changes nothing does not), a process that read an older version never
replaces newer cards, a new site that takes a deleted site's id never sees its cards,
and two catalogue writes to one site at once both land.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, select

from personalize.catalog import get_product, upsert_products
from personalize.db import db
from personalize.models import Product, Site
from personalize.recommend.service import CardCache, card_cache
from personalize.records import ProductRecord
from personalize.sites import create_site

from .test_rankings import ids, recs


def version(site_id: int) -> int:
    db.session.expire_all()
    return db.session.scalar(select(Site.catalog_version).where(Site.id == site_id))


def test_every_product_write_raises_the_version_and_no_op_writes_do_not(ctx, site):
    start = version(site.id)
    record = ProductRecord("mug", "Mug", "/p/mug", "", 8.0, "EUR", "tea")
    upsert_products(site.id, [record])  # insert
    assert version(site.id) == start + 1
    upsert_products(site.id, [record])  # the same values again
    assert version(site.id) == start + 1, "an upsert that changes nothing keeps the cards"
    upsert_products(site.id, [ProductRecord("mug", "Mug", "/p/mug", "", 9.5, "EUR", "tea")])  # the price
    assert version(site.id) == start + 2
    get_product(site.id, "mug").in_stock = False  # straight through the ORM, as admin code might
    db.session.commit()
    assert version(site.id) == start + 3
    db.session.delete(get_product(site.id, "mug"))
    db.session.commit()
    assert version(site.id) == start + 4
    other, _secret = create_site("Other shop")
    upsert_products(other.id, [record])
    assert version(site.id) == start + 4, "another site's catalogue is not this one's"


def test_cards_are_read_once_per_version_and_a_change_shows_at_once(app, client, trained):
    view = {"key": trained.public_key, "visitor": "card-v", "limit": 3}
    first = client.get("/api/v1/recommendations", query_string=view).json
    cards = card_cache()
    hits, misses = cards.hits, cards.misses
    again = client.get("/api/v1/recommendations", query_string=view).json
    assert again["items"] == first["items"]
    assert cards.misses == misses and cards.hits > hits, "the second answer read no product"
    top = first["items"][0]
    auth = {"Authorization": f"Bearer {trained.secret_key}"}
    r = client.post("/api/v1/products", headers=auth, json={"products": [
        {"id": top["id"], "title": "Renamed " + top["title"], "url": top["url"], "price": 1.0, "currency": top["currency"]}]})
    assert r.status_code == 200 and r.json["updated"] == 1
    after = client.get("/api/v1/recommendations", query_string=view).json
    shown = {i["id"]: i for i in after["items"]}
    assert shown[top["id"]]["title"] == "Renamed " + top["title"] and shown[top["id"]]["price"] == 1.0


def test_a_request_that_read_an_older_version_never_replaces_newer_cards(ctx, trained):
    cache = CardCache()
    created = "2026-01-01 00:00:00"
    newer = cache.cards(trained.id, (5, created), ["run-shoe"])
    assert newer["run-shoe"][1] == "Trail running shoe"
    db.session.execute(delete(Product).where(Product.site_id == trained.id, Product.external_id == "run-shoe"))
    db.session.commit()  # a Core delete: no version raised, so only the tag decides what is read
    older = cache.cards(trained.id, (4, created), ["run-shoe"])
    assert "run-shoe" not in older, "a reader with an older tag reads the database, not the cache"
    assert cache.cards(trained.id, (5, created), ["run-shoe"])["run-shoe"][1] == "Trail running shoe", "the newer cards were kept"
    assert "run-shoe" not in cache.cards(trained.id, (6, created), ["run-shoe"]), "a newer tag drops them"


def test_a_new_site_with_a_deleted_sites_id_never_sees_its_cards(ctx, app, client):
    def shop(title: str):
        s, _secret = create_site(f"Reused {title}")
        upsert_products(s.id, [ProductRecord("lamp", title, "/p/lamp", "", 30.0, "EUR", "home")])
        return s

    gone = shop("Old lamp")
    assert ids(recs(client, gone, "someone")) == ["lamp"]
    shown = client.get("/api/v1/recommendations", query_string={"key": gone.public_key, "limit": 3}).json
    assert shown["items"][0]["title"] == "Old lamp"
    gone_id = gone.id
    db.session.delete(gone)
    db.session.commit()
    fresh = shop("New lamp")
    if db.engine.dialect.name == "sqlite":
        assert fresh.id == gone_id, "SQLite hands the freed id out again: the case this test is about"
    # the catalogue version starts again at 1 for the new site, as it did for the old one
    shown = client.get("/api/v1/recommendations", query_string={"key": fresh.public_key, "limit": 3}).json
    assert [i["title"] for i in shown["items"]] == ["New lamp"]


@pytest.mark.parametrize("rounds", [4])
def test_two_catalogue_writes_to_one_site_at_once_both_land(app, site, rounds):
    """Each writer updates the same 1,200 products over three chunks in one transaction, in
    opposite orders. Both lock the site's row first, so they queue instead of deadlocking."""
    errors: list[BaseException] = []
    ids_ = [f"bulk-{i:04d}" for i in range(1200)]
    with app.app_context():
        upsert_products(site.id, [ProductRecord(pid, pid, f"/p/{pid}", "", 1.0, "EUR", "bulk") for pid in ids_])
        start = version(site.id)

    def writer(order: list[str], price: float) -> None:
        try:
            with app.app_context():
                for n in range(rounds):
                    upsert_products(site.id, [ProductRecord(pid, pid, f"/p/{pid}", "", price + n, "EUR", "bulk") for pid in order])
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(ids_, 10.0)), threading.Thread(target=writer, args=(ids_[::-1], 20.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with app.app_context():
        # every round changed every price: three chunks each, each chunk raises the version once
        assert version(site.id) == start + 2 * rounds * 3
        prices = set(db.session.scalars(select(Product.price).where(Product.site_id == site.id, Product.category == "bulk")))
        assert prices in ({10.0 + rounds - 1}, {20.0 + rounds - 1})
