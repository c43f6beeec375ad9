"""Journeys of a site: the list, templates to start from, the builder (a vertical flow of steps
with branches, edited with forms: no JSON needed), activate/pause/stop/publish, a preview of who
would enter now, the report against the control group, a test send, and the email settings."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from flask import current_app, flash, g, redirect, render_template, request, url_for

from ..db import db
from ..journeys import definition as jdef
from ..journeys.email import (
    CONSENT_MODES,
    SECURITY,
    get_settings,
    missing_for_sending,
    save_settings,
    time_zones,
)
from ..journeys.report import flow_rows, journey_report
from ..journeys.store import (
    delete_journey,
    get_journey,
    list_journeys,
    live_definition,
    publish,
    save_definition,
    set_status,
    unpublished,
    versions_of,
)
from ..journeys.templates import TEMPLATES, create_from_template
from ..models import Site
from ..records import EVENT_TYPES
from ..validation import InvalidInput, whole_number
from . import SITE_TABS, bp
from .access import found, not_found, site_page
from .formatting import sentence
from .labels import event_label
from .segments import (
    BEHAVIOUR_ROWS,
    CONDITION_ROWS,
    OP_LABELS,
    builder_rows,
    field_names,
    rule_from_form,
    rule_text,
    schedule,
)
from .sessions import stash_secret, take_secret

SITE_TABS.append({"endpoint": "admin.journeys", "label": "Journeys", "order": 4})

UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
STEP_LABELS = {
    "wait": "Wait", "wait_event": "Wait for an event", "branch": "Condition (yes / no)", "split": "Random split (A/B)",
    "email": "Send an email", "webhook": "Call a webhook", "connector": "Connector action", "set_attribute": "Set a profile attribute",
    "exit": "Leave the journey",
}
TRIGGER_LABELS = {"event": "Does something (an event)", "segment_entered": "Enters a segment", "segment_left": "Leaves a segment",
                  "date": "A date comes (birthday, days since the last order…)", "api": "Your servers enter them (API)"}
BRANCH_LABELS = {"yes": "Yes", "no": "No", "received": "It happened", "timeout": "It did not happen in time"}
WHERE_FIELDS = ("product_id", "product.category", "product.price", "properties.")
DATE_FIELDS = ("attributes.birthday", "orders.last_at", "orders.first_at", "profile.created_at")
WHERE_ROWS = 3


# ---------------------------------------------------------------- words for people


def duration_text(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def _split_duration(seconds: int) -> tuple[int, str]:
    for unit in ("days", "hours", "minutes"):
        if seconds and seconds % UNITS[unit] == 0:
            return seconds // UNITS[unit], unit
    return max(1, round(seconds / 60)), "minutes"


def step_text(step: dict) -> str:
    kind = step["type"]
    if kind == "wait":
        return f"Wait {duration_text(step['seconds'])}" if "seconds" in step else f"Wait until {step['until']} (the person's time)"
    if kind == "wait_event":
        return f"Wait up to {duration_text(step['seconds'])} for “{event_label(step['event']).lower()}”"
    if kind == "branch":
        return f"If {rule_text(step['rule'])}"
    if kind == "split":
        return "Split at random: " + ", ".join(f"{label.upper()} {share} %" for label, share in step["shares"].items())
    if kind == "email":
        return f"Email “{step['subject']}”" + (f" with {step['recommendations']} recommendations" if step.get("recommendations") else "")
    if kind == "webhook":
        return f"Webhook to {step['url']}"
    if kind == "connector":
        params = ", ".join(f"{k} = {v}" for k, v in step.get("params", {}).items())
        return f"{step['action']} on {step['connection']}" + (f" ({params})" if params else "")
    if kind == "set_attribute":
        return f"Set {step['name']} to {json.dumps(step['value'])}"
    return "Leave the journey"


def trigger_text(trigger: dict) -> str:
    kind = trigger["type"]
    if kind == "event":
        where = " and ".join(f"{w['field']} {OP_LABELS.get(w['op'], w['op'])} {w.get('value', '')}".strip() for w in trigger.get("where") or [])
        text = f"When someone does “{event_label(trigger['event']).lower()}”" + (f" where {where}" if where else "")
    elif kind == "segment_entered":
        text = f"When someone enters segment {trigger['segment']}"
    elif kind == "segment_left":
        text = f"When someone leaves segment {trigger['segment']}"
    elif kind == "date":
        offset = trigger["offset_days"]
        when = "on" if not offset else (f"{offset} days after" if offset > 0 else f"{-offset} days before")
        text = f"{when.capitalize()} their {trigger['field']}{' every year' if trigger['yearly'] else ''}, at {trigger['at']}"
    else:
        text = "When your servers enter them (POST /api/v1/journeys/…/enrollments)"
    if trigger.get("condition"):
        text += f", if {rule_text(trigger['condition'])}"
    return text


def branch_title(step: dict, label: str) -> str:
    if step["type"] == "split":
        return f"Path {label.upper()} ({step['shares'][label]} %)"
    if step["type"] == "wait_event" and label == "received":
        return f"{step['event']} came"
    return BRANCH_LABELS.get(label, label)


def explain(exc: InvalidInput, definition: dict | None = None) -> str:
    """A validation error in the builder's words: "Step s3: subject …" rather than a JSON path."""
    message = str(exc)
    match = re.match(r"^(steps(?:\[\d+\](?:\.branches\.\w+)?)*\[\d+\])\.?(\S*): (.*)$", message)
    if match and definition is not None:
        node: Any = {"steps": definition.get("steps")}
        try:
            for part in re.findall(r"\w+|\[\d+\]", match.group(1)):
                node = node[int(part[1:-1])] if part.startswith("[") else node[part]
            return sentence(f"Step {node.get('id', '?')}: {match.group(2) or 'it'} {match.group(3)}".replace("  ", " "))
        except (KeyError, IndexError, TypeError):
            pass
    return sentence(message)


