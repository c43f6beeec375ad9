"""Rule trees: validation, evaluation in Python (one profile) and compilation to SQL (all profiles).

A rule is JSON::

    {"and": [
        {"field": "orders.total", "op": "gt", "value": 500},
        {"field": "orders.last_at", "op": "older_than_days", "value": 60},
        {"not": {"segment": "vip"}},
        {"behaviour": {"event": "product_viewed", "category": "Shoes", "within_days": 14, "min": 3}}
    ]}

Both evaluators follow one set of semantics (docs/segments.md), and a test checks
that they agree on random rules and data:

* a condition on a value the profile does not have is false, except ``missing``,
  ``has_none`` and ``not_in`` — so ``{"not": …}`` of a condition is its exact complement;
* values compare only with values of the same kind (a number never equals a string);
* text comparisons are case-sensitive; ``gt``/``lt``… work on numbers and dates only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, cast, exists, false, func, not_, or_, select, true
from sqlalchemy.sql import ColumnElement

from ..models import Event, Interaction, Order, Product, Profile
from ..profiles.attributes import LIST_SEP, NAME_RE, epoch_seconds, parse_when, typed
from ..profiles.models import ProfileAttribute
from ..records import EVENT_TYPES
from ..validation import InvalidInput
from .models import ProfileScore, SegmentMember

NUM, TEXT, DATE = "number", "text", "date"

# Built-in fields: where each lives and its kind. ``attributes.<name>`` is any stored attribute.
PROFILE_FIELDS = {
    "profile.email": (Profile.email, TEXT),
    "profile.customer_id": (Profile.customer_id, TEXT),
    "profile.created_at": (Profile.created_at, DATE),
    "profile.last_seen_at": (Profile.last_seen_at, DATE),
}
ORDER_FIELDS = {"orders.count": NUM, "orders.total": NUM, "orders.avg": NUM, "orders.first_at": DATE, "orders.last_at": DATE}
SCORE_FIELDS = {
    name: (TEXT if name in ("rfm", "rfm_segment", "cluster_name") else NUM)
    for name in (
        "orders", "total_spent", "avg_order", "recency_days", "tenure_days", "r_score", "f_score", "m_score", "rfm",
        "rfm_segment", "value", "attrition", "expected_orders", "potential", "cluster", "cluster_name", "order_propensity",
    )
}
# ``scores.category_propensity.<category>``: the chance of buying in that category in the next 30 days,
# known for the customer's likeliest categories (a number; missing for the others)
CATEGORY_PROPENSITY = "scores.category_propensity."
MAX_CATEGORY = 200  # as long as a product's category can be
BEHAVIOUR_EVENTS = (*EVENT_TYPES, "purchased")

OPS = {
    "eq", "neq", "gt", "gte", "lt", "lte", "between", "in", "not_in", "contains", "starts_with",
    "exists", "missing", "has_any", "has_all", "has_none", "within_days", "older_than_days",
}
ORDERED = {"gt", "gte", "lt", "lte", "between"}
NO_VALUE = {"exists", "missing"}
MAX_NODES = 200
MAX_DAYS = 100_000  # within_days / older_than_days, and a behaviour's window
MAX_DEPTH = 12
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


# ---------------------------------------------------------------- validation


def field_kind(name: str) -> str | None:
    """The kind of a built-in field; ``None`` for attributes (whose kind is their value's)."""
    if name in PROFILE_FIELDS:
        return PROFILE_FIELDS[name][1]
    if name in ORDER_FIELDS:
        return ORDER_FIELDS[name]
    if name.startswith("scores.") and name[7:] in SCORE_FIELDS:
        return SCORE_FIELDS[name[7:]]
    if name.startswith(CATEGORY_PROPENSITY) and 0 < len(name) - len(CATEGORY_PROPENSITY) <= MAX_CATEGORY:
        return NUM
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _scalar(v: Any) -> bool:
    return isinstance(v, str | bool) or _is_number(v)


def rule_schema() -> dict[str, Any]:
    """The JSON Schema the API description shows for a rule tree; every rule of this form passes
    :func:`validate_rule`. It shows conditions and one level of and / or / not over them; the
    server takes deeper trees (docs/segments.md) and ``{"segment": key}`` of a stored segment."""
    builtins = {**{name: kind for name, (_col, kind) in PROFILE_FIELDS.items()}, **ORDER_FIELDS,
                **{f"scores.{name}": kind for name, kind in SCORE_FIELDS.items()}}

    def fields(kind: str) -> dict[str, Any]:
        return {"enum": sorted(name for name, k in builtins.items() if k == kind)}

    def condition(field: dict, ops: list[str], value: dict | None) -> dict[str, Any]:
        props: dict[str, Any] = {"field": field, "op": {"enum": ops}}
        if value is not None:
            props["value"] = value
        return {"type": "object", "additionalProperties": False, "properties": props, "required": sorted(props)}

    text = {"type": "string", "minLength": 1, "maxLength": 200}
    attribute = {"type": "string", "pattern": r"^attributes\.[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$"}
    days = {"type": "number", "minimum": 0, "maximum": MAX_DAYS}
    leaf = [
        condition(fields(NUM), ["eq", "neq", "gt", "gte", "lt", "lte"], {"type": "number"}),
        condition(fields(TEXT), ["eq", "neq", "contains", "starts_with"], text),
        condition(fields(DATE), ["within_days", "older_than_days"], days),
        condition({"enum": sorted(builtins)}, sorted(NO_VALUE), None),
        condition(attribute, ["eq", "neq"], {"type": ["string", "number", "boolean"], "maxLength": 200}),
        condition(attribute, ["gt", "gte", "lt", "lte"], {"type": "number"}),
        condition(attribute, sorted(NO_VALUE), None),
        {"type": "object", "additionalProperties": False, "required": ["behaviour"], "properties": {"behaviour": {
            "type": "object", "additionalProperties": False, "required": ["event"], "properties": {
                "event": {"enum": list(BEHAVIOUR_EVENTS)}, "category": text, "product_id": text,
                "within_days": {"type": "number", "minimum": 0.001, "maximum": MAX_DAYS},
                "min": {"type": "number", "minimum": 0, "maximum": 1e6},
            }}}},
    ]
    one = {"anyOf": leaf}

    def node(kind: str, schema: dict) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False, "required": [kind], "properties": {kind: schema}}

    return {"anyOf": [*leaf, node("and", {"type": "array", "minItems": 1, "maxItems": 5, "items": one}),
                      node("or", {"type": "array", "minItems": 1, "maxItems": 5, "items": one}), node("not", one)],
            "description": ("a rule tree (docs/segments.md): conditions {field, op, value}, {behaviour: {…}}, {segment: key}, "
                            f"combined by and / or / not up to {MAX_DEPTH} levels and {MAX_NODES} conditions; shown here: "
                            "conditions and one level of and / or / not")}


