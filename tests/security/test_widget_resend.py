"""The widget under a database outage, in real Chromium: every event arrives, once.

The server here is the real app on an SQLite file that another connection holds locked,
so event posts are answered with the app's own 503 (and ``Retry-After``) until the lock
goes. Events are made on a page, sent while the server refuses them, some at the moment
the page is left; when the server recovers every one of them must be stored exactly once,
without the shopper doing anything more, and the outbox must be empty again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from personalize.app import create_app
from personalize.db import db
from personalize.sites import create_site
from personalize.testing import app_config, fresh_database, serve_in_thread

pytestmark = pytest.mark.browser


class ShopPages:
    """A shop's own web server on another port (so the widget's requests are cross-origin, as in production)."""

    def __init__(self):
        self.snippet = ""
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.strip("/").split("?")[0] or "home"
                body = (f"<!doctype html><html><head><meta charset=utf-8><title>{name}</title></head>"
                        f"<body><h1>{name}</h1>{shop.snippet}</body></html>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_for(page, check, timeout: float, what: str):
    """Poll ``check`` while the page runs (Playwright delivers its events only while we wait on it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def test_events_refused_with_503_are_resent_and_stored_exactly_once(browser, tmp_path):
    with fresh_database(tmp_path, base_url="sqlite") as url:  # the outage is SQLite's lock, whatever the suite's database
        app = create_app(app_config(tmp_path, url, SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 0.3}}))
        shop = ShopPages()
        with app.app_context():
            site, _secret = create_site("Resend shop", [shop.url])
            site_id, key = site.id, site.public_key
            db.session.remove()
        path = url.removeprefix("sqlite:///")
        context = None
        with serve_in_thread(app) as api:
            shop.snippet = f'<script async src="{api.url}/static/widget.js" data-shop="{key}"></script>'
            answers: list[int] = []
            sent: list[dict] = []
            errors: list[str] = []
            locker = sqlite3.connect(path, isolation_level=None, timeout=5)
            try:
                context = browser.new_context()
                page = context.new_page()
                page.set_default_timeout(8000)
                page.on("pageerror", lambda err: errors.append(str(err)))
                page.on("response", lambda r: "/api/v1/events" in r.url and r.request.method == "POST" and answers.append(r.status))

                def record(request):
                    if "/api/v1/events" in request.url and request.method == "POST":
                        sent.extend(json.loads(request.post_data)["events"])

                page.on("request", record)

                locker.execute("BEGIN EXCLUSIVE")  # the database "goes down" before the shopper arrives
                page.goto(f"{shop.url}/one")
                page.wait_for_function("typeof personalize === 'function'")
                page.evaluate("personalize('track', 'product_added', {product_id: 'a', quantity: 1})")
                page.evaluate("personalize('track', 'product_added', {product_id: 'b', quantity: 2})")
                wait_for(page, lambda: 503 in answers, 10, "the server to refuse the first batch")
                page.evaluate("personalize('track', 'product_added', {product_id: 'c', quantity: 3})")
                page.goto(f"{shop.url}/two")  # 'c' goes out as the page is left, and is refused too
                page.wait_for_function("typeof personalize === 'function'")
                wait_for(page, lambda: answers.count(503) >= 2, 10, "more refusals")
                refused = answers.count(503)
                assert 202 not in answers
            finally:
                locker.execute("ROLLBACK")  # the database is back
                locker.close()

            def stored() -> list[tuple]:
                with db.engine.connect() as conn:
                    return conn.execute(sa.text(
                        "SELECT event_id, type, product_id, url FROM events WHERE site_id = :s"), {"s": site_id}).all()

            with app.app_context():
                # nobody clicks anything more: the widget re-sends by itself
                rows = wait_for(page, lambda: len(stored()) >= 5, 30, "every event stored")
                page.wait_for_timeout(1500)  # any late re-send would show up as a second row (or be answered as a duplicate)
                rows = stored()
                db.engine.dispose()
            outbox = page.evaluate("localStorage.getItem('pz_outbox')")
            context.close()
        shop.close()

        ids = [r[0] for r in rows]
        assert len(ids) == len(set(ids))
        added = sorted(r[2] for r in rows if r[1] == "product_added")
        pages = sorted(r[3].removeprefix(shop.url) for r in rows if r[1] == "page_viewed")
        assert added == ["a", "b", "c"], rows
        assert pages == ["/one", "/two"], rows
        assert len(rows) == 5
        assert set(ids) == {e["id"] for e in sent}  # everything the widget ever sent is stored, nothing else
        assert outbox in (None, "[]"), outbox
        assert not errors, errors
        print(f"\nwidget resend: {len(sent)} events sent in {len(answers)} posts ({refused} answered 503 while the database "
              f"was locked), {len(rows)} distinct events stored exactly once after it came back")
