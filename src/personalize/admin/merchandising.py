"""Rules by attribute in the admin: a list of the site's rules, a form for one, and the product
search behind the product picker (thumbnails; also used for the rules by product id)."""

from __future__ import annotations

import time
from collections import Counter

from flask import flash, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy import or_, select

from ..catalog import catalog_rows, products_by_ids
from ..db import db
from ..models import Product, Site
from ..recommend import merchandising as m
from . import bp
from .access import can_edit, denied, site_page
from .formatting import sentence

SEARCH_LIMIT = 10
FIELD_LABELS = {
    "name": "Name", "action": "What to do", "factor": "Factor", "count": "How many", "starts": "Starts", "ends": "Ends",
    "slots": "Slots", "reason": "Reason shown", "id": "Rule id",
    "items.field": "Products: attribute", "items.op": "Products: comparison", "items.value": "Products: value",
    "when.did": "Condition", "when.items.field": "Condition: attribute", "when.items.op": "Condition: comparison",
    "when.items.value": "Condition: value",
}
# the form input each field of a rule comes from (to mark it and move the focus there)
FIELD_INPUTS = {
    "name": "rule-name", "action": "rule-action", "factor": "rule-factor", "count": "rule-count", "starts": "rule-starts",
    "ends": "rule-ends", "slots": "rule-slots", "reason": "rule-reason", "items.field": "items-field", "items.op": "items-op",
    "items.value": "items-value", "when.did": "when-did", "when.items.field": "when-field", "when.items.op": "when-op",
    "when.items.value": "when-value",
}


def attribute_rules(site: Site) -> list[dict]:
    return list(((site.settings or {}).get("rules") or {}).get("attribute_rules") or [])


def with_attribute_rules(settings: dict | None, rules: list[dict]) -> dict:
    current = dict((settings or {}).get("rules") or {})
    if rules:
        current["attribute_rules"] = rules
    else:
        current.pop("attribute_rules", None)
    return {**(settings or {}), "rules": current}


def catalogue_choices(site_id: int) -> dict:
    """What the form suggests, from the shop's catalogue: categories, attribute names and, for
    each, its most common values (texts only; numbers are compared, not listed)."""
    categories: Counter = Counter()
    names: Counter = Counter()
    values: dict[str, Counter] = {}
    for _id, _title, category, _price, attributes, _stock in catalog_rows(site_id):
        if category:
            categories[category] += 1
        for key, value in (attributes or {}).items():
            names[key] += 1
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, str) and v.strip() and len(v) <= 80:
                    values.setdefault(key, Counter())[v.strip()] += 1
    fields = ["category", "price", "id", *(f"attributes.{k}" for k, _ in names.most_common(40))]
    return {
        "fields": fields,
        "values": {"category": [c for c, _ in categories.most_common(200)],
                   **{f"attributes.{k}": [v for v, _ in c.most_common(50)] for k, c in values.items() if f"attributes.{k}" in fields}},
    }


def _selector_from_form(form, prefix: str) -> dict:
    name = (form.get(f"{prefix}field") or "").strip()
    raw = form.get(f"{prefix}ids", "") if name == "id" else form.get(f"{prefix}value", "")
    return {"field": name, "op": (form.get(f"{prefix}op") or "is").strip(), "value": raw}


def rule_from_form(form) -> dict:
    """The rule on the form, validated (raises :class:`merchandising.RuleError`)."""
    raw = {
        "id": (form.get("rule_id") or "").strip() or None, "name": form.get("name", ""), "action": form.get("action", ""),
        "items": _selector_from_form(form, "items_"), "factor": form.get("factor"), "count": form.get("count"),
        "starts": form.get("starts", ""), "ends": form.get("ends", ""), "slots": form.get("slots", ""),
        "reason": form.get("reason", ""), "enabled": form.get("enabled", "1") == "1",
    }
    if raw["action"] != "boost":
        raw.pop("factor")
    if raw["action"] != "show":
        raw.pop("count")
    if (form.get("when_did") or "").strip():
        raw["when"] = {"did": form.get("when_did"), "items": _selector_from_form(form, "when_")}
    return m.validate_rule(raw)


def form_of(rule: dict | None) -> dict:
    """A rule as the form's fields."""
    rule = rule or {}
    items = rule.get("items") or {"field": "category", "op": "is", "value": []}
    when = rule.get("when") or {}
    wi = when.get("items") or {"field": "category", "op": "is", "value": []}

    def shown(sel):
        if sel["op"] == "between":
            return f"{sel['value'][0]:g} to {sel['value'][1]:g}"
        if isinstance(sel["value"], list):
            return ", ".join(sel["value"]) if sel["field"] != "id" else ""
        return f"{sel['value']:g}"

    return {
        "rule_id": rule.get("id", ""), "name": rule.get("name", ""), "action": rule.get("action", "show"),
        "factor": f"{rule['factor']:g}" if "factor" in rule else "2", "count": str(rule.get("count", m.DEFAULT_COUNT)),
        "items_field": items["field"], "items_op": items["op"], "items_value": shown(items),
        "items_ids": "\n".join(items["value"]) if items["field"] == "id" else "",
        "when_did": when.get("did", ""), "when_field": wi["field"], "when_op": wi["op"], "when_value": shown(wi),
        "when_ids": "\n".join(wi["value"]) if wi["field"] == "id" else "",
        "starts": (rule.get("starts") or "")[:16], "ends": (rule.get("ends") or "")[:16],
        "slots": ", ".join(rule.get("slots") or []), "reason": rule.get("reason", ""),
        "enabled": "0" if rule.get("enabled") is False else "1",
    }