# ---------------------------------------------------------------- editing the tree


def _lists(steps: list[dict]):
    """Every list of steps in the tree (the top one and each branch), with its owner."""
    yield None, steps
    for step in steps:
        for label, inner in (step.get("branches") or {}).items():
            for owner, listed in _lists(inner):
                yield (owner or (step["id"], label)), listed


def find_list(steps: list[dict], step_id: str) -> tuple[list[dict], int] | None:
    for _owner, listed in _lists(steps):
        for i, step in enumerate(listed):
            if step["id"] == step_id:
                return listed, i
    return None


def insert_step(definition: dict, new: dict, after: str | None, branch: tuple[str, str] | None) -> dict:
    out = copy.deepcopy(definition)
    if after:
        place = find_list(out["steps"], after)
        if place is None:
            raise InvalidInput("after", f"there is no step {after}")
        place[0].insert(place[1] + 1, new)
    elif branch:
        place = find_list(out["steps"], branch[0])
        if place is None or branch[1] not in (place[0][place[1]].get("branches") or {}):
            raise InvalidInput("branch", "that branch does not exist")
        place[0][place[1]]["branches"][branch[1]].insert(0, new)
    else:
        out["steps"].insert(0, new)
    return out


def replace_step(definition: dict, step_id: str, new: dict) -> dict:
    out = copy.deepcopy(definition)
    place = find_list(out["steps"], step_id)
    if place is None:
        raise InvalidInput("step", f"there is no step {step_id}")
    old = place[0][place[1]]
    if old.get("branches") and new["type"] == old["type"]:
        new["branches"] = old["branches"] if new["type"] != "split" else {k: old["branches"].get(k, []) for k in new["shares"]}
    place[0][place[1]] = new
    return out


def remove_step(definition: dict, step_id: str) -> dict:
    out = copy.deepcopy(definition)
    place = find_list(out["steps"], step_id)
    if place is None:
        raise InvalidInput("step", f"there is no step {step_id}")
    del place[0][place[1]]
    return out


