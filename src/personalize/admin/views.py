"""The sites: create, rename, keys, allowed origins, the snippet and a live check that it is sending events."""

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
    url_for,
)

from ..catalog import count_products
from ..catalog.currency import (
    CurrencyError,
    catalog_gaps,
    currency_source,
    infer_currency,
    set_site_currency,
    site_currency,
)
from ..db import db
from ..insights.report import live_status
from ..models import Site, utcnow
from ..recommend.service import latest_version
from ..refusals import recent_refusals
from ..sites import (
    SiteError,
    clean_site_name,
    create_site,
    rotate_secret_keys,
    secret_key_prefixes,
    set_allowed_origins,
    sites_named,
)
from . import bp
from .access import can_edit, denied, grant, login_required, site_ids_for, site_page, visible_sites
from .formatting import sentence
from .labels import event_label
from .sessions import stash_secret, take_secret


def snippet(site, base_url: str) -> str:
    base = base_url.rstrip("/")
    return (
        '<div data-personalize-slot="home" data-limit="8" style="min-height:360px">\n'
        "  <!-- your own fallback HTML: it stays if anything goes wrong -->\n"
        "</div>\n"
        f'<script async src="{base}/static/widget.js" data-shop="{site.public_key}" data-consent="implied"></script>'
    )


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
        products=count_products(s.id), model=latest_version(s.id), new_secret=take_secret(g.admin_session, "secret_key", s.id),
        live=live_status(s.id), signing=take_secret(g.admin_session, "signing_secret", s.id),
        refused=recent_refusals(s.id), currency=site_currency(s), currency_source=currency_source(s),
        suggested=None if site_currency(s) else infer_currency(s.id), gaps=catalog_gaps(s.id),
    )


@bp.get("/sites/<int:site_id>/live")
@site_page()
def live(s: Site):
    """The live check the site page polls: is the snippet sending events, and were requests refused (and why)?"""
    status = live_status(s.id)
    last = status["last_event_at"]
    now = utcnow()
    return jsonify(
        last_event_at=last.isoformat() + "Z" if last else None, last_event_type=status["last_event_type"], last_event_label=event_label(status["last_event_type"]) if status["last_event_type"] else None,
        events_last_hour=status["events_last_hour"], seconds_ago=status["seconds_ago"],
        refused=[
            {"origin": r["origin"], "reason": r["reason"], "meaning": r["meaning"], "message": r["message"], "count": r["count"],
             "last_at": r["last_at"].isoformat() + "Z", "seconds_ago": int((now - r["last_at"]).total_seconds())}
            for r in recent_refusals(s.id)
        ],
    )


def _name_taken(name: str, site_id: int | None = None) -> bool:
    """Whether another site *this admin can see* has ``name``. Names are not unique across tenants:
    refusing one that only a site hidden from the admin has would tell them it exists."""
    return any(other.id != site_id for other in sites_named(name, among=site_ids_for(g.admin)))


@bp.post("/sites")
@login_required
def create():
    if not can_edit(g.admin):
        return denied()
    try:
        name = clean_site_name(request.form.get("name", ""))
        if _name_taken(name):
            raise SiteError("name", f"you have a site named {name!r} already; choose another name")
        s, secret = create_site(name, request.form.get("allowed_origins", "").split())
    except SiteError as exc:
        flash(sentence(exc), "error")
        return redirect(url_for("admin.index"))
    if g.admin.role != "owner":  # an editor keeps access to the site they created
        grant(g.admin.id, s.id)
        db.session.commit()
    stash_secret(g.admin_session, "secret_key", s.id, secret)
    return redirect(url_for("admin.site", site_id=s.id))


@bp.post("/sites/<int:site_id>/rename")
@site_page(edit=True)
def rename(s: Site):
    try:
        name = clean_site_name(request.form.get("name", ""))
    except SiteError:
        flash("A site needs a name of at most 200 characters.", "error")
        return redirect(url_for("admin.site", site_id=s.id))
    if _name_taken(name, s.id):
        flash(f"You have a site named {name!r} already; choose another name.", "error")
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


@bp.post("/sites/<int:site_id>/currency")
@site_page(edit=True)
def currency(s: Site):
    """Set (or, empty, clear) the currency prices are shown in when a product has none of its own."""
    try:
        code = set_site_currency(s, request.form.get("currency", ""))
        flash(f"Prices without a currency of their own are now shown in {code}." if code else
              "Currency cleared: prices without a currency of their own are shown as plain numbers.", "ok")
    except CurrencyError as exc:
        db.session.rollback()
        flash(sentence(exc), "error")
    return redirect(url_for("admin.site", site_id=s.id) + "#currency")


@bp.post("/sites/<int:site_id>/rotate")
@site_page(owner=True)
def rotate(s: Site):
    stash_secret(g.admin_session, "secret_key", s.id, rotate_secret_keys(s))
    return redirect(url_for("admin.site", site_id=s.id))


@bp.post("/sites/<int:site_id>/signing-secret")
@site_page(owner=True)
def signing(s: Site):
    """Show (or, with ``rotate``, replace) the secret a shop's server signs identify calls with."""
    from ..profiles.trust import rotate_signing_secret, signing_secret

    rotate = request.form.get("rotate") == "1"
    stash_secret(g.admin_session, "signing_secret", s.id, rotate_signing_secret(s.id) if rotate else signing_secret(s.id))
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
    from ..config import secret_setting

    if secret_setting(name):  # SECRET_KEY, ENCRYPTION_KEY, METRICS_TOKEN…
        return "(set)"
    text = str(value)
    if "://" in text:
        parts = urlsplit(text)
        if parts.password:
            text = text.replace(f":{parts.password}@", ":•••@")
    return text
