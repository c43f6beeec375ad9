"""Fixtures for the widget's browser tests.

The real app runs in a thread (``reco``), a separate little shop server on another port serves
the shop pages (``shop``), so every request the widget makes is cross-origin as it is in
production. One Chromium per session, a fresh browser context (so a fresh visitor) per test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from personalize.testing import serve_in_thread

from .support import Shop, catalog, histories, make_site, wait_for

# Records every personalize:rendered event, so a test can wait for a render and read its rec_id.
RENDER_SPY = """
window.__rendered = [];
document.addEventListener('personalize:rendered', function (e) {
  window.__rendered.push({slot: e.detail.slot, rec_id: e.detail.rec_id,
                          items: e.detail.items.map(function (i) { return String(i.id); })});
});
"""


# ---------------------------------------------------------------- the browser
# ``browser`` (one headless Debian Chromium per session, skipped when it is missing) comes from
# tests/conftest.py: Playwright's sync API allows one driver per thread, so all suites share it.


@dataclass
class Tab:
    """One page in its own browser context, with what it reported."""

    page: object
    errors: list[str] = field(default_factory=list)
    requests: list[object] = field(default_factory=list)

    def sent(self, path: str) -> list:
        return [r for r in self.requests if path in r.url]

    def rendered(self, count: int = 1, timeout: float = 8.0) -> list[dict]:
        """Wait for ``count`` renders; return them all. (Polled from here, not with
        ``wait_for_function``, which needs ``eval`` and so fails on a page with a strict CSP.)"""
        return wait_for(lambda: (r := self.page.evaluate("window.__rendered || []")) and len(r) >= count and r,
                        timeout=timeout, interval=0.05, message=f"{count} render(s)")

    def flush(self, settle_ms: int = 300) -> None:
        """Make the widget send its queued events now, as it does when the page is left."""
        self.page.evaluate("window.dispatchEvent(new Event('pagehide'))")
        self.page.wait_for_timeout(settle_ms)

    def visitor(self) -> str | None:
        return self.page.evaluate("localStorage.getItem('pz_vid')")

    def storage(self) -> dict:
        return self.page.evaluate("Object.assign({}, localStorage)")


@pytest.fixture
def new_tab(browser):
    """Factory: ``new_tab(init_script=None)`` opens a page in a fresh context (a new visitor)."""
    contexts = []

    def open_tab(init_script: str | None = None) -> Tab:
        context = browser.new_context()
        contexts.append(context)
        context.add_init_script(RENDER_SPY)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        page.set_default_timeout(8000)
        tab = Tab(page)
        page.on("pageerror", lambda err: tab.errors.append(str(err)))
        page.on("request", lambda req: tab.requests.append(req))
        return tab

    yield open_tab
    for context in contexts:
        context.close()


@pytest.fixture
def tab(new_tab) -> Tab:
    return new_tab()


# ---------------------------------------------------------------- the shop


@pytest.fixture(scope="session")
def shop(reco):
    s = Shop()
    s.reco_url = reco.url
    yield s
    s.close()


# ---------------------------------------------------------------- the real app


@pytest.fixture(scope="session")
def reco_app():
    """The real app on a throwaway database (a schema of its own on PERSONALIZE_TEST_DATABASE_URL).

    Session-wide rather than the per-test ``app``: training a site takes seconds, and every test
    here uses fresh visitors (a new browser context) on the same trained site.
    """
    from personalize.testing import throwaway_app

    with throwaway_app("pz-browser-") as app:
        yield app


@pytest.fixture(scope="session")
def reco(reco_app):
    """The app served over real HTTP from a thread; ``reco.url`` is its base URL."""
    with serve_in_thread(reco_app) as server:
        yield server


@pytest.fixture(scope="session")
def reco_site(reco_app, shop):
    """A trained shop with shoes and books; the shop server embeds its public key by default."""
    info = make_site(reco_app, shop.url, catalog(shop.url), histories())
    shop.public_key = info["public_key"]
    return info


@pytest.fixture
def stored(reco_app, reco_site):
    """``stored(**where)`` lists this site's stored events as dicts, filtered by column values."""
    from sqlalchemy import select

    from personalize.db import db
    from personalize.models import Event

    def query(site_id: int | None = None, **where) -> list[dict]:
        with reco_app.app_context():
            q = select(Event).where(Event.site_id == (site_id or reco_site["id"]))
            for column, value in where.items():
                q = q.where(getattr(Event, column) == value)
            rows = db.session.scalars(q.order_by(Event.id)).all()
            return [
                {c: getattr(r, c) for c in ("event_id", "type", "visitor", "product_id", "rec_id", "slot", "position", "url", "properties")}
                for r in rows
            ]

    return query