def validate_rule(rule: Any, path: str = "rule") -> dict:
    """Check a rule tree and return it normalised; raise :class:`InvalidInput` naming the node."""
    counter = [0]
    out = _validate(rule, path, 0, counter)
    return out


def _validate(node: Any, path: str, depth: int, counter: list[int]) -> dict:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise InvalidInput(path, f"a rule has at most {MAX_NODES} conditions")
    if depth > MAX_DEPTH:
        raise InvalidInput(path, f"a rule nests at most {MAX_DEPTH} levels")
    if not isinstance(node, dict) or len(node) == 0:
        raise InvalidInput(path, "must be an object: and / or / not / field / behaviour / segment")
    if "and" in node or "or" in node:
        kind = "and" if "and" in node else "or"
        if len(node) != 1:
            raise InvalidInput(path, f"an {kind!r} node has no other keys")
        children = node[kind]
        if not isinstance(children, list) or not children:
            raise InvalidInput(f"{path}.{kind}", "must be a non-empty list of conditions")
        return {kind: [_validate(c, f"{path}.{kind}[{i}]", depth + 1, counter) for i, c in enumerate(children)]}
    if "not" in node:
        if len(node) != 1:
            raise InvalidInput(path, "a 'not' node has no other keys")
        return {"not": _validate(node["not"], f"{path}.not", depth + 1, counter)}
    if "segment" in node:
        key = node["segment"]
        if len(node) != 1 or not isinstance(key, str) or not KEY_RE.match(key):
            raise InvalidInput(f"{path}.segment", "must be a segment key (lowercase letters, digits, _ or -)")
        return {"segment": key}
    if "behaviour" in node:
        return {"behaviour": _validate_behaviour(node["behaviour"], f"{path}.behaviour")}
    if "field" in node:
        return _validate_condition(node, path)
    raise InvalidInput(path, "must be one of: and, or, not, field, behaviour, segment")