def new_step(kind: str, step_id: str) -> dict:
    """A new step with sensible values, to be edited in place."""
    base: dict[str, Any] = {"id": step_id, "type": kind}
    if kind == "wait":
        base["seconds"] = 86400
    elif kind == "wait_event":
        base.update(event="order_completed", seconds=3 * 86400, branches={"received": [], "timeout": []})
    elif kind == "branch":
        base.update(rule={"field": "orders.count", "op": "gte", "value": 1}, branches={"yes": [], "no": []})
    elif kind == "split":
        base.update(shares={"a": 50, "b": 50}, branches={"a": [], "b": []})
    elif kind == "email":
        base.update(subject="A few picks for you", recommendations=4,
                    html="<p>Hi {{ contact.first_name or 'there' }},</p>\n<p>We picked these for you:</p>\n{{ recommendations_block }}")
    elif kind == "webhook":
        base.update(url="https://example.com/hooks/personalize", fields={})
    elif kind == "set_attribute":
        base.update(name="journey_reached", value=True)
    return base


def _first_connector_step(site_id: int, step_id: str) -> dict:
    """A new connector step on the site's first connection that offers an action."""
    from ..journeys.connectors import connector_actions
    from ..sync.connections import list_connections

    catalog = connector_actions()
    for conn in list_connections(site_id):
        for (connector, name), action in sorted(catalog.items()):
            if connector == conn.connector:
                return {"id": step_id, "type": "connector", "connection": conn.name, "action": name, "params": {p.name: "" for p in action.params}}
    raise InvalidInput("type", "connect Mailchimp, HubSpot or Shopify first (Connectors tab): their actions appear here")


# ---------------------------------------------------------------- forms → definition


def _duration(form, prefix: str = "") -> int:
    raw, unit = (form.get(prefix + "amount") or "").strip(), form.get(prefix + "unit") or "hours"
    if unit not in UNITS:
        raise InvalidInput("unit", "must be minutes, hours or days")
    try:
        amount = float(raw)
    except ValueError:
        raise InvalidInput("amount", "must be a number") from None
    if not 0 <= amount <= 365 * 86400:
        raise InvalidInput("amount", "must be 0 or more")
    return round(amount * UNITS[unit])


def _rule_of(form, prefix: str, optional: bool = False) -> dict | None:
    sub = {k[len(prefix):]: v for k, v in form.items() if k.startswith(prefix)}
    if optional and sub.get("mode") != "json" and not any((sub.get(f"c{i}_field") or "").strip() for i in range(CONDITION_ROWS)) \
            and not any(sub.get(f"b{i}_event") for i in range(BEHAVIOUR_ROWS)):
        return None
    if optional and sub.get("mode") == "json" and not (sub.get("rule_json") or "").strip():
        return None
    return rule_from_form(sub)


def _scalar_value(raw: str, kind: str) -> Any:
    raw = raw.strip()
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            raise InvalidInput("value", "must be a number") from None
        return int(number) if number.is_integer() else number
    if kind == "yes":
        return True
    if kind == "no":
        return False
    if kind == "empty":
        return None
    return raw


