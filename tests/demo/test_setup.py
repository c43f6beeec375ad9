"""build_demo: the demo goes in through the real services, once, however often it runs."""

from __future__ import annotations

import stat
from collections import Counter
from pathlib import Path

from personalize.demo.catalog import demo_products
from personalize.demo.setup import ADMIN_EMAIL, ADMIN_FILE, build_demo
from personalize.demo.traffic import persona_affinities

from .conftest import SMALL_DEMO, engaged_visitors


def test_build_reports_what_it_loaded(built):
    app, info, _progress = built
    assert info["products"] == len(demo_products()) == 240
    assert info["events"] > SMALL_DEMO * 5
    assert info["events_stored"] == info["events"]
    assert info["public_key"].startswith("pk_")
    assert info["secret_key"].startswith("sk_")
    assert info["admin_email"] == ADMIN_EMAIL
    assert app.config["DEMO_SITE_ID"] == info["site_id"]
    assert app.config["DEMO_PUBLIC_KEY"] == info["public_key"]
    assert len(app.config["DEMO_BEST_SELLERS"]) == 8


def test_progress_goes_through_every_stage_in_order(built):
    _app, info, progress = built
    stages = list(dict.fromkeys(stage for stage, _done, _total in progress))
    assert stages == ["site", "products", "events", "train", "traffic", "customers", "journeys", "admin"]
    event_steps = [(done, total) for stage, done, total in progress if stage == "events"]
    assert event_steps[-1] == (info["events"], info["events"])
    assert len(event_steps) > 2  # one step per batch of 500
    assert all(done <= total for _stage, done, total in progress)


def test_the_site_has_the_catalogue_and_the_served_origin(built):
    from personalize.catalog import count_products, get_product
    from personalize.sites import get_site

    app, info, _progress = built
    with app.app_context():
        site = get_site(info["site_id"])
        assert site.name == "Demo shop"
        assert "http://shop.test:8080" in site.allowed_origins
        assert count_products(info["site_id"]) == 240
        assert get_product(info["site_id"], "P1001").title == demo_products()[0].title


def test_the_admin_can_sign_in_with_the_printed_password(built):
    from personalize.admin.users import authenticate

    app, info, _progress = built
    path = Path(app.instance_path) / ADMIN_FILE
    assert info["admin_password"] in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with app.app_context():
        assert authenticate(ADMIN_EMAIL, info["admin_password"]) is not None


def test_running_it_again_duplicates_nothing(fresh_app):
    from personalize.catalog import count_products

    app = fresh_app()
    first = build_demo(app, n_visitors=60, seed=5)
    again = build_demo(app, n_visitors=60, seed=5)
    assert again["site_id"] == first["site_id"]
    assert again["public_key"] == first["public_key"]
    assert again["secret_key"] is None  # the secret is only shown when the site is created
    assert again["admin_password"] == first["admin_password"]
    assert again["events"] == first["events"]
    assert again["events_stored"] == 0
    with app.app_context():
        assert count_products(first["site_id"]) == 240


def _categories_recommended(client, public_key: str, visitor: str) -> list[str]:
    response = client.get(
        "/api/v1/recommendations",
        query_string={"key": public_key, "visitor": visitor, "slot": "home", "limit": 8},
    )
    assert response.status_code == 200
    by_id = {p.id: p for p in demo_products()}
    return [by_id[item["id"]].attributes["category_slug"] for item in response.get_json()["items"]]


def test_visitors_are_recommended_their_personas_categories(built):
    app, info, _progress = built
    client = app.test_client()
    shares = []
    for visitor, persona in sorted(engaged_visitors().items())[:60]:
        categories = _categories_recommended(client, info["public_key"], visitor)
        mine = sum(1 for c in categories if c in persona_affinities(persona))
        shares.append(mine / len(categories))
    assert len(shares) >= 40
    # a persona's categories are 2-3 of 10; chance would put about a quarter of the items there
    assert sum(shares) / len(shares) > 0.6, shares


def test_two_personas_get_different_recommendations(built):
    app, info, _progress = built
    client = app.test_client()
    personas = engaged_visitors()
    runner = min(v for v, p in personas.items() if p == "runner")
    parent = min(v for v, p in personas.items() if p == "new parent")
    runner_cats = Counter(_categories_recommended(client, info["public_key"], runner))
    parent_cats = Counter(_categories_recommended(client, info["public_key"], parent))
    assert runner_cats.most_common(1)[0][0] in persona_affinities("runner")
    assert parent_cats.most_common(1)[0][0] in persona_affinities("new parent")
    assert runner_cats != parent_cats