def _validate_behaviour(b: Any, path: str) -> dict:
    if not isinstance(b, dict):
        raise InvalidInput(path, "must be an object with event, and optional category, product_id, within_days, min, max")
    unknown = set(b) - {"event", "category", "product_id", "within_days", "min", "max"}
    if unknown:
        raise InvalidInput(f"{path}.{sorted(unknown)[0]}", "is not a behaviour key")
    if b.get("event") not in BEHAVIOUR_EVENTS:
        raise InvalidInput(f"{path}.event", f"must be one of {', '.join(BEHAVIOUR_EVENTS)}")
    out: dict[str, Any] = {"event": b["event"]}
    for key in ("category", "product_id"):
        if b.get(key) is not None:
            if not isinstance(b[key], str) or not b[key] or len(b[key]) > 200:
                raise InvalidInput(f"{path}.{key}", "must be a non-empty string")
            out[key] = b[key]
    # a window reaches back at most MAX_DAYS (about 270 years): further back is before the calendar's start
    for key, low, high in (("within_days", 0.001, MAX_DAYS), ("min", 0, 1e6), ("max", 0, 1e6)):
        if b.get(key) is not None:
            v = b[key]
            if not _is_number(v) or v < low or v > high:
                raise InvalidInput(f"{path}.{key}", f"must be a number from {low} to {high:.0f}")
            out[key] = v
    if "min" not in out and "max" not in out:
        out["min"] = 1
    if out.get("min", 0) > out.get("max", math.inf):
        raise InvalidInput(f"{path}.min", "must not be above max")
    return out


def _validate_condition(node: dict, path: str) -> dict:
    unknown = set(node) - {"field", "op", "value"}
    if unknown:
        raise InvalidInput(f"{path}.{sorted(unknown)[0]}", "is not a condition key (field, op, value)")
    name = node["field"]
    if not isinstance(name, str):
        raise InvalidInput(f"{path}.field", "must be a string")
    kind = field_kind(name)
    if kind is None and name.startswith(CATEGORY_PROPENSITY):
        raise InvalidInput(f"{path}.field", f"names a category after {CATEGORY_PROPENSITY} (1 to {MAX_CATEGORY} characters), e.g. {CATEGORY_PROPENSITY}Tea")
    if kind is None and not (name.startswith("attributes.") and NAME_RE.match(name[11:])):
        raise InvalidInput(f"{path}.field", "must be profile.*, orders.*, scores.* or attributes.<name> (see docs/segments.md)")
    op = node.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise InvalidInput(f"{path}.op", f"must be one of {', '.join(sorted(OPS))}")
    value = node.get("value")
    vpath = f"{path}.value"
    if op in NO_VALUE:
        return {"field": name, "op": op}
    if value is None:
        raise InvalidInput(vpath, "is required", "missing")
    if op in ("within_days", "older_than_days"):
        if not _is_number(value) or value < 0 or value > MAX_DAYS:
            raise InvalidInput(vpath, "must be a number of days")
        if kind not in (DATE, None):
            raise InvalidInput(f"{path}.op", f"{op} needs a date field")
    elif op in ORDERED:
        values = value if op == "between" else [value]
        if op == "between" and (not isinstance(value, list) or len(value) != 2):
            raise InvalidInput(vpath, "must be [low, high]")
        if kind == DATE or (kind is None and all(isinstance(v, str) for v in values)):
            if any(parse_when(v) is None for v in values):
                raise InvalidInput(vpath, "must be an ISO date such as 2024-01-31")
        elif kind == TEXT or not all(_is_number(v) for v in values):
            raise InvalidInput(vpath, f"{op} compares numbers or dates")
    elif op in ("in", "not_in", "has_any", "has_all", "has_none"):
        if not isinstance(value, list) or not value or len(value) > 1000 or not all(_scalar(v) for v in value):
            raise InvalidInput(vpath, "must be a non-empty list of strings, numbers or booleans")
        if op.startswith("has") and not all(isinstance(v, str) or _is_number(v) for v in value):
            raise InvalidInput(vpath, "list members are strings or numbers")
        if op.startswith("has") and kind is not None:
            raise InvalidInput(f"{path}.op", f"{op} needs a list attribute")
    elif op in ("contains", "starts_with"):
        if not isinstance(value, str) or not value:
            raise InvalidInput(vpath, "must be a non-empty string")
        if kind in (NUM, DATE):
            raise InvalidInput(f"{path}.op", f"{op} needs a text field")
    else:  # eq / neq
        if not _scalar(value):
            raise InvalidInput(vpath, "must be a string, number or boolean")
        if kind == DATE and parse_when(value) is None:
            raise InvalidInput(vpath, "must be an ISO date such as 2024-01-31")
    if kind == DATE and op in ("in", "not_in", "contains", "starts_with"):
        raise InvalidInput(f"{path}.op", f"{op} does not apply to dates; use between or within_days")
    if kind == NUM and op not in ("within_days", "older_than_days"):
        values = value if isinstance(value, list) else [value]
        if not all(_is_number(v) for v in values):
            raise InvalidInput(vpath, f"{name} is a number")
    if kind == TEXT and op in ("eq", "neq", "in", "not_in") and not all(isinstance(v, str) for v in (value if isinstance(value, list) else [value])):
        raise InvalidInput(vpath, f"{name} is text")
    return {"field": name, "op": op, "value": value}