def step_from_form(step_id: str, kind: str, form, site_id: int) -> dict:
    """A step of type ``kind`` from its edit form (validated later with the whole definition)."""
    step: dict[str, Any] = {"id": step_id, "type": kind}
    if kind == "wait":
        if form.get("wait_mode") == "until":
            step["until"] = (form.get("until") or "").strip()
        else:
            step["seconds"] = _duration(form)
    elif kind == "wait_event":
        step.update(event=form.get("event"), seconds=_duration(form), branches={"received": [], "timeout": []})
    elif kind == "branch":
        step.update(rule=_rule_of(form, "rule_"), branches={"yes": [], "no": []})
    elif kind == "split":
        shares = {}
        for label in jdef.SPLIT_LABELS:
            raw = (form.get(f"share_{label}") or "").strip()
            if raw:
                if whole_number(raw) is None:
                    raise InvalidInput(f"share_{label}", "must be a whole percentage")
                shares[label] = whole_number(raw)
        step.update(shares=shares, branches={label: [] for label in shares})
    elif kind == "email":
        count = whole_number((form.get("recommendations") or "0").strip())
        if count is None:
            raise InvalidInput("recommendations", "must be a whole number of products")
        step.update(subject=form.get("subject") or "", html=form.get("html") or "", recommendations=count)
        if (form.get("text") or "").strip():
            step["text"] = form["text"]
        step.pop("recommendations_at", None)
        if form.get("recommendations_at") == "open":
            step["recommendations_at"] = "open"
    elif kind == "webhook":
        fields = {}
        for n, line in enumerate((form.get("fields") or "").splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep:
                raise InvalidInput("fields", f"line {n} is not name = value")
            fields[name.strip()] = value.strip()
        step.update(url=(form.get("url") or "").strip(), fields=fields)
    elif kind == "connector":
        from ..journeys.connectors import connector_actions, site_connection

        connection = form.get("connection") or ""
        action = form.get("action") or ""
        conn = site_connection(site_id, connection)
        if conn is None:
            raise InvalidInput("connection", "choose one of the site's connections")
        declared = connector_actions().get((conn.connector, action))
        if declared is None:
            raise InvalidInput("action", f"{conn.connector} has no action {action!r}")
        params = {p.name: (form.get(f"p_{action}_{p.name}") or "").strip() for p in declared.params}
        step.update(connection=connection, action=action, params=params)
    elif kind == "set_attribute":
        step.update(name=(form.get("name") or "").strip(), value=_scalar_value(form.get("value") or "", form.get("value_type") or "text"))
    return step


def settings_from_form(form, current: dict) -> dict:
    """The trigger and the entry, goal, control and pressure settings from the journey's settings form."""
    out = copy.deepcopy(current)
    kind = form.get("trigger_type")
    trigger: dict[str, Any] = {"type": kind}
    if kind == "event":
        trigger["event"] = form.get("trigger_event")
        where = []
        for i in range(WHERE_ROWS):
            name = (form.get(f"w{i}_field") or "").strip()
            if not name:
                continue
            op, raw = form.get(f"w{i}_op") or "eq", (form.get(f"w{i}_value") or "").strip()
            cond: dict[str, Any] = {"field": name, "op": op}
            if op == "in":
                cond["value"] = [_guess(v) for v in raw.split(",") if v.strip()]
            elif op != "exists":
                cond["value"] = _guess(raw)
            where.append(cond)
        trigger["where"] = where
    elif kind in ("segment_entered", "segment_left"):
        trigger["segment"] = form.get("trigger_segment")
    elif kind == "date":
        try:
            offset = int(form.get("offset_days") or 0)
        except ValueError:
            raise InvalidInput("offset_days", "must be a whole number of days") from None
        trigger.update(field=(form.get("date_field") or "").strip(), offset_days=offset, yearly=bool(form.get("yearly")),
                       at=form.get("at") or "09:00")
    condition = _rule_of(form, "cond_", optional=True)
    if condition is not None:
        trigger["condition"] = condition
    out["trigger"] = trigger
    mode = form.get("reentry") or "once"
    out["reentry"] = {"mode": mode, **({"days": _int(form, "reentry_days", 1)} if mode == "cooldown" else {})}
    goal = form.get("goal") or "order"
    out["goal"] = {"type": goal, **({"event": form.get("goal_event")} if goal == "event" else {})}
    out["goal_days"] = _int(form, "goal_days", 7)
    out["exit"] = {"on_goal": bool(form.get("exit_on_goal")) and goal != "none", "on_segment_exit": bool(form.get("exit_on_segment")) and kind == "segment_entered"}
    out["control"] = _int(form, "control", 0)
    quiet = bool(form.get("quiet"))
    out["limits"] = {
        "quiet_start": (form.get("quiet_start") or None) if quiet else None, "quiet_end": (form.get("quiet_end") or None) if quiet else None,
        "recent_hours": _int(form, "recent_hours", 0),
    }
    return out


def _int(form, name: str, default: int) -> int:
    raw = (form.get(name) or "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"-?\d{1,7}", raw):
        raise InvalidInput(name, "must be a whole number")
    return int(raw)


def _guess(raw: str) -> Any:
    raw = raw.strip()
    try:
        number = float(raw)
    except ValueError:
        return {"true": True, "false": False}.get(raw, raw)
    return int(number) if number.is_integer() else number


# ---------------------------------------------------------------- pages


def _step(journey, step_id: str, kind: str = "") -> dict:
    """The step ``step_id`` of the journey's draft (of type ``kind`` when given), or the 404 page."""
    place = find_list(journey.definition["steps"], step_id)
    if place is None or (kind and place[0][place[1]]["type"] != kind):
        not_found(f"{kind} step" if kind else "step")
    return place[0][place[1]]


def _back(s: Site, key: str, anchor: str = ""):
    return redirect(url_for("admin.journeys_show", site_id=s.id, key=key) + (f"#{anchor}" if anchor else ""))


def _save(journey, definition: dict, note: str) -> bool:
    try:
        save_definition(journey, definition)
    except InvalidInput as exc:
        db.session.rollback()
        flash(explain(exc, definition), "error")
        return False
    live = journey.status == "active" and unpublished(journey)
    flash(note + (" Publish the changes for people to get them." if live else ""), "ok")
    return True


@bp.get("/sites/<int:site_id>/journeys")
@site_page()
def journeys(s: Site):
    rows = []
    for j in list_journeys(s.id):
        report = journey_report(j)
        rows.append({"journey": j, "report": report, "trigger": trigger_text((live_definition(j) or j.definition)["trigger"])})
    settings = get_settings(s.id)
    return render_template("admin/journeys.html", site=s, rows=rows, templates=TEMPLATES,
                           email_missing=missing_for_sending(settings, current_app.config))


@bp.post("/sites/<int:site_id>/journeys")
@site_page(edit=True)
def journeys_create(s: Site):
    key = (request.form.get("key") or "").strip().lower()
    name = (request.form.get("name") or "").strip() or None
    try:
        journey, segments = create_from_template(s.id, request.form.get("template") or "", key or None, name)
    except InvalidInput as exc:
        db.session.rollback()
        flash(sentence(str(exc)), "error")
        return redirect(url_for("admin.journeys", site_id=s.id))
    for seg in segments:
        schedule("segment_rebuild", site_id=s.id, key=seg)
    flash(f"Journey {journey.name} created as a draft" + (f"; segment {', '.join(segments)} was created for it." if segments else ".")
          + " Check its steps and emails, then activate it.", "ok")
    return _back(s, journey.key)


@bp.get("/sites/<int:site_id>/journeys/<key>")
@site_page()
def journeys_show(s: Site, key: str):
    from ..journeys.connectors import connector_actions
    from ..journeys.preview import preview
    from ..segments.store import all_segments
    from ..sync.connections import list_connections

    journey = found(get_journey(s.id, key), "journey")
    definition = journey.definition
    report = journey_report(journey)
    catalog = connector_actions()
    connections = [(c.name, c.connector) for c in list_connections(s.id)]
    connected = {connector for _name, connector in connections}
    actions = [a for (connector, _n), a in sorted(catalog.items()) if connector in connected]
    try:
        who = preview(s.id, definition)
    except Exception:  # a preview must never take the page down (a segment deleted meanwhile…)
        db.session.rollback()
        who = None
    trigger = definition["trigger"]
    return render_template(
        "admin/journey.html", site=s, journey=journey, definition=definition, rows=flow_rows(definition, report.steps), report=report,
        step_text=step_text, trigger_text=trigger_text(trigger), branch_title=branch_title, step_labels=STEP_LABELS,
        trigger_labels=TRIGGER_LABELS, events=EVENT_TYPES, segments=all_segments(s.id), where_rows=WHERE_ROWS,
        where_fields=WHERE_FIELDS, date_fields=DATE_FIELDS, fields=field_names(s.id), ops=[(op, OP_LABELS[op]) for op in OP_LABELS],
        condition_rows=CONDITION_ROWS, behaviour_rows=BEHAVIOUR_ROWS, behaviour_events=(*EVENT_TYPES, "purchased"),
        builder_rows=builder_rows, split_duration=_split_duration, actions=actions, connections=connections,
        unpublished=unpublished(journey), versions=len(versions_of(journey)), preview=who, units=list(UNITS),
        condition_values=builder_rows(trigger.get("condition")), email_missing=missing_for_sending(get_settings(s.id), current_app.config),
        json=json,
    )


@bp.post("/sites/<int:site_id>/journeys/<key>/settings")
@site_page(edit=True)
def journeys_settings(s: Site, key: str):
    journey = found(get_journey(s.id, key), "journey")
    try:
        definition = settings_from_form(request.form, journey.definition)
    except InvalidInput as exc:
        flash(sentence(str(exc)), "error")
        return _back(s, key, "trigger")
    name = (request.form.get("name") or "").strip()
    if name and name != journey.name:
        journey.name = name[:200]
    _save(journey, definition, "Trigger and settings saved.")
    return _back(s, key, "trigger")


@bp.post("/sites/<int:site_id>/journeys/<key>/steps")
@site_page(edit=True)
def journeys_step_add(s: Site, key: str):
    journey = found(get_journey(s.id, key), "journey")
    kind = request.form.get("type") or ""
    where = request.form.get("position") or ""
    try:
        if kind not in jdef.STEP_TYPES:
            raise InvalidInput("type", "choose a kind of step")
        step_id = jdef.next_step_id([*versions_of(journey), journey.definition])
        step = _first_connector_step(s.id, step_id) if kind == "connector" else new_step(kind, step_id)
        after = where[6:] if where.startswith("after:") else None
        branch = tuple(where[7:].split(":", 1)) if where.startswith("branch:") else None
        definition = insert_step(journey.definition, step, after, branch)  # type: ignore[arg-type]
    except InvalidInput as exc:
        flash(sentence(str(exc)), "error")
        return _back(s, key, "steps")
    _save(journey, definition, f"{STEP_LABELS[kind]} added as step {step_id}; set it up below.")
    return _back(s, key, f"step-{step_id}")


@bp.post("/sites/<int:site_id>/journeys/<key>/steps/<step_id>")
@site_page(edit=True)
def journeys_step(s: Site, key: str, step_id: str):
    journey = found(get_journey(s.id, key), "journey")
    current = _step(journey, step_id)
    try:
        definition = replace_step(journey.definition, step_id, step_from_form(step_id, current["type"], request.form, s.id))
    except InvalidInput as exc:
        flash(f"Step {step_id}: {sentence(str(exc))}", "error")
        return _back(s, key, f"step-{step_id}")
    _save(journey, definition, f"Step {step_id} saved.")
    return _back(s, key, f"step-{step_id}")


@bp.post("/sites/<int:site_id>/journeys/<key>/steps/<step_id>/delete")
@site_page(edit=True)
def journeys_step_delete(s: Site, key: str, step_id: str):
    journey = found(get_journey(s.id, key), "journey")
    try:
        definition = remove_step(journey.definition, step_id)
    except InvalidInput:
        not_found("step")
    _save(journey, definition, f"Step {step_id} removed (with its branches). People waiting at it finish on the version they are on.")
    return _back(s, key, "steps")


@bp.post("/sites/<int:site_id>/journeys/<key>/status")
@site_page(edit=True)
def journeys_status(s: Site, key: str):
    journey = found(get_journey(s.id, key), "journey")
    action = request.form.get("action")
    try:
        if action == "publish":
            version = publish(journey)
            flash(f"Version {version} is live. People in flight move to it at their next step when that step still exists.", "ok")
        elif action in ("activate", "pause", "stop"):
            set_status(journey, {"activate": "active", "pause": "paused", "stop": "stopped"}[action])
            flash({"activate": "Active: people enter as the trigger fires.",
                   "pause": "Paused: nobody enters, and people in it wait where they are until you activate it again.",
                   "stop": "Stopped: everyone in it has left. The report stays."}[action], "ok")
        elif action == "delete":
            delete_journey(journey)
            flash(f"Journey {key} deleted.", "ok")
            return redirect(url_for("admin.journeys", site_id=s.id))
        else:
            flash("Choose what to do with the journey.", "error")
    except InvalidInput as exc:
        db.session.rollback()
        flash(explain(exc, journey.definition), "error")
    return _back(s, key)


@bp.post("/sites/<int:site_id>/journeys/<key>/steps/<step_id>/test")
@site_page(edit=True)
def journeys_test_email(s: Site, key: str, step_id: str):
    from ..journeys.actions import TooManyTestSends, send_test_email

    journey = found(get_journey(s.id, key), "journey")
    step = _step(journey, step_id, "email")
    from .lookup import find_profile

    to = (request.form.get("to") or "").strip()
    who = (request.form.get("as_profile") or "").strip()
    person = find_profile(s.id, who) if who else None
    try:
        if who and person is None:
            raise InvalidInput("as_profile", f"no profile has the email, visitor id or id {who!r}")
        outcome = send_test_email(s, journey, step, to, person.profile_id if person else None, person.visitor if person else None)
    except TooManyTestSends as exc:
        if request.accept_mimetypes.best == "application/json" or request.is_json:
            from ..api.errors import error_response

            return error_response(429, "rate_limited", str(exc), "JOURNEY_TEST_SENDS_PER_DAY")
        flash(f"Not sent: this site sent its {exc.limit} test emails today (the server's JOURNEY_TEST_SENDS_PER_DAY); "
              "more can go tomorrow (UTC).", "error")
    except InvalidInput as exc:
        flash(sentence(str(exc)), "error")
    else:
        flash(outcome, "ok")
    return _back(s, key, f"step-{step_id}")


@bp.route("/sites/<int:site_id>/email-settings", methods=["GET", "POST"])
@site_page()
def journeys_email_settings(s: Site):
    from .access import can_edit, denied

    settings = get_settings(s.id)
    if request.method == "POST":
        if not can_edit(g.admin):
            return denied()
        try:
            save_settings(s.id, request.form, current_app.config)
        except InvalidInput as exc:
            db.session.rollback()
            flash(sentence(str(exc)), "error")
            return render_template("admin/email_settings.html", site=s, settings=settings, values=request.form, zones=time_zones(),
                                   security=SECURITY, consent_modes=CONSENT_MODES, missing=None), 400
        flash("Email settings saved.", "ok")
        return redirect(url_for("admin.journeys_email_settings", site_id=s.id))
    return render_template("admin/email_settings.html", site=s, settings=settings, values={}, zones=time_zones(), security=SECURITY,
                           consent_modes=CONSENT_MODES, missing=missing_for_sending(settings, current_app.config),
                           webhook_secret=take_secret(g.admin_session, "webhook_secret", s.id))


@bp.post("/sites/<int:site_id>/email-settings/webhook-secret")
@site_page(owner=True)
def journeys_webhook_secret(s: Site):
    from ..journeys.webhooks import rotate_webhook_secret, webhook_secret

    rotate = request.form.get("rotate") == "1"
    # shown once, from the server (admin/sessions.py), for this site only: never in the cookie, which whoever holds it can read
    secret = rotate_webhook_secret(s.id, current_app.config) if rotate else webhook_secret(s.id, current_app.config)
    stash_secret(g.admin_session, "webhook_secret", s.id, secret)
    if rotate:
        flash("New webhook secret: receivers checking the old one now refuse journey webhooks until you give them this one.", "ok")
    return redirect(url_for("admin.journeys_email_settings", site_id=s.id) + "#webhooks")
