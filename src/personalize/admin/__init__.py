"""The admin web pages (server-rendered): sign-in, team, sites, recommendations, test and learn,
connectors, segments, profiles and plugins."""

from __future__ import annotations

import hmac
import secrets

from flask import Blueprint, Flask, abort, g, request, session

from ..db import db
from ..models import AdminUser

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static")

#: Extra tabs of a site's pages, added by the modules that build them: {"endpoint", "label", "order"}.
SITE_TABS: list[dict[str, str]] = []


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return token


def _check_csrf() -> None:
    sent = request.form.get("csrf_token", "") or request.headers.get("X-CSRF-Token", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, "The form expired or did not come from this site; reload the page and try again.")


@bp.before_request
def _load_admin():
    """Who is signed in: the server-side session the cookie's token names, and its account as it is now
    (role and granted sites are read afresh on every request)."""
    from .sessions import TOKEN_KEY, find_session

    token = session.get(TOKEN_KEY)
    row = find_session(token) if token else None
    g.admin_session = row
    g.admin = db.session.get(AdminUser, row.user_id) if row is not None else None
    if token and g.admin is None:  # signed out elsewhere, expired, password changed or account removed
        session.pop(TOKEN_KEY, None)
        g.session_ended = True
    if request.method == "POST":
        _check_csrf()


@bp.errorhandler(400)
@bp.errorhandler(401)
def _refused(exc):
    """Refused forms get an admin page, not a bare error (the status stays)."""
    from flask import render_template

    message = {401: "Your session has ended: sign in again."}.get(exc.code, exc.description)
    return render_template("admin/message.html", message=message), exc.code


@bp.after_request
def _no_framing(response):
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data: http: https:; frame-ancestors 'none'"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"  # the setup page's token never leaves in a Referer
    return response


def init_app(app: Flask) -> None:
    # the pages import the domain services; loading them here keeps ``personalize.admin.models``
    # importable by the schema without pulling in the whole application
    from . import (  # noqa: F401  (routes register on bp)
        account,
        connectors,
        dashboard,
        experiments,
        journeys,
        merchandising,
        plugins,
        profiles,
        recommendations,
        segments,
        team,
        views,
    )
    from .formatting import register_filters

    SITE_TABS.sort(key=lambda tab: tab.get("order", 99))

    # the admin session cookie: never sent on cross-site requests, and only over HTTPS when the server is
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if str(app.config.get("PUBLIC_URL") or "").startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.register_blueprint(bp)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["admin_site_tabs"] = SITE_TABS
    register_filters(app)
