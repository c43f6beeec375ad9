"""Shared fixtures: a real app on a fresh, migrated database (SQLite, or PostgreSQL when
PERSONALIZE_TEST_DATABASE_URL is set), a test client, a CLI runner and a trained site."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest

from personalize import schema  # noqa: F401  (every table, for truncation)
from personalize.app import create_app
from personalize.db import db
from personalize.records import ProductRecord
from personalize.testing import app_config, fresh_database, serve_in_thread


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory):
    """One database migrated once per run; each test gets a copy (SQLite) or a truncated one (PostgreSQL)."""
    folder = tmp_path_factory.mktemp("template")
    with fresh_database(folder) as url:
        template = create_app(app_config(folder, url))
        with template.app_context():
            db.engine.dispose()  # checkpoints SQLite's write-ahead log into the file
        yield url


@pytest.fixture
def app(tmp_path, migrated_database):
    url = migrated_database
    if url.startswith("sqlite"):
        copy = tmp_path / "personalize.db"
        shutil.copyfile(url.removeprefix("sqlite:///"), copy)
        url = f"sqlite:///{copy}"
    application = create_app(app_config(tmp_path, url, AUTO_MIGRATE=False))
    yield application
    from personalize.refusals import refusals

    refusals(application).close()  # refused widget requests are written a second later: not into the next test's tables
    with application.app_context():
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            # DELETE beats TRUNCATE on tables this small
            with db.engine.begin() as connection:
                for table in reversed(db.metadata.sorted_tables):
                    connection.execute(table.delete())
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


@dataclass
class SiteInfo:
    id: int
    public_key: str
    secret_key: str
    name: str


SHOP_PRODUCTS = [
    ProductRecord("run-shoe", "Trail running shoe", "/p/run-shoe", "/img/run-shoe.png", 120.0, "EUR", "running"),
    ProductRecord("run-sock", "Running socks", "/p/run-sock", "", 12.0, "EUR", "running"),
    ProductRecord("run-gel", "Energy gel", "/p/run-gel", "", 2.5, "EUR", "running"),
    ProductRecord("run-cap", "Running cap", "/p/run-cap", "", 20.0, "EUR", "running"),
    ProductRecord("tea-pot", "Cast iron tea pot", "/p/tea-pot", "", 45.0, "EUR", "tea"),
    ProductRecord("tea-green", "Green tea leaves", "/p/tea-green", "", 9.0, "EUR", "tea"),
    ProductRecord("tea-cup", "Tea cups (set of 2)", "/p/tea-cup", "", 18.0, "EUR", "tea"),
    ProductRecord("tea-timer", "Tea timer", "/p/tea-timer", "", 7.0, "EUR", "tea", in_stock=False),
]


def shop_events(n_each: int = 12) -> list[dict]:
    """Runners buy running things together, tea lovers tea things: structure a model can learn."""
    events = []
    t = 1_700_000_000_000
    groups = {"runner": ["run-shoe", "run-sock", "run-gel", "run-cap"], "tea": ["tea-pot", "tea-green", "tea-cup", "tea-timer"]}
    for persona, items in groups.items():
        for n in range(n_each):
            visitor = f"{persona}-{n}"
            for j, pid in enumerate(items[: 2 + n % 3]):
                events.append({"id": f"{visitor}-v{j}", "type": "product_viewed", "visitor": visitor, "product_id": pid, "ts": t + j * 1000})
            bought = items[: 2 + n % 2]
            events.append({
                "id": f"{visitor}-o", "type": "order_completed", "visitor": visitor, "order_id": f"o-{visitor}", "ts": t + 10_000,
                "items": [{"product_id": pid, "quantity": 1, "price": 10.0} for pid in bought],
            })
    return events


@pytest.fixture
def site(ctx) -> SiteInfo:
    """A site with a small catalogue and two kinds of customers, not yet trained."""
    from personalize.catalog import upsert_products
    from personalize.profiles import ingest_events
    from personalize.sites import create_site

    s, secret = create_site("Test shop", ["https://shop.example"])
    upsert_products(s.id, SHOP_PRODUCTS)
    ingest_events(s, shop_events())
    return SiteInfo(s.id, s.public_key, secret, s.name)


@pytest.fixture
def trained(site) -> SiteInfo:
    from personalize.recommend.service import train_site

    train_site(site.id)
    return site


@pytest.fixture
def live_server(app):
    """The app over real HTTP from a thread; ``live_server.url`` is its base URL."""
    with serve_in_thread(app) as server:
        yield server


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the whole run (Playwright allows one sync driver per thread).

    Skipped when Chromium is missing, unless PERSONALIZE_REQUIRE_BROWSER=1 (CI), where that fails.
    """
    import os

    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
        if os.environ.get("PERSONALIZE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; PERSONALIZE_REQUIRE_BROWSER=1 makes this an error")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """A click runner whose commands use a fresh database and instance folder of their own."""
    from click.testing import CliRunner

    from personalize.testing import TEST_DATABASE_ENV, TEST_OUTBOUND_ALLOWED_HOSTS

    with fresh_database(tmp_path) as url:
        monkeypatch.setenv("PERSONALIZE_INSTANCE_PATH", str(tmp_path / "instance"))
        monkeypatch.setenv("PERSONALIZE_DATABASE_URL", url)
        monkeypatch.setenv("PERSONALIZE_AUTO_MIGRATE", "true")
        monkeypatch.setenv("PERSONALIZE_OUTBOUND_ALLOWED_HOSTS", TEST_OUTBOUND_ALLOWED_HOSTS)  # local provider servers, as app_config
        monkeypatch.delenv(TEST_DATABASE_ENV, raising=False)
        yield CliRunner()


@pytest.fixture
def broker_url() -> str:
    """The real RabbitMQ on 127.0.0.1: skipped without it, a failure under PERSONALIZE_REQUIRE_SERVICES=1 (CI)."""
    from production.support import BROKER_URL, require

    require("RabbitMQ", "127.0.0.1", 5672)
    return BROKER_URL


@dataclass
class BrokerQueue:
    """A queue of one test's own on the shared RabbitMQ, which the test app's jobs are sent to."""

    url: str
    name: str

    def take(self, timeout: float = 10.0):
        """The next job message: ``(task name, args, kwargs)``, acknowledged."""
        from kombu import Connection

        with Connection(self.url) as conn:
            message = conn.SimpleQueue(self.name).get(timeout=timeout)
            args, kwargs, _embed = message.decode()
            message.ack()
        return message.headers["task"], args, kwargs


@pytest.fixture
def broker_queue(app, broker_url):
    """The app's jobs go to a queue of this test's own on the real broker; it is deleted afterwards."""
    import secrets

    from kombu import Connection

    queue = BrokerQueue(broker_url, "ptest-" + secrets.token_hex(4))
    app.config.update(BROKER_URL=broker_url, QUEUE_NAME=queue.name)
    yield queue
    runner = app.extensions.pop("personalize.jobs", None)
    if runner is not None:
        runner.shutdown()
    with Connection(broker_url) as conn:
        channel = conn.channel()
        channel.queue_delete(queue.name)
        channel.exchange_delete(queue.name)


@pytest.fixture
def membership_threads(app) -> list[str]:
    """The names of the threads that announce segment membership changes: tells work done on the
    job runner (``personalize-job…``) from work done in a request."""
    import threading

    from personalize import hookimpl

    names: list[str] = []

    class Listener:
        @hookimpl
        def segment_membership_changed(self, site_id, changes):
            names.append(threading.current_thread().name)

    app.extensions["personalize.plugins"].pm.register(Listener())
    return names
