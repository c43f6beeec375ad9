"""Segments of a site: a rule builder over the segment rule tree (with a live count of the
profiles it matches), the members of each segment, and the computed segments with their sizes."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import current_app, flash, g, jsonify, redirect, render_template, request, url_for

from .. import jobs
from ..catalog import categories
from ..db import db
from ..insights.computed import attribute_names, computed_segments
from ..models import Site
from ..records import EVENT_TYPES
from ..segments.bulk import members_page, preview_count
from ..segments.policy import get_policies, set_policy
from ..segments.rules import (
    CATEGORY_PROPENSITY,
    MAX_CATEGORY,
    NO_VALUE,
    OPS,
    ORDER_FIELDS,
    PROFILE_FIELDS,
    SCORE_FIELDS,
    field_kind,
)
from ..segments.store import (
    all_segments,
    create_segment,
    delete_segment,
    get_segment,
    update_segment,
)
from ..validation import InvalidInput, whole_number
from . import SITE_TABS, bp
from .access import can_edit, denied, found, site_page
from .labels import event_label

SITE_TABS.append({"endpoint": "admin.segments", "label": "Segments", "order": 2})
log = logging.getLogger(__name__)

CONDITION_ROWS = 6
BEHAVIOUR_ROWS = 2
LIST_OPS = {"in", "not_in", "has_any", "has_all", "has_none"}
OP_LABELS = {
    "eq": "is", "neq": "is not", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "between": "between (a, b)",
    "in": "is one of (a, b, …)", "not_in": "is none of", "contains": "contains", "starts_with": "starts with",
    "exists": "is set", "missing": "is not set", "has_any": "has any of", "has_all": "has all of", "has_none": "has none of",
    "within_days": "within the last … days", "older_than_days": "more than … days ago",
}
BEHAVIOUR_EVENTS = (*EVENT_TYPES, "purchased")


CATEGORY_FIELDS_SHOWN = 100  # the builder's suggestions; any category can still be typed


def field_names(site_id: int) -> list[str]:
    likely = [f"{CATEGORY_PROPENSITY}{c}" for c in categories(site_id)[:CATEGORY_FIELDS_SHOWN] if len(c) <= MAX_CATEGORY]
    return [*PROFILE_FIELDS, *ORDER_FIELDS, *(f"scores.{n}" for n in SCORE_FIELDS), *likely,
            *(f"attributes.{n}" for n in attribute_names(site_id))]


FIELD_LABELS = {
    "profile.email": "Email address", "profile.customer_id": "Customer id in your shop", "profile.created_at": "First seen (date)",
    "profile.last_seen_at": "Last seen (date)", "orders.count": "Number of orders", "orders.total": "Total spent",
    "orders.avg": "Average order value", "orders.first_at": "First order (date)", "orders.last_at": "Last order (date)",
    "scores.rfm_segment": "RFM class (e.g. Champions, At risk)", "scores.cluster_name": "Customer group (cluster)",
    "scores.value": "Expected value, next 12 months", "scores.attrition": "Chance they stopped buying (0-1)",
    "scores.potential": "Potential", "scores.order_propensity": "Chance of ordering in the next 30 days (0-1)",
    "scores.recency_days": "Days since the last order", "scores.total_spent": "Total spent (scores)",
}


def field_label(name: str) -> str:
    """What the builder's field suggestions say next to the field's name."""
    if name in FIELD_LABELS:
        return FIELD_LABELS[name]
    if name.startswith(CATEGORY_PROPENSITY):
        return f"Chance of buying in {name[len(CATEGORY_PROPENSITY):]} (0-1)"
    if name.startswith("attributes."):
        return f"Profile attribute {name[len('attributes.'):]}"
    return name.split(".", 1)[-1].replace("_", " ").capitalize()


def value_lists(site_id: int) -> dict[str, list[str]]:
    """Values the builder suggests, from the shop's own data: field -> values."""
    computed = computed_segments(site_id)
    return {
        "scores.rfm_segment": [name for name, _n in computed.get("rfm") or []],
        "scores.cluster_name": [name for name, _n in computed.get("clusters") or []],
        "category": categories(site_id)[:CATEGORY_FIELDS_SHOWN * 5],
    }


