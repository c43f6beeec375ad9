"""Who may see and change what.

* ``viewer``: reads the sites they were given, changes nothing.
* ``editor``: also changes the settings of the sites they were given, and creates sites.
* ``owner``: every site, plus the team (users, roles, site access) and secret keys.

A site an admin may not see answers 404, exactly like a site that does not exist, so
nothing about other shops leaks through ids.
"""

from __future__ import annotations

from functools import wraps
from typing import NoReturn, TypeVar

from flask import abort, flash, g, make_response, redirect, render_template, request, url_for
from sqlalchemy import delete, select

from ..db import db
from ..models import AdminUser, Site
from ..sites import get_site
from .models import AdminSiteAccess

EDIT_ROLES = ("owner", "editor")

T = TypeVar("T")


def is_owner(user: AdminUser) -> bool:
    return user.role == "owner"


def can_edit(user: AdminUser) -> bool:
    return user.role in EDIT_ROLES


def site_ids_for(user: AdminUser) -> set[int] | None:
    """The ids of the sites ``user`` may see; ``None`` means all (an owner)."""
    if is_owner(user):
        return None
    return granted_site_ids(user)


def granted_site_ids(user: AdminUser) -> set[int]:
    """The sites ticked for ``user`` (whatever their role)."""
    return set(db.session.scalars(select(AdminSiteAccess.site_id).where(AdminSiteAccess.user_id == user.id)))


def visible_sites(user: AdminUser) -> list[Site]:
    q = select(Site).order_by(Site.id)
    ids = site_ids_for(user)
    if ids is not None:
        q = q.where(Site.id.in_(ids or [-1]))
    return list(db.session.scalars(q))


def may_see(user: AdminUser, site_id: int) -> bool:
    ids = site_ids_for(user)
    return ids is None or site_id in ids


def grant(user_id: int, site_id: int) -> None:
    if db.session.get(AdminSiteAccess, (user_id, site_id)) is None:
        db.session.add(AdminSiteAccess(user_id=user_id, site_id=site_id))


def set_site_access(user: AdminUser, site_ids: set[int]) -> None:
    """Replace the sites ``user`` may see with ``site_ids`` and commit."""
    db.session.execute(delete(AdminSiteAccess).where(AdminSiteAccess.user_id == user.id))
    for site_id in sorted(site_ids):
        db.session.add(AdminSiteAccess(user_id=user.id, site_id=site_id))
    db.session.commit()


def denied(message: str = "Your role may not change settings."):
    return render_template("admin/message.html", message=message), 403


def not_found(what: str) -> NoReturn:
    """Stop the view with the 404 page "No such <what>."."""
    abort(make_response(render_template("admin/message.html", message=f"No such {what}."), 404))


def found(row: T | None, what: str) -> T:
    """``row``, or the 404 page "No such <what>." when the lookup (already limited to the
    admin's site) found nothing."""
    if row is None:
        not_found(what)
    return row


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("admin") is None:
            if request.method == "GET":
                if g.get("session_ended"):
                    flash("Your session has ended: sign in again.", "error")
                return redirect(url_for("admin.login", next=request.path))
            abort(401)
        return view(*args, **kwargs)

    return wrapped


def site_page(edit: bool = False, owner: bool = False):
    """For views of ``/sites/<site_id>/…``: sign-in, the site's visibility and the role.

    The view receives the :class:`Site` instead of its id. ``edit`` requires an editor
    or owner, ``owner`` an owner; a site the admin may not see is a 404.
    """

    def decorate(view):
        @wraps(view)
        @login_required
        def wrapped(site_id: int, *args, **kwargs):
            site = get_site(site_id)
            if site is None or not may_see(g.admin, site_id):
                not_found("site")
            if owner and not is_owner(g.admin):
                return denied("Only an owner may do this.")
            if edit and not can_edit(g.admin):
                return denied()
            g.site = site
            return view(site, *args, **kwargs)

        return wrapped

    return decorate