def referenced_segments(rule: dict) -> set[str]:
    """Keys of the segments a rule's ``segment`` conditions name."""
    out: set[str] = set()
    _walk(rule, lambda n: out.add(n["segment"]) if "segment" in n else None)
    return out


def behaviours(rule: dict) -> list[dict]:
    found: list[dict] = []
    _walk(rule, lambda n: found.append(n["behaviour"]) if "behaviour" in n else None)
    return found


def uses_relative_dates(rule: dict) -> bool:
    """Whether a rule measures time from now (``within_days`` / ``older_than_days``, or a behaviour
    window), so its members change as the clock moves, without any event."""
    found = []
    _walk(rule, lambda n: found.append(1) if n.get("op") in ("within_days", "older_than_days") else None)
    return bool(found) or any("within_days" in b for b in behaviours(rule))


def uses_scores(rule: dict) -> bool:
    found = []
    _walk(rule, lambda n: found.append(1) if str(n.get("field", "")).startswith("scores.") else None)
    return bool(found)


def _walk(node: dict, visit: Callable[[dict], None]) -> None:
    visit(node)
    for key in ("and", "or"):
        for child in node.get(key, ()):
            _walk(child, visit)
    if "not" in node:
        _walk(node["not"], visit)


# ---------------------------------------------------------------- Python evaluation


@dataclass
class Facts:
    """What one profile's rules look at. Behaviour counts are fetched on demand by ``count``."""

    profile: dict[str, Any]
    orders: dict[str, Any]
    scores: dict[str, Any]
    attributes: dict[str, Any]
    members: set[str]
    count: Callable[[dict], int]
    cache: dict[str, int] = field(default_factory=dict)


def evaluate(rule: dict, facts: Facts, now: datetime) -> bool:
    """Whether a (validated) rule holds for one profile."""
    if "and" in rule:
        return all(evaluate(c, facts, now) for c in rule["and"])
    if "or" in rule:
        return any(evaluate(c, facts, now) for c in rule["or"])
    if "not" in rule:
        return not evaluate(rule["not"], facts, now)
    if "segment" in rule:
        return rule["segment"] in facts.members
    if "behaviour" in rule:
        b = rule["behaviour"]
        key = repr(sorted(b.items()))
        if key not in facts.cache:
            facts.cache[key] = facts.count(b)
        n = facts.cache[key]
        return b.get("min", 0) <= n <= b.get("max", math.inf)
    return _condition(rule, _value_of(rule["field"], facts), now)


