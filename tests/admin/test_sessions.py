"""Admin sessions live on the server: a cookie is worth only as long as its session row.

Each test replays raw cookies the way an attacker who copied one would: a fresh client
given nothing but the old ``Set-Cookie`` value (and the CSRF token inside it, which
the cookie's owner could read).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select, text

from personalize.admin.models import AdminSession
from personalize.admin.users import get_admin_user
from personalize.db import db
from personalize.models import utcnow

from .conftest import PASSWORD, make_user, post, sign_in

NEW_PASSWORD = "a brand new password"


def cookie(client) -> str:
    return client.get_cookie("session").value


def decoded(app, value: str) -> dict:
    """The cookie's content, as anyone holding it can read it (it is signed, not encrypted)."""
    return app.session_interface.get_signing_serializer(app).loads(value)


def replay(app, value: str):
    """A new browser that holds nothing but a copied cookie."""
    client = app.test_client()
    client.set_cookie("session", value)
    return client


def sent_to_sign_in(response) -> bool:
    return response.status_code == 302 and "/admin/login" in response.headers["Location"]


def forged_post(app, value: str, path: str, data: dict):
    """POST with a copied cookie and the CSRF token it carries."""
    return replay(app, value).post(path, data={**data, "csrf_token": decoded(app, value)["csrf"]})


def session_rows(email: str) -> list[AdminSession]:
    db.session.expire_all()
    user = get_admin_user(email)
    return list(db.session.scalars(select(AdminSession).where(AdminSession.user_id == user.id))) if user else []


def test_the_cookie_carries_a_session_token_not_the_account_and_the_database_only_its_hash(app, client, owner):
    sign_in(client, *owner)
    client.get("/admin/")  # a page: its forms' CSRF token joins the cookie
    content = decoded(app, cookie(client))
    assert set(content) == {"sid", "csrf"}, content
    assert str(get_admin_user(owner[0]).id) not in content.values()
    (row,) = session_rows(owner[0])
    assert row.token_hash == hashlib.sha256(content["sid"].encode()).hexdigest()
    with db.engine.connect() as connection:
        dump = repr(connection.execute(text("SELECT * FROM admin_sessions")).all())
    assert content["sid"] not in dump


def test_a_removed_accounts_cookie_never_becomes_the_next_account(app, client, as_owner):
    removed = make_user("leaver@shop.example", "owner")  # the newest account: SQLite would hand its id out again
    removed_id = removed.id
    leaver = app.test_client()
    sign_in(leaver, "leaver@shop.example")
    assert leaver.get("/admin/team").status_code == 200
    copied = cookie(leaver)

    post(as_owner, f"/admin/team/{removed_id}/remove")
    assert get_admin_user("leaver@shop.example") is None
    assert session_rows("leaver@shop.example") == []
    assert db.session.scalar(select(AdminSession.id).where(AdminSession.user_id == removed_id)) is None, "removal ends every session"
    post(as_owner, "/admin/team", {"email": "newcomer@shop.example", "password": PASSWORD, "role": "owner"})
    newcomer = get_admin_user("newcomer@shop.example")
    assert newcomer.id != removed_id, "an id is never handed out twice"

    assert sent_to_sign_in(replay(app, copied).get("/admin/team"))
    r = forged_post(app, copied, "/admin/team", {"email": "intruder@shop.example", "password": PASSWORD, "role": "owner"})
    assert r.status_code == 401
    assert get_admin_user("intruder@shop.example") is None


def test_a_cookie_replayed_after_sign_out_is_refused(app, client, owner):
    sign_in(client, *owner)
    assert client.get("/admin/").status_code == 200
    copied = cookie(client)
    post(client, "/admin/logout")
    assert session_rows(owner[0]) == []

    assert sent_to_sign_in(replay(app, copied).get("/admin/"))
    r = forged_post(app, copied, "/admin/sites", {"name": "Made after sign-out"})
    assert r.status_code == 401
    from personalize.sites import get_site_by_name

    assert get_site_by_name("Made after sign-out") is None


def test_a_password_change_ends_every_other_session_and_the_changing_one_goes_on(app, owner):
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, *owner)
    sign_in(phone, *owner)
    laptop_before = cookie(laptop)
    r = post(laptop, "/admin/account", {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD})
    assert r.status_code == 302

    page = laptop.get("/admin/account")
    assert page.status_code == 200 and "Every other browser signed in to your account was signed out" in page.get_data(as_text=True)
    assert sent_to_sign_in(phone.get("/admin/")), "the older session ended"
    assert sent_to_sign_in(replay(app, laptop_before).get("/admin/")), "the changing browser got a new session; its old cookie ended"
    assert len(session_rows(owner[0])) == 1
    assert sign_in(phone, owner[0], NEW_PASSWORD).status_code == 302


