"""Profiles of a site: search by email or id, the 360° view (identities, attributes with their
source, timeline, scores, segments, what we would recommend now), export and erase."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for

from ..catalog import products_by_ids
from ..catalog.currency import site_currency
from ..insights import profile_in_holdout
from ..insights.computed import profile_scores, recent_events, recent_profiles
from ..journeys.report import journeys_of_profile
from ..models import Site
from ..profiles import attributes_of, erase_profile, export_profile
from ..profiles.identity import VISITOR
from ..profiles.merge import resolve_profile_id
from ..profiles.orders import orders_of
from ..profiles.privacy import identities_by_kind, timeline_summary
from ..recommend.service import recommend_for
from ..segments.store import segments_of_profile
from ..validation import json_text
from . import SITE_TABS, bp
from .access import found, site_page
from .journeys import STEP_LABELS
from .lookup import find_profile

SITE_TABS.append({"endpoint": "admin.profiles", "label": "Profiles", "order": 3})


@bp.get("/sites/<int:site_id>/profiles")
@site_page()
def profiles(s: Site):
    query = request.args.get("q", "").strip()
    if query:
        found = find_profile(s.id, query)
        if found is not None:
            return redirect(url_for("admin.profile", site_id=s.id, profile_id=found.profile_id))
        flash(f"No profile has the email, visitor id, customer id or profile id {query!r}.", "error")
    return render_template("admin/profiles.html", site=s, query=query, recent=recent_profiles(s.id))


@bp.get("/sites/<int:site_id>/profiles/<int:profile_id>")
@site_page()
def profile(s: Site, profile_id: int):
    live = found(resolve_profile_id(s.id, profile_id), "profile (it may have been erased)")
    if live != profile_id:  # merged into another profile
        return redirect(url_for("admin.profile", site_id=s.id, profile_id=live))
    identities = identities_by_kind(profile_id)
    visitors = identities.get(VISITOR) or []
    visitor = visitors[-1] if visitors else None
    recs = recommend_for(s, visitor, "home", 8) if visitor else None
    events = recent_events(s.id, profile_id)
    orders = orders_of(s.id, profile_id)
    shown = [e["product_id"] for e in events if e["product_id"]] + [line["product_id"] for o in orders for line in o["lines"]]
    titles = {pid: p.title for pid, p in products_by_ids(s.id, shown).items()}
    return render_template(
        "admin/profile.html", site=s, profile_id=profile_id, identities=identities, attributes=attributes_of(profile_id),
        summary=timeline_summary(s.id, profile_id), events=events, titles=titles, scores=profile_scores(profile_id),
        segments=segments_of_profile(profile_id), recs=recs, visitor=visitor, held=profile_in_holdout(s, profile_id),
        orders=orders, site_currency=site_currency(s),
        journeys=journeys_of_profile(profile_id), step_labels=STEP_LABELS,
    )


@bp.get("/sites/<int:site_id>/profiles/<int:profile_id>/export")
@site_page(edit=True)
def profile_export(s: Site, profile_id: int):
    data = found(export_profile(s.id, profile_id), "profile")
    body = json_text(data, indent=2, default=str)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="profile-{profile_id}.json"'})


@bp.post("/sites/<int:site_id>/profiles/<int:profile_id>/erase")
@site_page(edit=True)
def profile_erase(s: Site, profile_id: int):
    if request.form.get("confirm") != "erase":
        flash("Tick the box to confirm: erasing cannot be undone.", "error")
        return redirect(url_for("admin.profile", site_id=s.id, profile_id=profile_id))
    found(erase_profile(s.id, profile_id), "profile")
    flash(f"Profile {profile_id} and everything stored about it were erased.", "ok")
    return redirect(url_for("admin.profiles", site_id=s.id))
