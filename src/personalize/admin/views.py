"""Admin pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, session, url_for

from ..catalog import count_products
from ..recommend.service import latest_version
from ..sites import (
    SiteError,
    create_site,
    get_site,
    list_sites,
    rotate_secret_keys,
    secret_key_prefixes,
    set_allowed_origins,
)
from . import bp, login_required
from .users import AdminUserError, authenticate, count_admin_users, create_admin_user


def snippet(site, base_url: str) -> str:
    base = base_url.rstrip("/")
    return (
        '<div data-personalize-slot="home" data-limit="8" style="min-height:360px">\n'
        "  <!-- your own fallback HTML: it stays if anything goes wrong -->\n"
        "</div>\n"
        f'<script async src="{base}/static/widget.js" data-shop="{site.public_key}" data-consent="implied"></script>'
    )


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/admin") and not urlsplit(target).netloc:
        return target
    return url_for("admin.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if count_admin_users() == 0:
        return redirect(url_for("admin.setup"))
    error = None
    if request.method == "POST":
        user = authenticate(request.form.get("email", ""), request.form.get("password", ""))
        if user is None:
            error = "Wrong email or password."
        else:
            session.clear()
            session["admin_id"] = user.id
            return redirect(_safe_next(request.args.get("next")))
    return render_template("admin/login.html", error=error), (401 if error else 200)


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """First run: create the first (owner) account; closed once any account exists."""
    if count_admin_users() > 0:
        return redirect(url_for("admin.login"))
    error = None
    if request.method == "POST":
        try:
            user = create_admin_user(request.form.get("email", ""), request.form.get("password", ""), "owner")
        except AdminUserError as exc:
            error = str(exc)
        else:
            session.clear()
            session["admin_id"] = user.id
            return redirect(url_for("admin.index"))
    return render_template("admin/setup.html", error=error)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/")
@login_required
def index():
    sites = list_sites()
    return render_template("admin/index.html", sites=sites)


def _base_url() -> str:
    return current_app.config.get("PUBLIC_URL") or request.host_url


@bp.get("/sites/<int:site_id>")
@login_required
def site(site_id: int):
    s = get_site(site_id)
    if s is None:
        return render_template("admin/message.html", message="No such site."), 404
    return render_template(
        "admin/site.html", site=s, snippet=snippet(s, _base_url()), keys=secret_key_prefixes(s),
        products=count_products(s.id), model=latest_version(s.id), new_secret=session.pop("new_secret", None),
    )


def _can_edit() -> bool:
    return g.admin.role in ("owner", "editor")


@bp.post("/sites")
@login_required
def create():
    if not _can_edit():
        return render_template("admin/message.html", message="Your role may not change settings."), 403
    try:
        s, secret = create_site(request.form.get("name", ""), request.form.get("allowed_origins", "").split())
    except SiteError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.index"))
    session["new_secret"] = secret
    return redirect(url_for("admin.site", site_id=s.id))


@bp.post("/sites/<int:site_id>/origins")
@login_required
def origins(site_id: int):
    s = get_site(site_id)
    if s is None:
        return render_template("admin/message.html", message="No such site."), 404
    if not _can_edit():
        return render_template("admin/message.html", message="Your role may not change settings."), 403
    try:
        set_allowed_origins(s, request.form.get("allowed_origins", "").split())
        flash("Allowed origins saved.", "ok")
    except SiteError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.site", site_id=s.id))


@bp.post("/sites/<int:site_id>/rotate")
@login_required
def rotate(site_id: int):
    s = get_site(site_id)
    if s is None:
        return render_template("admin/message.html", message="No such site."), 404
    if g.admin.role != "owner":
        return render_template("admin/message.html", message="Only an owner may rotate keys."), 403
    session["new_secret"] = rotate_secret_keys(s)
    return redirect(url_for("admin.site", site_id=s.id))
