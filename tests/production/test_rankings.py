"""Rankings reused by a web process, and everything that must still reach the next answer at once.

Each gunicorn worker keeps the rankings it computed in its own memory. Here a second
app on the same database plays the other worker: whatever it changes (an event, a
product's stock or price, the site's rules, the holdout) must show in the first
app's very next answer, with nothing sent between the two.
"""

from __future__ import annotations

import pytest

from personalize.app import create_app
from personalize.db import db
from personalize.recommend.service import RankingCache


@pytest.fixture
def other(app):
    """A second app (another worker: its own caches) on the test app's database."""
    config = {
        "TESTING": True, "DATABASE_URL": app.config["DATABASE_URL"], "INSTANCE_PATH": app.instance_path,
        "AUTO_MIGRATE": False, "SECRET_KEY": app.config["SECRET_KEY"], "MODEL_CHECK_SECONDS": 0.0,
    }
    second = create_app(config)
    yield second
    with second.app_context():
        db.session.remove()
        db.engine.dispose()


def rankings(app) -> RankingCache:
    return app.extensions["personalize.rankings"]


def recs(client, site, visitor, **params):
    r = client.get("/api/v1/recommendations", query_string={"key": site.public_key, "visitor": visitor, "limit": 3, **params})
    assert r.status_code == 200, r.json
    return r.json


def ids(body) -> list[str]:
    return [i["id"] for i in body["items"]]


def view(client, site, visitor, product, n=0):
    r = client.post("/api/v1/events", json={"key": site.public_key, "events": [
        {"id": f"{visitor}-{product}-{n}", "type": "product_viewed", "visitor": visitor, "product_id": product}]})
    assert r.status_code == 202, r.json


def change_product(client, site, product_id, **changes):
    """Change a product through the catalogue API, as the shop's server would."""
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    current = client.get(f"/api/v1/products/{product_id}", headers=auth).json
    record = {k: current[k] for k in ("id", "title", "url", "image", "price", "currency", "category", "in_stock")}
    r = client.post("/api/v1/products", json={"products": [{**record, **changes}]}, headers=auth)
    assert r.status_code == 200 and r.json["updated"] == 1, r.json


def test_a_ranking_is_reused_and_an_event_stored_elsewhere_counts_at_once(app, client, other, trained):
    view(client, trained, "v1", "tea-pot")
    first = recs(client, trained, "v1")
    assert first["strategy"] == "personal" and all(i.startswith("tea-") for i in ids(first)[:2]), first
    hits = rankings(app).hits
    again = recs(client, trained, "v1")
    assert rankings(app).hits == hits + 1  # the same history: the ranking was reused...
    assert again["items"] == first["items"] and again["rec_id"] != first["rec_id"]  # ...each showing its own rec_id

    # the other worker stores the visitor's next views; nothing tells this one
    other_client = other.test_client()
    view(other_client, trained, "v1", "run-shoe")
    view(other_client, trained, "v1", "run-sock")
    misses = rankings(app).misses
    after = recs(client, trained, "v1")
    assert rankings(app).misses == misses + 1
    assert ids(after)[0].startswith("run-"), after


def test_out_of_stock_elsewhere_leaves_a_reused_ranking_at_once(app, client, other, trained):
    from personalize.catalog import get_product

    view(client, trained, "v2", "run-shoe")
    first = ids(recs(client, trained, "v2"))
    gone = first[0]
    change_product(other.test_client(), trained, gone, in_stock=False)
    with other.app_context():
        assert get_product(trained.id, gone).in_stock is False
    hits = rankings(app).hits
    after = recs(client, trained, "v2")
    assert rankings(app).hits == hits + 1  # same history, same model: the ranking is reused...
    assert gone not in ids(after)  # ...but the product is not shown
    assert len(after["items"]) == 3  # and the next one in line takes its place


def test_a_price_changed_elsewhere_shows_at_once(app, client, other, trained):
    view(client, trained, "v3", "tea-pot")
    first = recs(client, trained, "v3")
    top = first["items"][0]
    change_product(other.test_client(), trained, top["id"], price=99.5)
    after = recs(client, trained, "v3")
    assert after["items"][0]["id"] == top["id"] and after["items"][0]["price"] == 99.5


def test_rules_and_holdout_set_elsewhere_apply_at_once(app, client, other, trained):
    from personalize.insights.holdout import hash_point, set_holdout_share
    from personalize.sites import get_site

    view(client, trained, "v4", "tea-pot")
    top = ids(recs(client, trained, "v4"))[0]
    recs(client, trained, "v4")  # cached now
    with other.app_context():
        s = get_site(trained.id)
        s.settings = {"rules": {"exclude": [top]}}
        db.session.commit()
    assert top not in ids(recs(client, trained, "v4"))

    # a visitor whose fixed point falls in a 50 % holdout
    held = next(v for v in (f"h{i}" for i in range(100)) if hash_point(trained.id, v) < 0.5)
    view(client, trained, held, "tea-pot")
    assert recs(client, trained, held)["strategy"] == "personal"
    with other.app_context():
        set_holdout_share(get_site(trained.id), 0.5)
    assert recs(client, trained, held)["strategy"] == "holdout"


def test_a_new_model_trained_elsewhere_is_a_new_ranking(app, client, other, trained):
    from personalize.recommend.service import train_site

    view(client, trained, "v5", "tea-pot")
    recs(client, trained, "v5")
    with other.app_context():
        version = train_site(trained.id)["version"]
    misses = rankings(app).misses
    recs(client, trained, "v5")  # MODEL_CHECK_SECONDS is 0 here: the new model is found at once
    assert rankings(app).misses == misses + 1
    with app.app_context():
        from personalize.recommend.service import model_cache

        assert model_cache().get(trained.id).version == version


def test_with_a_plugin_ranking_nothing_is_reused(app, client, trained):
    from personalize import hookimpl

    calls = []

    class Counting:
        @hookimpl
        def modify_recommendations(self, site_id, profile_id, slot, items):
            calls.append(profile_id)

    app.extensions["personalize.plugins"].pm.register(Counting())
    view(client, trained, "v6", "tea-pot")
    recs(client, trained, "v6")
    recs(client, trained, "v6")
    assert len(calls) == 2  # a plugin may look at anything: it is asked every time


def test_the_cache_is_bounded_and_can_be_turned_off():
    cache = RankingCache(seconds=30, max_entries=2)
    for n in range(3):
        cache.put(("k", n), "personal", [("p", "r")])
    assert cache.get(("k", 0)) is None and cache.get(("k", 2)) == ("personal", [("p", "r")])
    mine, theirs = (1, 1, "home", 3, None, "", 42, None, 0, None, 0), (1, 1, "home", 3, None, "", 43, None, 0, None, 0)
    cache.put(mine, "personal", [])
    cache.put(theirs, "personal", [])
    cache.forget_profile(42)  # an erased person's rankings go at once, nobody else's
    assert cache.get(mine) is None and cache.get(theirs) == ("personal", [])
    off = RankingCache(seconds=0)
    off.put(("k",), "personal", [])
    assert off.get(("k",)) is None