def canonical_categories(rule: Any, known: dict[str, str]) -> Any:
    """The rule with each category it names spelled as the catalogue does ("tea" -> "Tea"): the builder
    matches categories without regard to case; a category the catalogue lacks stays as typed."""
    if isinstance(rule, list):
        return [canonical_categories(r, known) for r in rule]
    if not isinstance(rule, dict):
        return rule
    out = {k: canonical_categories(v, known) if k in ("and", "or", "not") else v for k, v in rule.items()}
    b = out.get("behaviour")
    if isinstance(b, dict) and isinstance(b.get("category"), str):
        out["behaviour"] = {**b, "category": known.get(b["category"].strip().casefold(), b["category"])}
    field = out.get("field")
    if isinstance(field, str) and field.startswith(CATEGORY_PROPENSITY):
        name = field[len(CATEGORY_PROPENSITY):]
        out["field"] = CATEGORY_PROPENSITY + known.get(name.strip().casefold(), name)
    return out


def rule_text(rule: dict | None) -> str:
    if not rule:
        return ""
    if "and" in rule or "or" in rule:
        kind = "and" if "and" in rule else "or"
        return f" {kind} ".join(rule_text(c) for c in rule[kind])
    if "not" in rule:
        return f"not ({rule_text(rule['not'])})"
    if "segment" in rule:
        return f"in segment {rule['segment']}"
    if "behaviour" in rule:
        b = rule["behaviour"]
        window = f" in the last {b['within_days']:g} days" if "within_days" in b else ""
        what = event_label(b["event"]).lower() + (f" in category {b['category']}" if b.get("category") else "") + (f" product {b['product_id']}" if b.get("product_id") else "")
        return f"{what} at least {b.get('min', 1):g} times{window}"
    value = rule.get("value")
    shown = ", ".join(map(str, value)) if isinstance(value, list) else ("" if value is None else str(value))
    return f"{field_label(rule['field']).split(' (')[0].lower()} {OP_LABELS.get(rule['op'], rule['op'])} {shown}".strip()


def _scalar(text: str, kind: str | None) -> Any:
    text = text.strip()
    if kind in ("text", "date"):
        return text
    try:
        number = float(text)
    except ValueError:
        return {"true": True, "false": False}.get(text, text) if kind is None else text
    return int(number) if number.is_integer() else number


def rule_from_form(form, site_id: int | None = None) -> dict:
    """The rule tree the builder's rows describe, or the JSON typed in the advanced box; with
    ``site_id``, categories spelled as that site's catalogue spells them."""
    rule = _rule_from_form(form)
    if site_id is not None:
        rule = canonical_categories(rule, {c.casefold(): c for c in categories(site_id)})
    return rule


class EmptyRule(InvalidInput):
    """The builder has no condition yet: not a mistake while the form is being filled in."""


