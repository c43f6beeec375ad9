"""Sign-in, first-run set-up, the admin's own account, and the sites: create, rename, keys,
allowed origins, the snippet and a live check that it is sending events."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from ..catalog import count_products
from ..db import db
from ..insights.report import live_status
from ..limits import sign_in_wait
from ..models import Site
from ..recommend.service import latest_version
from ..sites import (
    SiteError,
    create_site,
    rotate_secret_keys,
    secret_key_prefixes,
    set_allowed_origins,
)
from . import bp
from .access import can_edit, denied, grant, login_required, site_page, visible_sites
from .formatting import sentence
from .users import (
    AdminUserError,
    authenticate,
    change_password,
    count_admin_users,
    create_admin_user,
)


def snippet(site, base_url: str) -> str:
    base = base_url.rstrip("/")
    return (
        '<div data-personalize-slot="home" data-limit="8" style="min-height:360px">\n'
        "  <!-- your own fallback HTML: it stays if anything goes wrong -->\n"
        "</div>\n"
        f'<script async src="{base}/static/widget.js" data-shop="{site.public_key}" data-consent="implied"></script>'
    )


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/admin") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("admin.index")


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
                flash("Password changed.", "ok")
                return redirect(url_for("admin.account"))
    return render_template("admin/account.html", error=error), (400 if error else 200)


@bp.get("/")
@login_required
def index():
    return render_template("admin/index.html", sites=visible_sites(g.admin))


def _base_url() -> str:
    return current_app.config.get("PUBLIC_URL") or request.host_url


@bp.get("/sites/<int:site_id>")
@site_page()
def site(s: Site):
    return render_template(
        "admin/site.html", site=s, snippet=snippet(s, _base_url()), keys=secret_key_prefixes(s),
        products=count_products(s.id), model=latest_version(s.id), new_secret=session.pop("new_secret", None),
        live=live_status(s.id), signing=session.pop("signing_secret", None),
    )


@bp.get("/sites/<int:site_id>/live")
@site_page()
def live(s: Site):
    """The live check the site page polls: is the snippet sending events?"""
    status = live_status(s.id)
    last = status["last_event_at"]
    return jsonify(
        last_event_at=last.isoformat() + "Z" if last else None, last_event_type=status["last_event_type"],
        events_last_hour=status["events_last_hour"], seconds_ago=status["seconds_ago"],
    )


@bp.post("/sites")
@login_required
def create():
    if not can_edit(g.admin):
        return denied()
    try:
        s, secret = create_site(request.form.get("name", ""), request.form.get("allowed_origins", "").split())
    except SiteError as exc:
        flash(sentence(exc), "error")
        return redirect(url_for("admin.index"))
    if g.admin.role != "owner":  # an editor keeps access to the site they created
        grant(g.admin.id, s.id)
        db.session.commit()
    session["new_secret"] = secret
    return redirect(url_for("admin.site", site_id=s.id))


@bp.post("/sites/<int:site_id>/rename")
@site_page(edit=True)
def rename(s: Site):
    name = request.form.get("name", "").strip()
    if not name or len(name) > 200:
        flash("A site needs a name of at most 200 characters.", "error")
    elif db.session.scalar(select(Site.id).where(Site.name == name, Site.id != s.id)) is not None:
        flash(f"A site named {name!r} exists already.", "error")
    else:
        s.name = name
        db.session.commit()
        flash("Site renamed.", "ok")
    return redirect(url_for("admin.site", site_id=s.id))


@bp.post("/sites/<int:site_id>/origins")
@site_page(edit=True)
def origins(s: Site):
    try:
        set_allowed_origins(s, request.form.get("allowed_origins", "").split())
        flash("Allowed origins saved.", "ok")
    except SiteError as exc:
        db.session.rollback()
        flash(sentence(exc), "error")
    return redirect(url_for("admin.site", site_id=s.id))


@bp.post("/sites/<int:site_id>/rotate")
@site_page(owner=True)
def rotate(s: Site):
    session["new_secret"] = rotate_secret_keys(s)
    return redirect(url_for("admin.site", site_id=s.id))


@bp.post("/sites/<int:site_id>/signing-secret")
@site_page(owner=True)
def signing(s: Site):
    """Show (or, with ``rotate``, replace) the secret a shop's server signs identify calls with."""
    from ..profiles.trust import rotate_signing_secret, signing_secret

    rotate = request.form.get("rotate") == "1"
    session["signing_secret"] = rotate_signing_secret(s.id) if rotate else signing_secret(s.id)
    if rotate:
        flash("New signing secret: identify calls signed with the old one are now treated as unproven claims.", "ok")
    return redirect(url_for("admin.site", site_id=s.id) + "#signing")


@bp.get("/settings")
@login_required
def server_settings():
    """The server's own settings (read-only: they come from personalize.toml and the environment)."""
    if g.admin.role != "owner":
        return denied("Only an owner may see the server settings.")
    from ..config import SETTINGS

    rows = [(name, _shown(name, current_app.config.get(name)), default, help_) for name, (default, help_) in SETTINGS.items()]
    return render_template("admin/settings.html", rows=rows)


def _shown(name: str, value) -> str:
    """A setting's value as safe to show: keys hidden, passwords in URLs masked."""
    if value is None:
        return "(default)"
    if name in ("SECRET_KEY", "ENCRYPTION_KEY"):
        return "(set)"
    text = str(value)
    if "://" in text:
        parts = urlsplit(text)
        if parts.password:
            text = text.replace(f":{parts.password}@", ":•••@")
    return text
