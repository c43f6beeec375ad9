"""``GET`` / ``PUT /api/v1/rules``: the site's rules by attribute, for its own servers (secret key)."""

from __future__ import annotations

from ..catalog import products_by_ids
from ..db import db
from ..recommend import merchandising as m
from ..shapes import Obj, Shape
from ..validation import InvalidInput
from . import bp
from .auth import secret_site
from .events import json_body


class Rules(Shape):
    """The site's rules by attribute, checked by recommend.merchandising.validate_rules."""

    required = True

    def read(self, obj: dict, key: str, path: str) -> list[dict]:
        try:
            return m.validate_rules(obj.get(key))
        except m.RuleError as exc:
            raise InvalidInput(exc.field, exc.message) from None

    def value_schema(self) -> dict:
        return m.rules_schema()


PUT_RULES = Obj({"rules": Rules()}, open=True)


def _stored(site) -> list[dict]:
    return list(((site.settings or {}).get("rules") or {}).get("attribute_rules") or [])


@bp.get("/rules")
def get_rules():
    return {"rules": _stored(secret_site())}


@bp.put("/rules")
def put_rules():
    """``{"rules": [...]}`` replaces every rule by attribute (see docs/api.md); the rules by product id stay."""
    site = secret_site()
    body = json_body()
    rules = PUT_RULES.read_object(body, "")["rules"]
    for i, rule in enumerate(rules):
        named = m.named_products([rule])
        unknown = sorted(named - set(products_by_ids(site.id, sorted(named))))
        if unknown:
            where = "items" if set(unknown) & set(rule["items"]["value"] if rule["items"]["field"] == "id" else []) else "when.items"
            raise InvalidInput(f"rules[{i}].{where}.value", "unknown product id(s): " + ", ".join(unknown[:10]))
    current = dict((site.settings or {}).get("rules") or {})
    if rules:
        current["attribute_rules"] = rules
    else:
        current.pop("attribute_rules", None)
    site.settings = {**(site.settings or {}), "rules": current}
    db.session.commit()
    return {"rules": rules}
