"""First run: the owner account is created with the set-up link `personalize serve` prints on its
console, never by whoever reaches /admin/setup first."""

from __future__ import annotations

import re
import urllib.request
from urllib.error import HTTPError

import pytest

from personalize.admin.first_run import setup_token
from personalize.admin.users import count_admin_users, get_admin_user

from .conftest import PASSWORD


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_without_the_token_the_page_says_where_to_find_it_and_creates_nothing(app, client, ctx):
    r = client.get("/admin/setup")
    page = r.get_data(as_text=True)
    assert r.status_code == 403
    assert "personalize serve" in page and "personalize create-admin" in page and "<form" not in page
    assert client.get("/admin/").headers["Location"].endswith("/admin/login?next=/admin/")
    token = _csrf_from_any_form(client)
    for sent in ({}, {"token": ""}, {"token": "x" * 32}, {"token": setup_token("another server's key")},
                 {"token": setup_token(app.config["SECRET_KEY"])[:-1]}):
        r = client.post("/admin/setup", data={"email": "intruder@x.example", "password": "intruder password", "csrf_token": token, **sent})
        assert r.status_code == 403
        assert ("not valid" in r.get_data(as_text=True)) == bool(sent.get("token"))
        r = client.get("/admin/setup", query_string=sent)
        assert r.status_code == 403
    assert count_admin_users() == 0


def _csrf_from_any_form(client) -> str:
    """The session's CSRF token (the locked page has no form; the token is the session's, whatever page made it)."""
    with client.session_transaction() as s:
        s.setdefault("csrf", "first-run-test-token")
        return s["csrf"]


def test_the_token_opens_the_form_and_only_until_an_account_exists(app, client, ctx):
    token = setup_token(app.config["SECRET_KEY"])
    page = client.get(f"/admin/setup?token={token}").get_data(as_text=True)
    assert f'name="token" value="{token}"' in page
    r = client.post("/admin/setup", data={"email": "first@shop.example", "password": PASSWORD, "token": token, "csrf_token": csrf_of(page)})
    assert r.status_code == 302 and r.headers["Location"] == "/admin/"
    assert get_admin_user("first@shop.example").role == "owner"
    other = app.test_client()
    r = other.post("/admin/setup", data={"email": "second@shop.example", "password": PASSWORD, "token": token, "csrf_token": _csrf_from_any_form(other)})
    assert r.status_code == 302 and "/admin/login" in r.headers["Location"]
    assert get_admin_user("second@shop.example") is None


def test_serve_prints_the_set_up_link_on_the_console_and_it_works(app, tmp_path):
    from security.test_kill_restart import free_port, kill_group, start_server

    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_server(app, port, log)
    try:
        printed = re.search(r"First run: create the owner account at (\S+)", log.read_text())
        assert printed, log.read_text()
        url = printed.group(1)
        assert url == f"http://127.0.0.1:{port}/admin/setup?token={setup_token(app.config['SECRET_KEY'])}"
        with urllib.request.urlopen(url, timeout=15) as answer:
            assert answer.status == 200 and b'name="token"' in answer.read()
        with pytest.raises(HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/setup", timeout=15)
        assert refused.value.code == 403
    finally:
        kill_group(proc)


def test_the_console_notice_names_a_reachable_address_and_goes_once_an_account_exists(app, ctx):
    from personalize.admin.users import create_admin_user
    from personalize.cli import _first_run_notice

    token = setup_token(app.config["SECRET_KEY"])
    notice = _first_run_notice(app, "0.0.0.0", 8000)
    assert f"http://127.0.0.1:8000/admin/setup?token={token}" in notice and "this server's address" in notice
    assert "personalize create-admin" in notice
    app.config["PUBLIC_URL"] = "https://personalize.shop.example"
    assert f"https://personalize.shop.example/admin/setup?token={token}\n" in _first_run_notice(app, "0.0.0.0", 8000)
    create_admin_user("first@shop.example", PASSWORD, "owner")
    assert _first_run_notice(app, "0.0.0.0", 8000) is None


def test_the_console_notice_on_a_database_without_schema_says_what_to_run(tmp_path):
    from personalize.app import create_app
    from personalize.cli import _first_run_notice
    from personalize.db import db
    from personalize.testing import app_config, fresh_database

    with fresh_database(tmp_path) as url:
        app = create_app(app_config(tmp_path, url, AUTO_MIGRATE=False))
        with app.app_context():
            notice = _first_run_notice(app, "127.0.0.1", 5000)
            db.session.remove()
            db.engine.dispose()
    assert notice.startswith("warning: cannot read the admin accounts") and "personalize db upgrade" in notice
