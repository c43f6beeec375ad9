"""Recommendation settings per slot (strategy weights, pin, boost, bury, exclude, "bought A →
show B"), and a preview of one profile's list with the settings on screen, before saving."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from ..builtins.rules import STRATEGIES, merge_rules
from ..catalog import products_by_ids
from ..db import db
from ..insights import profile_in_holdout
from ..models import Event, Site, utcnow
from ..profiles import recent_interactions
from ..recommend.data import KIND_NAMES
from ..recommend.engine import STRATEGY_LABELS, read_summary
from ..recommend.service import latest_version, recommend_for
from . import bp
from .access import can_edit, denied, site_page
from .formatting import sentence
from .lookup import find_profile

SPLIT = re.compile(r"[\s,]+")
FOLLOW = re.compile(r"^\s*(\S+)\s*(?:->|→|=>)\s*(.+)$")
MAX_FACTOR = 100.0
MAX_WEIGHT = 10.0


class RulesError(ValueError):
    pass


def _ids(text: str) -> list[str]:
    return list(dict.fromkeys(t for t in SPLIT.split(text or "") if t))


def _number(raw: str, what: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise RulesError(f"{what}: {raw!r} is not a number") from None
    if not low <= value <= high:
        raise RulesError(f"{what}: {value:g} is not between {low:g} and {high:g}")
    return value


def parse_rules(form) -> dict:
    """The rules of one slot from the form, checked; raises RulesError naming the problem."""
    rules: dict = {}
    for key in ("pin", "bury", "exclude"):
        if ids := _ids(form.get(key, "")):
            rules[key] = ids
    boost: dict[str, float] = {}
    for line in (form.get("boost") or "").splitlines():
        parts = [p for p in SPLIT.split(line.replace(":", " ")) if p]
        if not parts:
            continue
        if len(parts) != 2:
            raise RulesError(f"boost: write one 'product-id factor' per line, not {line.strip()!r}")
        boost[parts[0]] = _number(parts[1], f"boost of {parts[0]}", 0.01, MAX_FACTOR)
    if boost:
        rules["boost"] = boost
    follow: dict[str, list[str]] = {}
    for line in (form.get("bought_show") or "").splitlines():
        if not line.strip():
            continue
        m = FOLLOW.match(line)
        if not m or not _ids(m.group(2)):
            raise RulesError(f"bought A → show B: write 'A -> B, C' per line, not {line.strip()!r}")
        follow[m.group(1)] = _ids(m.group(2))
    if follow:
        rules["bought_show"] = follow
    weights = {}
    for name in STRATEGIES:
        raw = (form.get(f"weight_{name}") or "").strip()
        if raw:
            value = _number(raw, f"weight of {name}", 0.0, MAX_WEIGHT)
            if value != 1.0:
                weights[name] = value
    if weights:
        rules["weights"] = weights
    return rules


def _unknown_products(site_id: int, rules: dict) -> list[str]:
    named = set()
    for key in ("pin", "bury", "exclude"):
        named.update(rules.get(key) or [])
    named.update(rules.get("boost") or {})
    for a, bs in (rules.get("bought_show") or {}).items():
        named.add(a)
        named.update(bs)
    known = products_by_ids(site_id, sorted(named))
    return sorted(named - set(known))


def with_slot_rules(settings: dict, slot: str, rules: dict) -> dict:
    """``settings`` with ``slot``'s rules replaced (``""`` is the site-wide level)."""
    current = dict((settings or {}).get("rules") or {})
    if slot:
        slots = dict(current.get("slots") or {})
        if rules:
            slots[slot] = rules
        else:
            slots.pop(slot, None)
        current = {k: v for k, v in current.items() if k != "slots"}
        if slots:
            current["slots"] = slots
    else:
        kept = {k: current[k] for k in ("slots", "attribute_rules", "segments") if current.get(k)}  # not on this form
        current = {**rules, **kept}
    return {**(settings or {}), "rules": current}


def slot_rules(settings: dict, slot: str) -> dict:
    rules = (settings or {}).get("rules") or {}
    if slot:
        return ((rules.get("slots") or {}).get(slot)) or {}
    return {k: v for k, v in rules.items() if k != "slots"}


def form_values(rules: dict) -> dict:
    """A slot's rules as the form's text fields."""
    return {
        "pin": "\n".join(rules.get("pin") or []),
        "bury": "\n".join(rules.get("bury") or []),
        "exclude": "\n".join(rules.get("exclude") or []),
        "boost": "\n".join(f"{k} {v:g}" for k, v in (rules.get("boost") or {}).items()),
        "bought_show": "\n".join(f"{a} -> {', '.join(bs)}" for a, bs in (rules.get("bought_show") or {}).items()),
        **{f"weight_{name}": f"{(rules.get('weights') or {}).get(name, 1.0):g}" for name in STRATEGIES},
    }


