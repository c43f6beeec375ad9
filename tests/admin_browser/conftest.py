"""Admin journeys in the session's headless Chromium (``browser`` from tests/conftest.py).

The app runs over real HTTP (``live_server``) on the test's own fresh database. Set
``PERSONALIZE_SCREENSHOTS=1`` to write the screenshots of the admin guide into
docs/screenshots/ (otherwise they go to the test's temporary folder).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from personalize.admin.users import create_admin_user

PASSWORD = "correct horse battery"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def admin_page(browser):
    """A page in a fresh browser context (no session), allowed to use the clipboard."""
    context = browser.new_context(viewport={"width": 960, "height": 720}, permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(8000)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors
    yield page
    context.close()


@pytest.fixture
def shoot(tmp_path):
    """``shoot(page, name, selector=None)``: a screenshot of the page (or one element) for the guide."""
    folder = DOCS_SCREENSHOTS if os.environ.get("PERSONALIZE_SCREENSHOTS") == "1" else tmp_path

    def take(page, name: str, selector: str = "main", max_height: int = 1100):
        """The element, from its top, at most ``max_height`` pixels tall (small files for the guide)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        box = page.locator(selector).bounding_box()
        scroll = page.evaluate("[window.scrollX, window.scrollY]")
        clip = {"x": box["x"] + scroll[0], "y": box["y"] + scroll[1], "width": box["width"], "height": min(box["height"], max_height)}
        page.screenshot(path=str(path), clip=clip, full_page=True)
        return path

    return take


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch):
    """The same scrypt, at a low cost: production's cost takes 0.3 s a hash, and these tests hash often."""
    from functools import partial

    from werkzeug.security import generate_password_hash

    monkeypatch.setattr("personalize.admin.users.generate_password_hash", partial(generate_password_hash, method="scrypt:1024:8:1"))


@pytest.fixture
def owner(ctx):
    create_admin_user("owner@shop.example", PASSWORD, "owner")
    return "owner@shop.example", PASSWORD


def sign_in(page, base_url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(base_url + "/admin/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")


def send_events(base_url: str, public_key: str, events: list[dict]) -> None:
    r = requests.post(f"{base_url}/api/v1/events", json={"key": public_key, "events": events}, timeout=10)
    assert r.status_code in (200, 202), r.text


def wait_for_text(page, selector: str, text: str, timeout: float = 10.0) -> str:
    """Poll an element's text from here (``wait_for_function`` needs eval, which the CSP forbids)."""
    deadline = time.monotonic() + timeout
    while True:
        content = page.locator(selector).inner_text()
        if text in content:
            return content
        if time.monotonic() > deadline:
            pytest.fail(f"{selector} never showed {text!r}; it shows {content!r}")
        time.sleep(0.2)
