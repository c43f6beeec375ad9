"""Fixtures for the demo: a real app with the demo built into a fresh database, once per module."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from personalize.app import create_app
from personalize.testing import app_config, fresh_database, serve_in_thread

# Enough visitors for the model to learn each persona, few enough to build in a couple of seconds.
SMALL_DEMO = 400
CHROMIUM = "/usr/bin/chromium"


def engaged_visitors(min_views: int = 5) -> dict[str, str]:
    """Visitors of the small demo with some history, and their personas."""
    from collections import Counter

    from personalize.demo.catalog import demo_products
    from personalize.demo.traffic import demo_events, demo_personas

    views = Counter(
        e["visitor"]
        for e in demo_events(demo_products(), n_visitors=SMALL_DEMO, seed=7)
        if e["type"] == "product_viewed"
    )
    personas = demo_personas(SMALL_DEMO, 7)
    return {v: personas[v] for v, n in views.items() if n >= min_views}


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory):
    """Factory for apps on fresh databases, each with the demo blueprint; cleaned up after the module."""
    from personalize.db import db
    from personalize.demo.views import bp

    apps = []
    with ExitStack() as cleanup:

        def make():
            folder = tmp_path_factory.mktemp("demo")
            url = cleanup.enter_context(fresh_database(folder))
            app = create_app(app_config(folder, url))
            if "demo" not in app.blueprints:
                app.register_blueprint(bp)
            apps.append(app)
            return app

        yield make
        for app in apps:
            with app.app_context():
                db.engine.dispose()


@pytest.fixture(scope="module")
def built(fresh_app):
    """``(app, info, progress)``: an app with a small demo built, and the progress it reported."""
    from personalize.demo.setup import build_demo

    app = fresh_app()
    progress: list[tuple[str, int, int]] = []
    info = build_demo(
        app,
        n_visitors=SMALL_DEMO,
        progress=lambda stage, done, total: progress.append((stage, done, total)),
        origin="http://shop.test:8080",
    )
    return app, info, progress


@pytest.fixture(scope="module")
def demo_server(built):
    """The built demo app over real HTTP from a thread; ``.url`` is its base URL."""
    with serve_in_thread(built[0]) as server:
        yield server


@pytest.fixture
def chromium(browser):
    """The session's one Chromium (tests/conftest.py)."""
    return browser