def known_slots(site: Site) -> list[str]:
    seen = set(((site.settings or {}).get("rules") or {}).get("slots") or {})
    seen.update(s for s in db.session.scalars(
        select(Event.slot).distinct().where(
            Event.site_id == site.id, Event.occurred_at >= utcnow() - timedelta(days=30),  # the (site, time) index
            Event.type == "rec_impression", Event.slot.is_not(None),
        ).limit(50)
    ) if s)
    return sorted(seen | {"home", "product"})


def _preview(site: Site, slot: str, draft_settings: dict, who: str, product: str | None) -> dict:
    """The list ``who`` would get with ``draft_settings``: computed inside a transaction that is rolled back."""
    found = find_profile(site.id, who)
    if found is None:
        return {"error": f"No profile found for {who!r} (try a visitor id, an email, a customer id or a profile id)."}
    held = profile_in_holdout(site, found.profile_id)
    history = []
    rows = recent_interactions(site.id, found.profile_id, 8)
    titles = {pid: p.title for pid, p in products_by_ids(site.id, [r[0] for r in rows]).items()}
    for pid, kind, _ts, _qty in rows:
        history.append(f"{KIND_NAMES.get(kind, 'saw')} {titles.get(pid, pid)}")
    try:
        site.settings = {**draft_settings, "holdout": {"share": 0.0}}  # the preview shows the personal list
        result = recommend_for(site, found.visitor, slot=slot or "home", limit=8, product=product or None)
    finally:
        db.session.rollback()
    return {"profile_id": found.profile_id, "visitor": found.visitor, "in_holdout": held, "history": history,
            "list": result, "strategy": result.strategy}


def model_panel(site_id: int) -> dict | None:
    """The served model: when and on what it was trained, and its self-check (what each view
    serves and how every strategy did on the shop's most recent window)."""
    version = latest_version(site_id)
    if version is None:
        return None
    panel = {"version": version, "summary": None, "rows": []}
    try:
        summary = read_summary(version.path)
    except (OSError, ValueError, KeyError) as exc:
        panel["error"] = f"The model file cannot be read ({exc}); train the model again."
        return panel
    panel["summary"] = summary
    recall = (summary["check"] or {}).get("recall") or {}
    names = list(dict.fromkeys([*recall.get("all", {}), *recall.get("new", {})]))
    for name in names:
        panel["rows"].append({
            "name": STRATEGY_LABELS.get(name, name),
            "all": recall.get("all", {}).get(name), "new": recall.get("new", {}).get(name),
            "served_all": summary["serve"].get("all") == name, "served_new": summary["serve"].get("new") == name,
        })
    return panel


@bp.route("/sites/<int:site_id>/recommendations", methods=["GET", "POST"])
@site_page()
def recommendations(s: Site):
    slot = (request.values.get("slot") or "").strip()
    stored = slot_rules(s.settings, slot)
    values = form_values(stored)
    preview = None
    error = None
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in values}
        action = request.form.get("action", "preview")
        if action == "save" and not can_edit(g.admin):
            return denied()
        try:
            rules = parse_rules(request.form)
            unknown = _unknown_products(s.id, rules)
            if unknown:
                raise RulesError("unknown product id(s): " + ", ".join(unknown[:10]))
        except RulesError as exc:
            error = sentence(exc)
        else:
            draft = with_slot_rules(s.settings, slot, rules)
            if action == "save":
                s.settings = draft
                db.session.commit()
                flash("Recommendation settings saved" + (f" for the {slot!r} slot." if slot else " for every slot."), "ok")
                return redirect(url_for("admin.recommendations", site_id=s.id, slot=slot or None))
            who = request.form.get("profile", "").strip()
            if who:
                preview = _preview(s, slot, draft, who, request.form.get("product", "").strip())
            else:
                error = "Enter a visitor id, email or profile id to preview."
    effective = merge_rules((s.settings or {}).get("rules") or {}, slot) if slot else None
    return render_template(
        "admin/recommendations.html", site=s, slot=slot, slots=known_slots(s), values=values, strategies=STRATEGIES,
        preview=preview, error=error, effective=effective, model=model_panel(s.id),
        profile=request.form.get("profile", ""), product=request.form.get("product", ""),
        attribute_rules=((s.settings or {}).get("rules") or {}).get("attribute_rules") or [],
    ), (400 if error else 200)