def _value_of(name: str, facts: Facts) -> Any:
    if name in PROFILE_FIELDS:
        return facts.profile.get(name[8:])
    if name in ORDER_FIELDS:
        return facts.orders.get(name[7:])
    if name.startswith(CATEGORY_PROPENSITY):
        likely = facts.scores.get("category_propensity")
        return likely.get(name[len(CATEGORY_PROPENSITY):]) if isinstance(likely, dict) else None
    if name.startswith("scores."):
        return facts.scores.get(name[7:])
    return facts.attributes.get(name[11:])


def _kind(v: Any) -> str | None:
    if isinstance(v, bool):
        return "b"
    if isinstance(v, int | float):
        return "n"
    if isinstance(v, str):
        return "s"
    if isinstance(v, datetime):
        return "d"
    if isinstance(v, list):
        return "l"
    return None


def _same(a: Any, b: Any) -> bool:
    return _kind(a) == _kind(b) and a == b


def _as_time(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v
    return parse_when(v)


def _condition(rule: dict, v: Any, now: datetime) -> bool:
    op, target = rule["op"], rule.get("value")
    if op == "missing":
        return v is None
    if op == "exists":
        return v is not None
    if op in ("not_in", "has_none"):
        return not _condition({**rule, "op": "in" if op == "not_in" else "has_any"}, v, now)
    if v is None:
        return False
    kind = field_kind(rule["field"])
    if op in ("within_days", "older_than_days"):
        when = _as_time(v)
        if when is None:
            return False
        edge = now - timedelta(days=target)
        return when >= edge if op == "within_days" else when < edge
    if isinstance(v, datetime) or (kind is None and op in ORDERED and isinstance(target if op != "between" else target[0], str)):
        when = _as_time(v)
        if when is None or (kind is None and not isinstance(v, str)):
            return False
        if op in ("eq", "neq"):
            same = when == parse_when(target)
            return same if op == "eq" else not same
        bounds = [parse_when(t) for t in (target if op == "between" else [target])]
        return _ordered(op, when, bounds)
    if op == "eq":
        return _same(v, target)
    if op == "neq":
        return not _same(v, target)
    if op in ORDERED:
        if _kind(v) != "n":
            return False
        return _ordered(op, float(v), [float(t) for t in (target if op == "between" else [target])])
    if op == "in":
        return any(_same(v, t) for t in target)
    if op == "contains":
        if isinstance(v, list):
            return target in _list_texts(v)
        return isinstance(v, str) and target in v
    if op == "starts_with":
        return isinstance(v, str) and v.startswith(target)
    if op in ("has_any", "has_all"):
        if not isinstance(v, list):
            return False
        have = _list_texts(v)
        wanted = [_member_text(t) for t in target]
        return any(t in have for t in wanted) if op == "has_any" else all(t in have for t in wanted)
    raise AssertionError(op)


def _ordered(op: str, v: Any, bounds: list) -> bool:
    if op == "gt":
        return v > bounds[0]
    if op == "gte":
        return v >= bounds[0]
    if op == "lt":
        return v < bounds[0]
    if op == "lte":
        return v <= bounds[0]
    return bounds[0] <= v <= bounds[1]


def _member_text(v: Any) -> str:
    return str(v)


def _list_texts(values: list) -> set[str]:
    encoded = typed(values)[1] or ""
    return {t for t in encoded.split(LIST_SEP) if t}


# ---------------------------------------------------------------- SQL compilation


@dataclass
class SqlContext:
    """What compilation needs: the site, the moment, the dialect, and segment keys → ids."""

    site_id: int
    now: datetime
    dialect: str
    segment_ids: dict[str, int]
    profile: Any = Profile.__table__
    scores: Any = ProfileScore.__table__


def to_sql(rule: dict, ctx: SqlContext) -> ColumnElement[bool]:
    """A WHERE clause over ``profiles`` LEFT JOIN ``profile_scores`` that is true exactly for members.

    Every leaf is a definite TRUE/FALSE (never NULL), so NOT of a condition is its complement.
    """
    if "and" in rule:
        return and_(*[to_sql(c, ctx) for c in rule["and"]])
    if "or" in rule:
        return or_(*[to_sql(c, ctx) for c in rule["or"]])
    if "not" in rule:
        return not_(to_sql(rule["not"], ctx))
    if "segment" in rule:
        seg = ctx.segment_ids.get(rule["segment"])
        if seg is None:
            return false()
        m = SegmentMember.__table__.alias("other_members")  # distinct from a rebuild's own member table
        return exists().where(m.c.segment_id == seg, m.c.profile_id == ctx.profile.c.id)
    if "behaviour" in rule:
        return _behaviour_sql(rule["behaviour"], ctx)
    name, op = rule["field"], rule["op"]
    if name.startswith("attributes."):
        return _attribute_sql(name[11:], op, rule.get("value"), ctx)
    kind = field_kind(name)
    col = _column(name, ctx)
    return _column_condition(col, kind, op, rule.get("value"), ctx)


def _column(name: str, ctx: SqlContext):
    p = ctx.profile
    if name in PROFILE_FIELDS:
        return p.c[name[8:]]
    if name.startswith(CATEGORY_PROPENSITY):
        return _category_propensity_sql(name[len(CATEGORY_PROPENSITY):], ctx)
    if name.startswith("scores."):
        return ctx.scores.c[name[7:]]
    o = Order.__table__
    where = (o.c.site_id == ctx.site_id, o.c.profile_id == p.c.id)
    agg = {
        "count": func.count(),
        "total": func.coalesce(func.sum(o.c.total), 0.0),
        "avg": func.avg(o.c.total),
        "first_at": func.min(o.c.occurred_at),
        "last_at": func.max(o.c.occurred_at),
    }[name[7:]]
    return select(agg).where(*where).scalar_subquery()


def _category_propensity_sql(category: str, ctx: SqlContext):
    """The stored propensity of one category (NULL when it is not among the customer's likeliest).

    The category is a bound value, never part of a JSON path: any text is safe as a key.
    """
    col = ctx.scores.c.category_propensity
    if ctx.dialect == "postgresql":
        return cast(col.op("->>")(category), Float)  # NULL for a missing key, a NULL column or a non-object
    pairs = func.json_each(col).table_valued("key", "value")
    return select(pairs.c.value).where(pairs.c.key == category).limit(1).scalar_subquery()


def _column_condition(col, kind: str, op: str, value: Any, ctx: SqlContext) -> ColumnElement[bool]:
    if op == "missing":
        return col.is_(None)
    if op == "exists":
        return col.is_not(None)
    if op == "not_in":
        return not_(_column_condition(col, kind, "in", value, ctx))
    present = col.is_not(None)
    if op in ("within_days", "older_than_days"):
        edge = ctx.now - timedelta(days=value)
        return and_(present, col >= edge if op == "within_days" else col < edge)
    conv = {DATE: parse_when, NUM: float}.get(kind, str)
    if op == "eq":
        return and_(present, col == conv(value))
    if op == "neq":
        return and_(present, col != conv(value))
    if op in ORDERED:
        bounds = [conv(v) for v in (value if op == "between" else [value])]
        return and_(present, _ordered_sql(op, col, bounds))
    if op == "in":
        return and_(present, col.in_([conv(v) for v in value]))
    if op == "contains":
        return and_(present, _instr(ctx.dialect, col, value) > 0)
    if op == "starts_with":
        return and_(present, func.substr(col, 1, len(value)) == value)
    raise InvalidInput("rule", f"{op} is not available on this field")


def _ordered_sql(op: str, col, bounds: list):
    if op == "gt":
        return col > bounds[0]
    if op == "gte":
        return col >= bounds[0]
    if op == "lt":
        return col < bounds[0]
    if op == "lte":
        return col <= bounds[0]
    return and_(col >= bounds[0], col <= bounds[1])


def _instr(dialect: str, haystack, needle: str):
    # case-sensitive substring position on both databases (LIKE is not: SQLite folds ASCII case)
    if dialect == "postgresql":
        return func.strpos(haystack, needle)
    return func.instr(haystack, needle)


def _attribute_sql(name: str, op: str, value: Any, ctx: SqlContext) -> ColumnElement[bool]:
    a = ProfileAttribute.__table__

    def has(*conds) -> ColumnElement[bool]:
        return exists().where(a.c.profile_id == ctx.profile.c.id, a.c.name == name, *conds)

    if op == "missing":
        return not_(has())
    if op == "exists":
        return has()
    if op == "not_in":
        return not_(_attribute_sql(name, "in", value, ctx))
    if op == "has_none":
        return not_(_attribute_sql(name, "has_any", value, ctx))
    if op in ("within_days", "older_than_days"):
        edge = epoch_seconds(ctx.now - timedelta(days=value))
        return has(a.c.vtype == "s", a.c.value_num.is_not(None), a.c.value_num >= edge if op == "within_days" else a.c.value_num < edge)
    if op in ORDERED:
        values = value if op == "between" else [value]
        if isinstance(values[0], str):  # dates given as ISO text: compare their epoch shadows
            bounds = [epoch_seconds(parse_when(v)) for v in values]
            return has(a.c.vtype == "s", a.c.value_num.is_not(None), _ordered_sql(op, a.c.value_num, bounds))
        return has(a.c.vtype == "n", _ordered_sql(op, a.c.value_num, [float(v) for v in values]))
    if op in ("eq", "neq"):
        match = _typed_equals(a, value)
        return has(match) if op == "eq" else has(not_(match))
    if op == "in":
        return has(or_(*[_typed_equals(a, v) for v in value]))
    if op == "contains":
        in_text = and_(a.c.vtype == "s", _instr(ctx.dialect, a.c.value_text, value) > 0)
        in_list = and_(a.c.vtype == "l", _instr(ctx.dialect, a.c.value_text, LIST_SEP + value + LIST_SEP) > 0)
        return has(or_(in_text, in_list))
    if op == "starts_with":
        return has(a.c.vtype == "s", func.substr(a.c.value_text, 1, len(value)) == value)
    if op in ("has_any", "has_all"):
        tests = [_instr(ctx.dialect, a.c.value_text, LIST_SEP + _member_text(v) + LIST_SEP) > 0 for v in value]
        return has(a.c.vtype == "l", or_(*tests) if op == "has_any" else and_(*tests))
    raise AssertionError(op)


def _typed_equals(a, value: Any) -> ColumnElement[bool]:
    vtype, text, num = typed(value)
    if vtype == "n":
        return and_(a.c.vtype == "n", a.c.value_num == num)
    return and_(a.c.vtype == vtype, a.c.value_text == text)


def _behaviour_sql(b: dict, ctx: SqlContext) -> ColumnElement[bool]:
    n = behaviour_count_query(b, ctx.site_id, ctx.now, ctx.profile.c.id).scalar_subquery()
    conds = []
    if b.get("min", 0) > 0:
        conds.append(n >= b["min"])
    if "max" in b:
        conds.append(n <= b["max"])
    return and_(*conds) if conds else true()


def behaviour_count_query(b: dict, site_id: int, now: datetime, profile_id):
    """``SELECT count(*)`` of a behaviour for one profile (a value or a correlated column)."""
    from ..kinds import PURCHASE

    if b["event"] == "purchased":
        t = Interaction.__table__
        conds = [t.c.site_id == site_id, t.c.profile_id == profile_id, t.c.kind == PURCHASE]
    else:
        t = Event.__table__
        conds = [t.c.profile_id == profile_id, t.c.type == b["event"]]  # a profile's events are its site's; the profile index serves
    if "within_days" in b:
        conds.append(t.c.occurred_at >= now - timedelta(days=b["within_days"]))
    if "product_id" in b:
        conds.append(t.c.product_id == b["product_id"])
    q = select(func.count()).select_from(t)
    if "category" in b:
        pr = Product.__table__
        q = q.join(pr, and_(pr.c.site_id == site_id, pr.c.external_id == t.c.product_id))
        conds.append(pr.c.category == b["category"])
    return q.where(*conds)
