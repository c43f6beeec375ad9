"""Access control: signed-out visitors see nothing, viewers change nothing, forms need their CSRF
token, and an editor or viewer of one site cannot see another site's data."""

from __future__ import annotations

import pytest

from personalize.sites import create_site, get_site

from .conftest import PASSWORD, csrf, make_user, sign_in

SITE_PAGES = ("/admin/sites/{id}", "/admin/sites/{id}/dashboard", "/admin/sites/{id}/recommendations", "/admin/sites/{id}/live")
EDIT_POSTS = {
    "/admin/sites/{id}/origins": {"allowed_origins": "https://evil.example"},
    "/admin/sites/{id}/rename": {"name": "Hijacked"},
    "/admin/sites/{id}/holdout": {"share": "50"},
    "/admin/sites/{id}/recommendations": {"action": "save", "exclude": "run-shoe"},
}


@pytest.fixture
def two_sites(site):
    other, _secret = create_site("Other shop", ["https://other.example"])
    return site.id, other.id


def test_signed_out_sees_nothing_anywhere(client, owner, two_sites):
    first, _ = two_sites
    public_key = get_site(first).public_key
    for path in ("/admin/", "/admin/team", "/admin/plugins", "/admin/account", *(p.format(id=first) for p in SITE_PAGES)):
        r = client.get(path)
        assert r.status_code == 302 and "/admin/login" in r.headers["Location"], path
        assert public_key.encode() not in r.data


def test_signed_out_posts_are_refused(client, owner, two_sites):
    first, _ = two_sites
    token = csrf(client, "/admin/login")
    for path, data in EDIT_POSTS.items():
        r = client.post(path.format(id=first), data={**data, "csrf_token": token})
        assert r.status_code == 401, path
    assert get_site(first).name == "Test shop"


def test_viewer_cannot_change_any_setting(client, two_sites):
    first, _ = two_sites
    make_user("viewer@shop.example", "viewer", [first])
    sign_in(client, "viewer@shop.example")
    for path in SITE_PAGES:
        assert client.get(path.format(id=first)).status_code == 200
    token = csrf(client)
    for path, data in EDIT_POSTS.items():
        r = client.post(path.format(id=first), data={**data, "csrf_token": token})
        assert r.status_code == 403, path
    assert client.post(f"/admin/sites/{first}/rotate", data={"csrf_token": token}).status_code == 403
    assert client.post("/admin/sites", data={"name": "New", "csrf_token": token}).status_code == 403
    assert client.get("/admin/team").status_code == 403
    s = get_site(first)
    assert s.name == "Test shop" and s.allowed_origins == ["https://shop.example"] and not (s.settings or {}).get("rules")
    page = client.get(f"/admin/sites/{first}").get_data(as_text=True)
    assert "Save origins" not in page and "Rotate secret keys" not in page


def test_editor_changes_settings_of_their_site_only(client, two_sites):
    first, second = two_sites
    make_user("editor@shop.example", "editor", [first])
    sign_in(client, "editor@shop.example")
    r = client.post(f"/admin/sites/{first}/rename", data={"name": "Renamed shop", "csrf_token": csrf(client)})
    assert r.status_code == 302 and get_site(first).name == "Renamed shop"
    assert client.post(f"/admin/sites/{first}/rotate", data={"csrf_token": csrf(client)}).status_code == 403, "keys are for owners"


def test_one_sites_editor_cannot_see_another_sites_data(client, two_sites):
    first, second = two_sites
    other_key = get_site(second).public_key
    make_user("editor@shop.example", "editor", [first])
    sign_in(client, "editor@shop.example")
    index = client.get("/admin/").get_data(as_text=True)
    assert "Test shop" in index and "Other shop" not in index and other_key not in index
    for path in SITE_PAGES:
        r = client.get(path.format(id=second))
        assert r.status_code == 404, path
        assert other_key.encode() not in r.data and b"Other shop" not in r.data
    token = csrf(client)
    for path, data in EDIT_POSTS.items():
        assert client.post(path.format(id=second), data={**data, "csrf_token": token}).status_code == 404, path
    assert get_site(second).name == "Other shop"


def test_form_without_csrf_token_is_refused_everywhere(as_owner, site):
    for path, data in EDIT_POSTS.items():
        r = as_owner.post(path.format(id=site.id), data=data)
        assert r.status_code == 400, path
        r = as_owner.post(path.format(id=site.id), data={**data, "csrf_token": "forged"})
        assert r.status_code == 400, path
    assert as_owner.post("/admin/team", data={"email": "x@shop.example", "password": PASSWORD, "role": "owner"}).status_code == 400
    assert get_site(site.id).name == "Test shop"


def test_pages_send_a_strict_content_security_policy(as_owner, site):
    r = as_owner.get(f"/admin/sites/{site.id}/dashboard")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "<script>" not in r.get_data(as_text=True), "no inline script"


def test_the_session_cookie_stays_on_this_site(client, owner):
    r = sign_in(client, *owner)
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