def _state(rule: dict, now: float) -> str:
    if rule.get("enabled") is False:
        return "off"
    starts, ends = m.parse_when(rule.get("starts"), "starts"), m.parse_when(rule.get("ends"), "ends")
    if ends is not None and now >= ends:
        return "ended"
    if starts is not None and now < starts:
        return "scheduled"
    return "on"


@bp.route("/sites/<int:site_id>/recommendations/rules", methods=["GET", "POST"])
@site_page()
def attribute_rules_page(s: Site):
    rules = attribute_rules(s)
    editing = request.values.get("rule", "")
    current = next((r for r in rules if r["id"] == editing), None)
    values = form_of(current)
    error, bad_input = None, None
    if request.method == "POST":
        if not can_edit(g.admin):
            return denied()
        action = request.form.get("do", "save")
        target = request.form.get("rule_id", "")
        if action in ("delete", "enable", "disable"):
            kept = []
            for r in rules:
                if r["id"] == target:
                    if action == "delete":
                        continue
                    r = {**r, "enabled": True} if action == "enable" else {**r, "enabled": False}
                    if r["enabled"]:
                        r.pop("enabled")
                kept.append(r)
            s.settings = with_attribute_rules(s.settings, kept)
            db.session.commit()
            flash({"delete": "Rule deleted.", "enable": "Rule turned on.", "disable": "Rule turned off."}[action], "ok")
            return redirect(url_for("admin.attribute_rules_page", site_id=s.id))
        values = {k: request.form.get(k, "") for k in values}
        try:
            rule = rule_from_form(request.form)
            unknown = sorted(m.named_products([rule]) - set(products_by_ids(s.id, sorted(m.named_products([rule])))))
            if unknown:
                field = "items.value" if rule["items"]["field"] == "id" and set(unknown) & set(rule["items"]["value"]) else "when.items.value"
                raise m.RuleError(f"rule.{field}", "unknown product id(s): " + ", ".join(unknown[:10]))
        except m.RuleError as exc:
            key = exc.field.removeprefix("rule.").removeprefix("rule")
            error = sentence(f"{FIELD_LABELS.get(key, key or 'Rule')}: {exc.message}")
            bad_input = FIELD_INPUTS.get(key)
            prefix = "items_" if key == "items.value" else "when_" if key == "when.items.value" else None
            if prefix and request.form.get(f"{prefix}field") == "id":
                bad_input = f"{prefix.replace('_', '-')}ids"  # the chosen products, not the value box
        else:
            if len(rules) >= m.MAX_RULES and not any(r["id"] == rule["id"] for r in rules):
                error = f"A site may have at most {m.MAX_RULES} rules by attribute."
            else:
                replaced = [rule if r["id"] == rule["id"] else r for r in rules]
                if not any(r["id"] == rule["id"] for r in rules):
                    replaced.append(rule)
                s.settings = with_attribute_rules(s.settings, replaced)
                db.session.commit()
                flash(f"Rule {rule['name']!r} saved.", "ok")
                return redirect(url_for("admin.attribute_rules_page", site_id=s.id))
    choices = catalogue_choices(s.id)
    items = [m.CatalogItem(*row) for row in catalog_rows(s.id)]
    compiled = {c.id: c for c in m.compile_rules([r for r in rules if r.get("enabled") is not False], items).rules}
    now = time.time()
    rows = [{"rule": r, "text": m.describe(r), "state": _state(r, now),
             "matches": len(compiled[r["id"]].targets) if r["id"] in compiled else None} for r in rules]
    return render_template(
        "admin/attribute_rules.html", site=s, rows=rows, values=values, error=error, bad_input=bad_input,
        choices=choices, actions=m.ACTION_LABELS, ops=m.OP_LABELS, editing=current is not None or bool(values["rule_id"]),
        editor=can_edit(g.admin),
    ), (400 if error else 200)


def _card(p: Product) -> dict:
    # an address the admin page can show (a path is on the shop's own site, not here)
    return {"id": p.external_id, "title": p.title, "image": p.image if (p.image or "").startswith(("http://", "https://", "data:image/")) else "",
            "price": p.price, "currency": p.currency, "category": p.category, "in_stock": bool(p.in_stock)}


@bp.get("/sites/<int:site_id>/products/search")
@site_page()
def product_search(s: Site):
    """``?q=`` products whose id starts with, or title contains, the text; ``?ids=a,b`` those products."""
    ids = [i for i in (request.args.get("ids") or "").split(",") if i][:200]
    if ids:
        found = products_by_ids(s.id, ids)
        return jsonify(products=[_card(found[i]) for i in ids if i in found])
    q = (request.args.get("q") or "").strip()[:100]
    if not q:
        return jsonify(products=[])
    like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = db.session.scalars(
        select(Product).where(Product.site_id == s.id, or_(
            Product.external_id.ilike(f"{like}%", escape="\\"), Product.title.ilike(f"%{like}%", escape="\\"),
        )).order_by(Product.in_stock.desc(), Product.title).limit(SEARCH_LIMIT)
    ).all()
    rows.sort(key=lambda p: p.external_id.lower() != q.lower())  # an exact id first
    return jsonify(products=[_card(p) for p in rows])
