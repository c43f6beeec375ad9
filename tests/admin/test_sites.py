"""Admin pages: first-run set-up, sign-in, CSRF, roles, the site's keys and snippet."""

from __future__ import annotations

import re

import pytest

from personalize.admin.users import create_admin_user


def csrf(client, path):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, email, password):
    token = csrf(client, "/admin/login")
    return client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})


@pytest.fixture
def owner(ctx):
    create_admin_user("owner@shop.example", "correct horse battery", "owner")
    return "owner@shop.example", "correct horse battery"


def test_first_run_setup_creates_the_owner_then_closes(client, ctx):
    from personalize.admin.first_run import setup_token

    setup = setup_token(ctx.config["SECRET_KEY"])  # what `personalize serve` prints in its set-up link
    assert client.get("/admin/login").headers["Location"].endswith("/admin/setup")
    token = csrf(client, f"/admin/setup?token={setup}")
    r = client.post("/admin/setup", data={"email": "first@shop.example", "password": "short", "csrf_token": token, "token": setup})
    assert b"at least 10 characters" in r.data
    r = client.post("/admin/setup", data={"email": "first@shop.example", "password": "a long enough secret", "csrf_token": token, "token": setup})
    assert r.status_code == 302
    assert client.get("/admin/").status_code == 200
    client.post("/admin/logout", data={"csrf_token": csrf(client, "/admin/")})
    assert client.get("/admin/setup").status_code == 302, "set-up is closed once an admin exists"
    assert client.get(f"/admin/setup?token={setup}").status_code == 302, "the set-up link too"


def test_signed_out_sees_nothing(client, owner, site):
    for path in ("/admin/", f"/admin/sites/{site.id}"):
        r = client.get(path)
        assert r.status_code == 302 and "/admin/login" in r.headers["Location"]
        assert site.public_key.encode() not in r.data


def test_wrong_password_is_refused(client, owner):
    r = sign_in(client, owner[0], "wrong password!")
    assert r.status_code == 401 and b"Wrong email or password" in r.data


def test_site_page_shows_keys_origins_and_snippet(client, owner, site):
    sign_in(client, *owner)
    page = client.get(f"/admin/sites/{site.id}").get_data(as_text=True)
    assert site.public_key in page
    assert "https://shop.example" in page
    assert "data-personalize-slot" in page and "widget.js" in page and f'data-shop="{site.public_key}"' in page.replace("&#34;", '"')
    assert site.secret_key not in page, "secret keys are never shown again"


def test_create_site_shows_secret_once(client, owner):
    sign_in(client, *owner)
    token = csrf(client, "/admin/")
    r = client.post("/admin/sites", data={"name": "Second shop", "allowed_origins": "https://second.example", "csrf_token": token}, follow_redirects=True)
    first = r.get_data(as_text=True)
    secret = re.search(r"(sk_[A-Za-z0-9_\-]+)", first).group(1)
    assert secret not in client.get(r.request.path).get_data(as_text=True)


def test_form_without_csrf_token_is_refused(client, owner):
    sign_in(client, *owner)
    r = client.post("/admin/sites", data={"name": "Sneaky"})
    assert r.status_code == 400
    from personalize.sites import get_site_by_name

    assert get_site_by_name("Sneaky") is None


def test_viewer_cannot_change_settings(client, ctx, site):
    from personalize.admin.access import set_site_access

    set_site_access(create_admin_user("viewer@shop.example", "viewer password 1", "viewer"), {site.id})
    sign_in(client, "viewer@shop.example", "viewer password 1")
    token = csrf(client, "/admin/")
    r = client.post(f"/admin/sites/{site.id}/origins", data={"allowed_origins": "https://evil.example", "csrf_token": token})
    assert r.status_code == 403
    r = client.post(f"/admin/sites/{site.id}/rotate", data={"csrf_token": token})
    assert r.status_code == 403
    from personalize.sites import get_site

    assert get_site(site.id).allowed_origins == ["https://shop.example"]


def test_rotating_keys_revokes_the_old_secret(client, owner, site):
    sign_in(client, *owner)
    old = {"Authorization": f"Bearer {site.secret_key}"}
    assert client.get("/api/v1/site", headers=old).status_code == 200
    token = csrf(client, f"/admin/sites/{site.id}")
    page = client.post(f"/admin/sites/{site.id}/rotate", data={"csrf_token": token}, follow_redirects=True).get_data(as_text=True)
    new = re.search(r'id="secret-key">(sk_[^<]+)<', page).group(1)
    assert client.get("/api/v1/site", headers=old).status_code == 401
    assert client.get("/api/v1/site", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_login_redirect_only_goes_to_admin_pages(client, owner):
    token = csrf(client, "/admin/login")
    r = client.post("/admin/login?next=https://evil.example/", data={"email": owner[0], "password": owner[1], "csrf_token": token})
    assert r.headers["Location"] == "/admin/"


def test_signing_secret_for_owners_only(client, owner, site):
    from personalize.admin.access import set_site_access
    from personalize.profiles.trust import signing_secret

    sign_in(client, *owner)
    token = csrf(client, f"/admin/sites/{site.id}")
    page = client.post(f"/admin/sites/{site.id}/signing-secret", data={"csrf_token": token}, follow_redirects=True).get_data(as_text=True)
    first = re.search(r'id="signing-secret">(ss_[^<]+)<', page).group(1)
    assert first == signing_secret(site.id)
    client.post(f"/admin/sites/{site.id}/signing-secret", data={"csrf_token": token, "rotate": "1"})
    assert signing_secret(site.id) != first
    client.post("/admin/logout", data={"csrf_token": token})
    set_site_access(create_admin_user("ed@shop.example", "editor password", "editor"), {site.id})
    sign_in(client, "ed@shop.example", "editor password")
    r = client.post(f"/admin/sites/{site.id}/signing-secret", data={"csrf_token": csrf(client, "/admin/")})
    assert r.status_code == 403


def test_server_settings_are_shown_without_keys(client, owner, app):
    app.config["BROKER_URL"] = "amqp://guest:hunter2@127.0.0.1:5672//"
    sign_in(client, *owner)
    page = client.get("/admin/settings").get_data(as_text=True)
    assert "database_url" in page and "hunter2" not in page and ":•••@" in page
    assert app.config["SECRET_KEY"] not in page


def test_plugins_page_lists_plugins_hooks_and_errors(client, owner, app):
    from personalize.plugins import PluginError

    app.extensions["personalize.plugins"].errors.append(PluginError("broken_thing", "file /plugins/broken_thing.py", "SyntaxError: invalid syntax"))
    sign_in(client, *owner)
    page = client.get("/admin/plugins").get_data(as_text=True)
    assert "personalize.builtins.rules" in page and "modify_recommendations" in page
    assert "broken_thing" in page and "SyntaxError: invalid syntax" in page and "were skipped" in page