def test_a_wrong_current_password_ends_nothing(app, owner):
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, *owner)
    sign_in(phone, *owner)
    r = post(laptop, "/admin/account", {"current_password": "not the password", "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD})
    assert r.status_code == 400
    assert phone.get("/admin/").status_code == 200 and laptop.get("/admin/").status_code == 200


def test_sign_out_everywhere_else(app, owner):
    laptop, phone, tablet = app.test_client(), app.test_client(), app.test_client()
    for c in (laptop, phone, tablet):
        sign_in(c, *owner)
    page = laptop.get("/admin/account").get_data(as_text=True)
    assert page.count("<tr") == 4 and "(this browser)" in page  # a header and three sessions
    r = post(laptop, "/admin/account/sessions", follow_redirects=True)
    assert "Signed out 2 other sessions." in r.get_data(as_text=True)
    assert sent_to_sign_in(phone.get("/admin/")) and sent_to_sign_in(tablet.get("/admin/"))
    assert laptop.get("/admin/").status_code == 200


def test_a_role_change_counts_from_the_next_request(app, as_owner, site):
    """Roles and granted sites are read from the account on every request, never kept in the session."""
    user = make_user("colleague@shop.example", "owner")
    colleague = app.test_client()
    sign_in(colleague, "colleague@shop.example")
    assert colleague.get("/admin/team").status_code == 200

    post(as_owner, f"/admin/team/{user.id}", {"role": "viewer", "sites": [str(site.id)]})
    assert colleague.get("/admin/team").status_code == 403
    assert colleague.get(f"/admin/sites/{site.id}").status_code == 200
    assert post(colleague, f"/admin/sites/{site.id}/rotate").status_code == 403
    post(as_owner, f"/admin/team/{user.id}", {"role": "viewer"})  # no site any more
    assert colleague.get(f"/admin/sites/{site.id}").status_code == 404
    post(as_owner, f"/admin/team/{user.id}", {"role": "editor", "sites": [str(site.id)]})
    r = post(colleague, f"/admin/sites/{site.id}/origins", {"allowed_origins": "https://new.example"})
    assert r.status_code == 302


def _set_times(email: str, **ago: timedelta) -> None:
    (row,) = session_rows(email)
    for column, delta in ago.items():
        setattr(row, column, utcnow() - delta)
    db.session.commit()


def test_an_idle_session_ends(app, client, owner):
    sign_in(client, *owner)
    _set_times(owner[0], last_seen_at=timedelta(minutes=app.config["ADMIN_SESSION_IDLE_MINUTES"] + 1))
    r = client.get("/admin/sites")
    assert sent_to_sign_in(client.get("/admin/"))
    assert "Your session has ended: sign in again." in client.get(r.headers.get("Location") or "/admin/login").get_data(as_text=True)
    assert session_rows(owner[0]) == [], "the expired row is deleted"


def test_use_keeps_a_session_alive_until_its_lifetime_ends(app, client, owner):
    sign_in(client, *owner)
    _set_times(owner[0], last_seen_at=timedelta(minutes=app.config["ADMIN_SESSION_IDLE_MINUTES"] - 5))
    assert client.get("/admin/").status_code == 200
    (row,) = session_rows(owner[0])
    assert utcnow() - row.last_seen_at < timedelta(minutes=1), "a request counts as use"

    _set_times(owner[0], created_at=timedelta(hours=app.config["ADMIN_SESSION_MAX_HOURS"], minutes=1))
    assert sent_to_sign_in(client.get("/admin/")), "however busy, a session ends ADMIN_SESSION_MAX_HOURS after sign-in"
    r = client.post("/admin/sites", data={"name": "Late", "csrf_token": decoded(app, cookie(client)).get("csrf", "")})
    assert r.status_code in (400, 401)


def test_the_lifetimes_are_settings(app, client, owner):
    app.config.update(ADMIN_SESSION_IDLE_MINUTES=5, ADMIN_SESSION_MAX_HOURS=0)
    sign_in(client, *owner)
    _set_times(owner[0], created_at=timedelta(days=300), last_seen_at=timedelta(minutes=4))
    assert client.get("/admin/").status_code == 200, "0: no absolute lifetime"
    _set_times(owner[0], last_seen_at=timedelta(minutes=6))
    assert sent_to_sign_in(client.get("/admin/"))
    app.config.update(ADMIN_SESSION_IDLE_MINUTES=0)
    sign_in(client, *owner)
    _set_times(owner[0], last_seen_at=timedelta(days=30))
    assert client.get("/admin/").status_code == 200, "0: no idle timeout"


def test_signing_in_clears_out_expired_sessions(app, owner):
    old = app.test_client()
    sign_in(old, *owner)
    _set_times(owner[0], created_at=timedelta(days=3), last_seen_at=timedelta(days=3))
    sign_in(app.test_client(), *owner)
    assert len(session_rows(owner[0])) == 1


def test_a_tampered_or_foreign_cookie_signs_nobody_in(app, client, owner, tmp_path):
    from personalize.app import create_app
    from personalize.testing import app_config

    sign_in(client, *owner)
    value = cookie(client)
    assert client.get("/admin/").status_code == 200
    assert sent_to_sign_in(replay(app, value[:-2] + ("AA" if not value.endswith("AA") else "BB")).get("/admin/"))
    # a cookie made with another server's key, for a session token that looks right
    other = create_app(app_config(tmp_path / "other", app.config["DATABASE_URL"], AUTO_MIGRATE=False, SECRET_KEY="another key " * 4))
    forged = other.session_interface.get_signing_serializer(other).dumps({"sid": decoded(app, value)["sid"], "csrf": "x"})
    assert sent_to_sign_in(replay(app, forged).get("/admin/"))
    with other.app_context():
        db.engine.dispose()


def test_signing_in_again_ends_the_browsers_previous_session(app, client, owner):
    sign_in(client, *owner)
    client.get("/admin/")
    first = cookie(client)
    sign_in(client, *owner)
    assert len(session_rows(owner[0])) == 1
    assert sent_to_sign_in(replay(app, first).get("/admin/"))