def _rule_from_form(form) -> dict:
    if form.get("mode") == "json":
        if not (form.get("rule_json") or "").strip():
            raise EmptyRule("rule", "write a rule, or use the conditions above")
        try:
            return json.loads(form.get("rule_json") or "")
        except json.JSONDecodeError as exc:
            raise InvalidInput("rule", f"is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    children: list[dict] = []
    for i in range(CONDITION_ROWS):
        name = (form.get(f"c{i}_field") or "").strip()
        if not name:
            continue
        op = form.get(f"c{i}_op") or "eq"
        raw = form.get(f"c{i}_value") or ""
        kind = field_kind(name)
        node: dict[str, Any] = {"field": name, "op": op}
        if op in LIST_OPS or op == "between":
            node["value"] = [_scalar(v, kind) for v in raw.split(",") if v.strip()]
        elif op in ("within_days", "older_than_days"):
            node["value"] = _scalar(raw, None)
        elif op not in NO_VALUE:
            node["value"] = _scalar(raw, kind) if raw.strip() else None
        children.append(node)
    for i in range(BEHAVIOUR_ROWS):
        event = form.get(f"b{i}_event") or ""
        if not event:
            continue
        b: dict[str, Any] = {"event": event}
        for key, cast in (("min", _scalar), ("within_days", _scalar)):
            raw = (form.get(f"b{i}_{key}") or "").strip()
            if raw:
                b[key] = cast(raw, None)
        for key in ("category", "product_id"):
            raw = (form.get(f"b{i}_{key}") or "").strip()
            if raw:
                b[key] = raw
        children.append({"behaviour": b})
    if not children:
        raise EmptyRule("rule", "add at least one condition")
    return {form.get("combine", "and") if form.get("combine") in ("and", "or") else "and": children}


def builder_rows(rule: dict | None) -> tuple[dict[str, str], bool]:
    """Form values for a rule the builder can show, and whether it can (else: the JSON box)."""
    values: dict[str, str] = {"combine": "and"}
    if not rule:
        return values, True
    kind = "and" if "and" in rule else ("or" if "or" in rule else None)
    children = rule.get(kind) if kind else [rule]
    conditions = [c for c in children if "field" in c]
    behaviours = [c["behaviour"] for c in children if "behaviour" in c]
    if len(conditions) + len(behaviours) != len(children) or len(conditions) > CONDITION_ROWS or len(behaviours) > BEHAVIOUR_ROWS:
        return values, False
    values["combine"] = kind or "and"
    for i, c in enumerate(conditions):
        value = c.get("value")
        values.update({f"c{i}_field": c["field"], f"c{i}_op": c["op"],
                       f"c{i}_value": ", ".join(map(str, value)) if isinstance(value, list) else ("" if value is None else str(value))})
    for i, b in enumerate(behaviours):
        values.update({f"b{i}_{k}": str(v) for k, v in b.items()})
    return values, True


def explain(exc: InvalidInput, form) -> str:
    """A validation error, naming the builder's row ("condition 2") rather than the tree path."""
    message = str(exc)
    if form.get("mode") != "json":
        message = re.sub(r"^rule\.(?:and|or)\[(\d+)\]", lambda m: f"condition {int(m.group(1)) + 1}", message)
    return message


def schedule(job: str, **kwargs) -> bool:
    """Start slow segment work as a job, outside the request: on the Celery workers when a broker
    is set, else on this process's job runner (at once when SEGMENT_REBUILD_INLINE is set, as in
    tests). ``False``, with an error shown to the admin, when the broker could not take it."""
    if current_app.config.get("SEGMENT_REBUILD_INLINE"):
        jobs.run(job, **kwargs)
        return True
    try:
        jobs.submit(job, **kwargs)
    except Exception as exc:  # the broker is down: what was saved stays saved
        log.error("job %s %s could not be queued: %s", job, kwargs, exc)
        flash(f"The work could not be queued ({exc}); try again once the task queue is back.", "error")
        return False
    return True


@bp.get("/sites/<int:site_id>/segments")
@site_page()
def segments(s: Site):
    return render_template("admin/segments.html", site=s, segments=all_segments(s.id), computed=computed_segments(s.id),
                           policies=get_policies(s.id))


@bp.post("/sites/<int:site_id>/segments/count")
@site_page()
def segment_count(s: Site):
    """The live preview: how many profiles the rule on screen matches now."""
    try:
        return jsonify(count=preview_count(s.id, rule_from_form(request.form, s.id)))
    except EmptyRule:
        return jsonify(empty=True, message="Add a condition to see how many profiles match.")
    except InvalidInput as exc:
        return jsonify(error=explain(exc, request.form)), 400


@bp.route("/sites/<int:site_id>/segments/new", methods=["GET", "POST"])
@bp.route("/sites/<int:site_id>/segments/<key>/edit", methods=["GET", "POST"])
@site_page()
def segment_edit(s: Site, key: str | None = None):
    seg = found(get_segment(s.id, key), "segment") if key else None
    error = None
    values, fits = builder_rows(seg.rule if seg else None)
    mode = "builder" if fits else "json"
    rule_json = json.dumps(seg.rule, indent=2) if seg else ""
    if request.method == "POST":
        if not can_edit(g.admin):
            return denied()
        values = dict(request.form)
        mode = request.form.get("mode", "builder")
        rule_json = request.form.get("rule_json", "")
        try:
            rule = rule_from_form(request.form, s.id)
            body = {"name": request.form.get("name", "").strip(), "description": request.form.get("description", ""), "rule": rule}
            if seg is None:
                # create_segment takes the description only through an update (it sets its own default)
                description = body.pop("description")
                seg = create_segment(s.id, {"key": request.form.get("key", "").strip(), **body})
                if description:
                    update_segment(seg, {"description": description})
                changed = True
            else:
                changed = update_segment(seg, body)
        except InvalidInput as exc:
            db.session.rollback()
            error = explain(exc, request.form)
        else:
            queued = schedule("segment_rebuild", site_id=s.id, key=seg.key) if changed else False
            flash(f"Segment {seg.key} saved" + ("; its members are being worked out." if queued else "."), "ok")
            return redirect(url_for("admin.segment", site_id=s.id, key=seg.key))
    return render_template(
        "admin/segment_edit.html", site=s, seg=seg, values=values, mode=mode, rule_json=rule_json, error=error,
        fields=[(f, field_label(f)) for f in field_names(s.id)], value_lists=value_lists(s.id), ops=[(op, OP_LABELS[op]) for op in sorted(OPS, key=list(OP_LABELS).index)],
        events=BEHAVIOUR_EVENTS, condition_rows=CONDITION_ROWS, behaviour_rows=BEHAVIOUR_ROWS,
    ), (400 if error else 200)


@bp.get("/sites/<int:site_id>/segments/<key>")
@site_page()
def segment(s: Site, key: str):
    seg = found(get_segment(s.id, key), "segment")
    after = request.args.get("after", type=int) or 0
    if not 0 <= after < 2**31:  # a profile id; anything else starts from the first page
        after = 0
    members = members_page(s.id, key, after=after, limit=50)
    return render_template("admin/segment.html", site=s, seg=seg, members=members, after=after, rule_json=json.dumps(seg.rule, indent=2),
                           rule_words=rule_text(seg.rule))


@bp.post("/sites/<int:site_id>/segments/<key>/rebuild")
@site_page(edit=True)
def segment_rebuild(s: Site, key: str):
    found(get_segment(s.id, key), "segment")
    if schedule("segment_rebuild", site_id=s.id, key=key):
        flash("Members are being worked out again; reload in a moment.", "ok")
    return redirect(url_for("admin.segment", site_id=s.id, key=key))


@bp.post("/sites/<int:site_id>/segments/<key>/delete")
@site_page(edit=True)
def segment_delete(s: Site, key: str):
    seg = found(get_segment(s.id, key), "segment")
    try:
        delete_segment(seg)
    except InvalidInput as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.segment", site_id=s.id, key=key))
    flash(f"Segment {key} deleted.", "ok")
    return redirect(url_for("admin.segments", site_id=s.id))


@bp.post("/sites/<int:site_id>/scores")
@site_page(edit=True)
def scores_recompute(s: Site):
    if schedule("scores", site_id=s.id):
        flash("Scores are being recomputed in the background (RFM, value, attrition, potential, clusters, chance of ordering); reload in a minute.", "ok")
    return redirect(url_for("admin.segments", site_id=s.id))


@bp.post("/sites/<int:site_id>/contact-policy")
@site_page(edit=True)
def contact_policy(s: Site):
    """How often one person may be contacted per channel (connectors pushing campaigns ask first)."""
    channels = set(get_policies(s.id))
    new = request.form.get("new_channel", "").strip().lower()
    if new:
        channels.add(new)
    try:
        for channel in sorted(channels):
            limits = {}
            for key in ("per_day", "per_week"):
                raw = request.form.get(f"{key}_{channel}" if channel != new else f"new_{key}", "").strip()
                if raw and whole_number(raw) is None:
                    raise InvalidInput(f"{channel}.{key}", "must be a whole number, or empty for no limit")
                limits[key] = whole_number(raw) if raw else None
            set_policy(s.id, channel, limits)
    except InvalidInput as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash("Contact policy saved.", "ok")
    return redirect(url_for("admin.segments", site_id=s.id) + "#contact-policy")
