"""Secrets the admin shows once (a new site's secret key, a rotated one, the signing secret) come
from the server and never travel in the session cookie, which is signed but readable by anyone
who holds it (a browser extension, a proxy's log, a shared computer's cookie store)."""

from __future__ import annotations

import json
import re

from sqlalchemy import text

from personalize.db import db

from .conftest import make_user, post, sign_in
from .test_sessions import cookie, decoded

SECRET = re.compile(r"\b(?:sk|ss|whsec)_[A-Za-z0-9_\-]{10,}")


def cookies_set(response) -> list[str]:
    return [h.split(";", 1)[0].split("=", 1)[1] for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]


def assert_no_secret_in_cookies(app, client, response, secret: str) -> None:
    for value in [*cookies_set(response), cookie(client)]:
        assert secret not in value
        content = json.dumps(decoded(app, value))
        assert secret not in content and not SECRET.search(content), content


def shown(page: str, element: str) -> str:
    return re.search(rf'id="{element}">((?:sk|ss|whsec)_[^<]+)<', page).group(1)


ACTIONS = [
    ("a new site's secret key", "/admin/sites", {"name": "Second shop"}, "secret-key"),
    ("a rotated secret key", "/admin/sites/{site}/rotate", {}, "secret-key"),
    ("the signing secret", "/admin/sites/{site}/signing-secret", {}, "signing-secret"),
    ("a rotated signing secret", "/admin/sites/{site}/signing-secret", {"rotate": "1"}, "signing-secret"),
    # the journeys' webhook secret was kept in the cookie until an outside review found it
    ("the journeys' webhook secret", "/admin/sites/{site}/email-settings/webhook-secret", {}, "webhook-secret"),
    ("a rotated webhook secret", "/admin/sites/{site}/email-settings/webhook-secret", {"rotate": "1"}, "webhook-secret"),
]


def test_secrets_are_shown_once_from_the_server_never_from_the_cookie(app, as_owner, site):
    for what, path, form, element in ACTIONS:
        r = post(as_owner, path.format(site=site.id), form)
        assert r.status_code == 302, what
        pending = db.session.scalar(text("SELECT pending_secrets FROM admin_sessions"))
        assert pending and not SECRET.search(pending), f"{what}: kept on the server, encrypted"
        target = r.headers["Location"].split("#")[0]
        page = as_owner.get(target).get_data(as_text=True)
        secret = shown(page, element)
        assert page.count(secret) == 1, what
        assert_no_secret_in_cookies(app, as_owner, r, secret)
        again = as_owner.get(target).get_data(as_text=True)
        assert secret not in again and not SECRET.search(again), f"{what}: shown once only"
        db.session.remove()
        assert db.session.scalar(text("SELECT pending_secrets FROM admin_sessions")) is None, f"{what}: gone once shown"


def test_a_secret_waits_for_its_own_site_and_its_own_session(app, client, as_owner, site, ctx):
    from personalize.sites import create_site

    other, _ = create_site("Other shop")
    make_user("twin@shop.example", "owner")
    second = app.test_client()
    sign_in(second, "twin@shop.example")
    r = post(as_owner, f"/admin/sites/{site.id}/rotate")
    assert not SECRET.search(as_owner.get(f"/admin/sites/{other.id}").get_data(as_text=True)), "not on another site's page"
    assert not SECRET.search(second.get(f"/admin/sites/{site.id}").get_data(as_text=True)), "not in another session"
    page = as_owner.get(r.headers["Location"]).get_data(as_text=True)
    assert shown(page, "secret-key").startswith("sk_")
    r = post(as_owner, f"/admin/sites/{site.id}/email-settings/webhook-secret")
    assert not SECRET.search(as_owner.get(f"/admin/sites/{other.id}/email-settings").get_data(as_text=True)), "not on another site's page"
    assert not SECRET.search(second.get(f"/admin/sites/{site.id}/email-settings").get_data(as_text=True)), "not in another session"
    assert shown(as_owner.get(r.headers["Location"].split("#")[0]).get_data(as_text=True), "webhook-secret").startswith("whsec_")


def test_signing_out_drops_a_secret_not_shown_yet(app, as_owner, site):
    post(as_owner, f"/admin/sites/{site.id}/rotate")
    post(as_owner, "/admin/logout")
    assert db.session.scalar(text("SELECT count(*) FROM admin_sessions")) == 0

