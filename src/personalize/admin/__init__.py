"""The admin web pages (server-rendered): sign-in and site settings."""

from __future__ import annotations

import hmac
import secrets
from functools import wraps

from flask import Blueprint, Flask, abort, g, redirect, request, session, url_for

from ..db import db
from ..models import AdminUser

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static")


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return token


def _check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, "The form expired or did not come from this site; reload the page and try again.")


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("admin") is None:
            return redirect(url_for("admin.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


@bp.before_request
def _load_admin():
    user_id = session.get("admin_id")
    g.admin = db.session.get(AdminUser, user_id) if user_id else None
    if request.method == "POST":
        _check_csrf()


@bp.after_request
def _no_framing(response):
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data: http: https:; frame-ancestors 'none'"
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.globals["csrf_token"] = csrf_token


from . import views  # noqa: E402,F401  (routes register on bp)
