"""The team page (owners only): accounts, roles and which sites each editor or viewer may see."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for

from ..db import db
from ..models import AdminUser
from ..sites import list_sites
from . import bp
from .access import denied, granted_site_ids, login_required, set_site_access
from .formatting import sentence
from .users import (
    ROLES,
    AdminUserError,
    create_admin_user,
    list_admin_users,
    remove_admin_user,
    set_role,
)


def _owner_only():
    return None if g.admin.role == "owner" else denied("Only an owner may manage the team.")


def _site_choice() -> set[int]:
    known = {s.id for s in list_sites()}
    return {int(v) for v in request.form.getlist("sites") if v.isdigit() and int(v) in known}


@bp.get("/team")
@login_required
def team():
    if (refused := _owner_only()) is not None:
        return refused
    users = list_admin_users()
    access = {u.id: granted_site_ids(u) for u in users}
    return render_template("admin/team.html", users=users, access=access, sites=list_sites(), roles=ROLES)


@bp.post("/team")
@login_required
def team_add():
    if (refused := _owner_only()) is not None:
        return refused
    try:
        user = create_admin_user(request.form.get("email", ""), request.form.get("password", ""), request.form.get("role", "viewer"))
    except AdminUserError as exc:
        flash(sentence(exc), "error")
        return redirect(url_for("admin.team"))
    set_site_access(user, _site_choice())
    flash(f"{user.email} can now sign in as {user.role}. Give them their password in person or by a safe channel.", "ok")
    return redirect(url_for("admin.team"))


@bp.post("/team/<int:user_id>")
@login_required
def team_update(user_id: int):
    if (refused := _owner_only()) is not None:
        return refused
    user = db.session.get(AdminUser, user_id)
    if user is None:
        return render_template("admin/message.html", message="No such user."), 404
    try:
        set_role(user, request.form.get("role", user.role))
    except AdminUserError as exc:
        db.session.rollback()
        flash(sentence(exc), "error")
        return redirect(url_for("admin.team"))
    set_site_access(user, _site_choice())
    flash(f"{user.email} saved.", "ok")
    return redirect(url_for("admin.team"))


@bp.post("/team/<int:user_id>/remove")
@login_required
def team_remove(user_id: int):
    if (refused := _owner_only()) is not None:
        return refused
    user = db.session.get(AdminUser, user_id)
    if user is None:
        return render_template("admin/message.html", message="No such user."), 404
    try:
        remove_admin_user(user)
    except AdminUserError as exc:
        db.session.rollback()
        flash(sentence(exc), "error")
    else:
        flash(f"{user.email} removed.", "ok")
        if user.id == g.admin.id:
            session.clear()
            return redirect(url_for("admin.login"))
    return redirect(url_for("admin.team"))
