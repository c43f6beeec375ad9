"""The team page (owners only): accounts, roles and which sites each editor or viewer may see."""

from __future__ import annotations

from functools import wraps

from flask import flash, g, redirect, render_template, request, session, url_for

from ..db import db
from ..models import AdminUser
from ..sites import list_sites
from ..validation import whole_number
from . import bp
from .access import denied, found, granted_site_ids, is_owner, login_required, set_site_access
from .formatting import sentence
from .users import (
    ROLES,
    AdminUserError,
    create_admin_user,
    list_admin_users,
    remove_admin_user,
    set_role,
)


def team_page(view):
    """Sign-in and the owner check for the team's views; a view of ``/team/<user_id>…``
    receives the :class:`AdminUser` instead of its id (404 when there is no such user)."""

    @wraps(view)
    @login_required
    def wrapped(**kwargs):
        if not is_owner(g.admin):
            return denied("Only an owner may manage the team.")
        if "user_id" in kwargs:
            kwargs["user"] = found(db.session.get(AdminUser, kwargs.pop("user_id")), "user")
        return view(**kwargs)

    return wrapped


def _refused(exc: AdminUserError):
    """A change to an account the rules refused (the last owner…): undone, and said on the team page."""
    db.session.rollback()
    flash(sentence(exc), "error")
    return redirect(url_for("admin.team"))


def _site_choice() -> set[int]:
    known = {s.id for s in list_sites()}
    return {whole_number(v) for v in request.form.getlist("sites") if whole_number(v) in known}


@bp.get("/team")
@team_page
def team():
    users = list_admin_users()
    access = {u.id: granted_site_ids(u) for u in users}
    return render_template("admin/team.html", users=users, access=access, sites=list_sites(), roles=ROLES)


@bp.post("/team")
@team_page
def team_add():
    try:
        user = create_admin_user(request.form.get("email", ""), request.form.get("password", ""), request.form.get("role", "viewer"))
    except AdminUserError as exc:
        flash(sentence(exc), "error")
        return redirect(url_for("admin.team"))
    set_site_access(user, _site_choice())
    flash(f"{user.email} can now sign in as {user.role}. Give them their password in person or by a safe channel.", "ok")
    return redirect(url_for("admin.team"))


@bp.post("/team/<int:user_id>")
@team_page
def team_update(user: AdminUser):
    try:
        set_role(user, request.form.get("role", user.role))
    except AdminUserError as exc:
        return _refused(exc)
    set_site_access(user, _site_choice())
    flash(f"{user.email} saved.", "ok")
    return redirect(url_for("admin.team"))


@bp.post("/team/<int:user_id>/remove")
@team_page
def team_remove(user: AdminUser):
    try:
        remove_admin_user(user)
    except AdminUserError as exc:
        return _refused(exc)
    flash(f"{user.email} removed.", "ok")
    if user.id == g.admin.id:
        session.clear()
        return redirect(url_for("admin.login"))
    return redirect(url_for("admin.team"))
