"""Signing in and out, the first run's owner account, and the admin's own account (password, sessions)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, url_for

from ..limits import sign_in_wait
from . import bp
from .access import login_required
from .first_run import setup_token_matches
from .formatting import sentence
from .sessions import end_sessions_of, renew, sessions_of, sign_in, sign_out
from .users import (
    AdminUserError,
    authenticate,
    change_password,
    count_admin_users,
    create_admin_user,
)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/admin") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("admin.index")


def _user_agent() -> str:
    return request.headers.get("User-Agent", "")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if count_admin_users() == 0:
        return redirect(url_for("admin.setup"))
    error = None
    if request.method == "POST":
        wait = sign_in_wait(request.form.get("email", ""))
        if wait is not None:  # the password is not even checked: guessing gets no answer
            error = f"Too many sign-in attempts. Try again in {wait} seconds."
            page = render_template("admin/login.html", error=error)
            return page, 429, {"Retry-After": str(wait)}
        user = authenticate(request.form.get("email", ""), request.form.get("password", ""))
        if user is None:
            error = "Wrong email or password."
        else:
            sign_in(user, _user_agent())
            return redirect(_safe_next(request.args.get("next")))
    return render_template("admin/login.html", error=error), (401 if error else 200)


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """First run: create the first (owner) account with the setup token printed by ``personalize serve``;
    closed once any account exists."""
    if count_admin_users() > 0:
        return redirect(url_for("admin.login"))
    token = request.values.get("token", "")
    if not setup_token_matches(current_app.config["SECRET_KEY"], token):
        return render_template("admin/setup_locked.html", wrong=bool(token)), 403
    error = None
    if request.method == "POST":
        try:
            user = create_admin_user(request.form.get("email", ""), request.form.get("password", ""), "owner")
        except AdminUserError as exc:
            error = str(exc)
        else:
            sign_in(user, _user_agent())
            return redirect(url_for("admin.index"))
    return render_template("admin/setup.html", error=error, token=token)


@bp.post("/logout")
def logout():
    sign_out()
    return redirect(url_for("admin.login"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    error = None
    if request.method == "POST":
        new = request.form.get("new_password", "")
        if new != request.form.get("repeat_password", ""):
            error = "The two new passwords differ."
        else:
            try:
                change_password(g.admin, request.form.get("current_password", ""), new)
            except AdminUserError as exc:
                error = sentence(exc)
            else:
                renew(g.admin, _user_agent())  # every older session of the account ends, this browser's too
                flash("Password changed. Every other browser signed in to your account was signed out.", "ok")
                return redirect(url_for("admin.account"))
    return render_template("admin/account.html", error=error, sessions=sessions_of(g.admin.id), current=g.admin_session), (
        400 if error else 200)


@bp.post("/account/sessions")
@login_required
def account_sessions():
    """Sign out every other browser signed in to this account."""
    ended = end_sessions_of(g.admin.id, keep=g.admin_session)
    flash(f"Signed out {ended} other session{'s' if ended != 1 else ''}." if ended else "No other session was open.", "ok")
    return redirect(url_for("admin.account"))
