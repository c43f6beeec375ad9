"""Merchandising rules by attribute: plain Python, no database, no Flask.

A rule names *which products* it acts on by an attribute of the catalogue (a category, a
price band, any product attribute such as ``brand`` or ``margin``, or chosen product ids),
*what it does* to them, and optionally *when*: a condition on the visitor's history
("bought any shoes"), a date window (a sale) and the slots it applies to::

    {"id": "socks", "name": "Socks for shoe buyers", "action": "show",
     "items": {"field": "category", "op": "is", "value": ["socks"]},
     "when": {"did": "bought", "items": {"field": "category", "op": "is", "value": ["shoes"]}},
     "count": 2, "starts": "2026-11-27T00:00:00Z", "ends": "2026-12-01T00:00:00Z",
     "slots": ["home", "cart"], "reason": "Socks for your new shoes"}

Actions:

- ``show``: up to ``count`` matching products are added to the list (if the strategy did not
  choose them already) and lifted right after the pinned products;
- ``boost``: the score of matching products is multiplied by ``factor`` (below 1 lowers it);
- ``bury``: matching products go to the end of the list (shown only when nothing else is left);
- ``hide``: matching products never show.

Rules are a post-processing step over whatever list a strategy produced, applied in this
order (see :func:`apply`): rules out of their date window, not for this slot, or whose
condition the visitor does not meet are skipped; then **hide**, **show**, **boost**, **bury**.
Products the shop pinned by id (and "bought A → show B") stay where they are, except that a
hide rule removes them too.

Everything that depends on the catalogue is computed once per catalogue version by
:func:`compile_rules` (each rule's set of matching product ids, in popularity order), so
applying rules to a request is set look-ups only.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from ..records import Recommendation

ACTIONS = ("show", "boost", "bury", "hide")
ACTION_LABELS = {"show": "Show", "boost": "Boost or lower", "bury": "Bury", "hide": "Hide"}
DID = ("bought", "viewed")
TEXT_OPS = ("is", "is_not")
NUMBER_OPS = ("below", "above", "between")
OP_LABELS = {"is": "is", "is_not": "is not", "below": "below", "above": "above", "between": "between"}
FIXED_FIELDS = ("id", "category", "price")
ATTRIBUTE = re.compile(r"^attributes\.([A-Za-z0-9_\-][A-Za-z0-9_ .\-]{0,63})$")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")
SLOT = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
MAX_RULES = 200
MAX_VALUES = 500
MAX_FACTOR = 100.0
MIN_FACTOR = 0.01
MAX_COUNT = 20
DEFAULT_COUNT = 3
MAX_TEXT = 200

PIN_BAND = 1e9 / 2  # scores at or above: pinned by id, or "bought A → show B" (builtins.rules); rules leave them be
SHOW_SCORE = 1e9 / 4  # "show" lifts products here, below the pins, above anything a strategy scores
SHOW_CANDIDATE = 1e-6  # score of a product a "show" rule adds: lifted by apply(), never by itself above a scored one


class RuleError(ValueError):
    """A rule that cannot be saved; ``field`` names where (``rules[0].items.value``)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- validation ------------------------------------------------------------------------------


def _text(value, where: str, required: bool = False, max_len: int = MAX_TEXT) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise RuleError(where, "must be text")
    value = value.strip()
    if required and not value:
        raise RuleError(where, "is required")
    if len(value) > max_len:
        raise RuleError(where, f"must be at most {max_len} characters")
    return value


def _number(value, where: str) -> float:
    if isinstance(value, bool):
        raise RuleError(where, "must be a number")
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", "."))
        except ValueError:
            raise RuleError(where, f"{value!r} is not a number") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError(where, "must be a number")
    return float(value)


def parse_when(value, where: str) -> float | None:
    """An ISO date or date-time (``2026-12-01``, ``2026-12-01T09:00``, with or without a zone;
    UTC when none) as unix seconds; ``None`` for empty."""
    text = _text(value, where, max_len=40)
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RuleError(where, f"{text!r} is not a date (write 2026-12-01 or 2026-12-01T09:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_selector(raw, where: str) -> dict:
    """``{"field", "op", "value"}`` checked and normalized."""
    if not isinstance(raw, Mapping):
        raise RuleError(where, "must be an object with field, op and value")
    name = _text(raw.get("field"), f"{where}.field", required=True, max_len=80)
    if name not in FIXED_FIELDS and not ATTRIBUTE.match(name):
        raise RuleError(f"{where}.field", f"{name!r} is not id, category, price or attributes.<name>")
    op = _text(raw.get("op") or "is", f"{where}.op", max_len=20)
    allowed = ("is",) if name == "id" else TEXT_OPS if name == "category" else NUMBER_OPS if name == "price" else TEXT_OPS + NUMBER_OPS
    if op not in allowed:
        raise RuleError(f"{where}.op", f"{op!r} does not apply to {name}; use {', '.join(allowed)}")
    value = raw.get("value")
    if op in TEXT_OPS:
        if isinstance(value, str):
            value = [v for v in re.split(r"[\n,]", value)]
        if not isinstance(value, list) or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
            raise RuleError(f"{where}.value", "must be a list of texts")
        values = list(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))
        if not values:
            raise RuleError(f"{where}.value", "name at least one " + ("product" if name == "id" else "value"))
        if len(values) > MAX_VALUES:
            raise RuleError(f"{where}.value", f"at most {MAX_VALUES} values")
        for v in values:
            if len(v) > MAX_TEXT:
                raise RuleError(f"{where}.value", f"{v[:20]!r}… is longer than {MAX_TEXT} characters")
        return {"field": name, "op": op, "value": values}
    if op == "between":
        if isinstance(value, str):
            value = [p for p in re.split(r"\s*(?:-|–|to|and|,)\s*", value.strip()) if p]
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise RuleError(f"{where}.value", "must be two numbers, low and high")
        low, high = _number(value[0], f"{where}.value"), _number(value[1], f"{where}.value")
        if low > high:
            raise RuleError(f"{where}.value", f"the low end {low:g} is above the high end {high:g}")
        return {"field": name, "op": op, "value": [low, high]}
    return {"field": name, "op": op, "value": _number(value, f"{where}.value")}


def rules_schema() -> dict:
    """The JSON form of a list of rules as the API description shows it: every rule of this form is
    taken by :func:`validate_rules` (which also takes the admin form's shorthands: values as
    comma-separated text, numbers as text, a missing ``op`` meaning ``is``). Two rules with one
    ``id``, and product ids the catalogue does not know, are refused too; no schema can say so."""
    # not only white space (as str.strip sees it: JSON Schema's \S would let \x1c-\x1f and \x85 through)
    NOT_BLANK = r"[^\s\x1c-\x1f\x85]"  # noqa: N806
    texts = {"type": "array", "minItems": 1, "maxItems": MAX_VALUES,
             "items": {"type": "string", "maxLength": MAX_TEXT, "pattern": NOT_BLANK}}
    number = {"type": "number"}

    def selector(field: dict, op: list[str], value: dict) -> dict:
        return {"type": "object", "required": ["field", "op", "value"], "additionalProperties": False,
                "properties": {"field": field, "op": {"enum": op}, "value": value}}

    attribute = {"type": "string", "pattern": ATTRIBUTE.pattern}
    items = {"anyOf": [
        selector({"const": "id"}, ["is"], texts),
        selector({"const": "category"}, list(TEXT_OPS), texts),
        selector({"const": "price"}, ["below", "above"], number),
        selector(attribute, list(TEXT_OPS), texts),
        selector(attribute, ["below", "above"], number),
    ], "description": "the products: by id, category, price or attributes.<name> (between takes [low, high])"}
    day = "-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$"
    common = {
        "id": {"type": "string", "pattern": RULE_ID.pattern, "description": "made up when absent; unique among the rules"},
        "name": {"type": "string", "maxLength": 100, "pattern": NOT_BLANK},
        "items": items,
        "when": {"type": "object", "required": ["did", "items"], "additionalProperties": False,
                 "properties": {"did": {"enum": list(DID)}, "items": items}},
        # the form shown keeps ends after starts; any ISO date or date-time is read
        "starts": {"type": "string", "pattern": "^20[0-4][0-9]" + day, "description": "from this date (ISO 8601)"},
        "ends": {"type": "string", "pattern": "^20[5-9][0-9]" + day, "description": "until this date, after starts"},
        "slots": {"type": "array", "maxItems": 50, "items": {"type": "string", "pattern": SLOT.pattern}},
        "reason": {"type": "string", "maxLength": 120},
        "enabled": {"type": "boolean"},
    }

    def action(name: str, extra: dict | None = None, required: tuple[str, ...] = ()) -> dict:
        return {"type": "object", "required": ["name", "action", "items", *required],
                "properties": {**common, "action": {"const": name}, **(extra or {})}}

    rule = {"anyOf": [
        action("show", {"count": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT, "default": DEFAULT_COUNT}}),
        action("boost", {"factor": {"type": "number", "minimum": MIN_FACTOR, "maximum": MAX_FACTOR}}, ("factor",)),
        action("bury"), action("hide"),
    ]}
    return {"type": "array", "maxItems": MAX_RULES, "items": rule}


def validate_rule(raw, where: str = "rule") -> dict:
    """One rule checked and normalized (an ``id`` is made up when it has none); raises
    :class:`RuleError` naming the field."""
    if not isinstance(raw, Mapping):
        raise RuleError(where, "must be an object")
    rule_id = _text(raw.get("id"), f"{where}.id", max_len=40) or "r" + secrets.token_hex(4)
    if not RULE_ID.match(rule_id):
        raise RuleError(f"{where}.id", "use lower-case letters, digits, _ and -")
    action = _text(raw.get("action"), f"{where}.action", required=True, max_len=20)
    if action not in ACTIONS:
        raise RuleError(f"{where}.action", f"{action!r} is not one of {', '.join(ACTIONS)}")
    out: dict = {
        "id": rule_id,
        "name": _text(raw.get("name"), f"{where}.name", required=True, max_len=100),
        "action": action,
        "items": validate_selector(raw.get("items"), f"{where}.items"),
    }
    if action == "boost":
        factor = _number(raw.get("factor", ""), f"{where}.factor") if raw.get("factor") not in (None, "") else None
        if factor is None:
            raise RuleError(f"{where}.factor", "is required to boost (2 doubles the score, 0.5 halves it)")
        if not MIN_FACTOR <= factor <= MAX_FACTOR:
            raise RuleError(f"{where}.factor", f"{factor:g} is not between {MIN_FACTOR:g} and {MAX_FACTOR:g}")
        out["factor"] = factor
    if action == "show":
        count = raw.get("count")
        count = DEFAULT_COUNT if count in (None, "") else _number(count, f"{where}.count")
        if count != int(count) or not 1 <= count <= MAX_COUNT:
            raise RuleError(f"{where}.count", f"must be a whole number from 1 to {MAX_COUNT}")
        out["count"] = int(count)
    when = raw.get("when")
    if when:
        if not isinstance(when, Mapping):
            raise RuleError(f"{where}.when", "must be an object with did and items")
        did = _text(when.get("did"), f"{where}.when.did", required=True, max_len=20)
        if did not in DID:
            raise RuleError(f"{where}.when.did", f"{did!r} is not one of {', '.join(DID)}")
        out["when"] = {"did": did, "items": validate_selector(when.get("items"), f"{where}.when.items")}
    starts = parse_when(raw.get("starts"), f"{where}.starts")
    ends = parse_when(raw.get("ends"), f"{where}.ends")
    if starts is not None and ends is not None and ends <= starts:
        raise RuleError(f"{where}.ends", "must be after the start")
    if starts is not None:
        out["starts"] = _iso(starts)
    if ends is not None:
        out["ends"] = _iso(ends)
    slots = raw.get("slots") or []
    if isinstance(slots, str):
        slots = [s for s in re.split(r"[\s,]+", slots) if s]
    if not isinstance(slots, list) or not all(isinstance(s, str) and SLOT.match(s) for s in slots):
        raise RuleError(f"{where}.slots", "must be a list of slot names (letters, digits, _ . : -)")
    if slots:
        out["slots"] = list(dict.fromkeys(slots))
    reason = _text(raw.get("reason"), f"{where}.reason", max_len=120)
    if reason:
        out["reason"] = reason
    if raw.get("enabled") is False:
        out["enabled"] = False
    return out


def validate_rules(raw) -> list[dict]:
    """A whole list of rules (``rules[i]…`` in errors); ids must be unique."""
    if not isinstance(raw, list):
        raise RuleError("rules", "must be a list")
    if len(raw) > MAX_RULES:
        raise RuleError("rules", f"at most {MAX_RULES} rules")
    out, seen = [], set()
    for i, item in enumerate(raw):
        rule = validate_rule(item, f"rules[{i}]")
        if rule["id"] in seen:
            raise RuleError(f"rules[{i}].id", f"{rule['id']!r} is used by another rule")
        seen.add(rule["id"])
        out.append(rule)
    return out


def named_products(rules: Iterable[dict]) -> set[str]:
    """The product ids that rules name (to check they exist)."""
    out: set[str] = set()
    for rule in rules:
        for sel in (rule["items"], (rule.get("when") or {}).get("items")):
            if sel and sel["field"] == "id":
                out.update(sel["value"])
    return out


# --- the catalogue, compiled ------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogItem:
    id: str
    title: str = ""
    category: str = ""
    price: float | None = None
    attributes: Mapping = field(default_factory=dict)
    in_stock: bool = True


def _value_of(item: CatalogItem, name: str):
    if name == "id":
        return item.id
    if name == "category":
        return item.category
    if name == "price":
        return item.price
    return (item.attributes or {}).get(name.split(".", 1)[1])


def _as_number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(str(value).strip().rstrip("%")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def selector_matches(sel: dict, item: CatalogItem) -> bool:
    value = _value_of(item, sel["field"])
    op = sel["op"]
    if op in TEXT_OPS:
        if sel["field"] == "id":
            hit = value in sel["value"]
        else:
            values = value if isinstance(value, list) else [value]
            wanted = {v.casefold() for v in sel["value"]}
            hit = any(v is not None and str(v).strip().casefold() in wanted for v in values)
        return hit if op == "is" else not hit
    number = _as_number(value)
    if number is None:
        return False
    if op == "below":
        return number < sel["value"]
    if op == "above":
        return number > sel["value"]
    low, high = sel["value"]
    return low <= number <= high


@dataclass(frozen=True)
class CompiledRule:
    id: str
    name: str
    action: str
    targets: frozenset[str]
    ordered: tuple[str, ...]  # in-stock targets, most popular first (what "show" adds)
    factor: float = 1.0
    count: int = DEFAULT_COUNT
    did: str | None = None
    condition: frozenset[str] = frozenset()
    starts: float | None = None
    ends: float | None = None
    slots: frozenset[str] = frozenset()
    reason: str = ""

    def live(self, slot: str, now: float) -> bool:
        return (not self.slots or slot in self.slots) and (self.starts is None or now >= self.starts) and (self.ends is None or now < self.ends)


@dataclass(frozen=True)
class CompiledRules:
    rules: tuple[CompiledRule, ...]
    titles: Mapping[str, str]

    def __bool__(self) -> bool:
        return bool(self.rules)


def compile_rules(rules: Sequence[dict], catalog: Iterable[CatalogItem], popularity: Sequence[str] = ()) -> CompiledRules:
    """Each enabled rule's matching products, computed once over the catalogue.

    ``rules`` are validated rules (:func:`validate_rules`); ``popularity`` lists product ids most
    popular first (the others follow in catalogue order): the order in which "show" adds products.
    """
    items = list(catalog)
    rank = {pid: i for i, pid in enumerate(popularity)}
    by_popularity = sorted(range(len(items)), key=lambda i: (rank.get(items[i].id, len(rank)), i))
    position = {i: n for n, i in enumerate(by_popularity)}
    index: dict[str, dict[str, set[int]]] = {}  # field → folded text value → rows: "is" by look-up, not by scan

    def rows_of(sel: dict) -> set[int]:
        if sel["op"] in TEXT_OPS and sel["field"] != "id":
            by_value = index.get(sel["field"])
            if by_value is None:
                by_value = index[sel["field"]] = {}
                for i, it in enumerate(items):
                    value = _value_of(it, sel["field"])
                    for v in value if isinstance(value, list) else [value]:
                        if v is not None:
                            by_value.setdefault(str(v).strip().casefold(), set()).add(i)
            hit = set().union(*(by_value.get(v.casefold(), ()) for v in sel["value"]))
            return hit if sel["op"] == "is" else set(range(len(items))) - hit
        return {i for i, it in enumerate(items) if selector_matches(sel, it)}

    compiled = []
    for rule in rules:
        if rule.get("enabled") is False:
            continue
        targets = [items[i] for i in sorted(rows_of(rule["items"]), key=position.__getitem__)]
        when = rule.get("when")
        condition = frozenset(items[i].id for i in rows_of(when["items"])) if when else frozenset()
        compiled.append(CompiledRule(
            id=rule["id"], name=rule["name"], action=rule["action"],
            targets=frozenset(t.id for t in targets),
            ordered=tuple(t.id for t in targets if t.in_stock)[:200] if rule["action"] == "show" else (),
            factor=float(rule.get("factor", 1.0)), count=int(rule.get("count", DEFAULT_COUNT)),
            did=when["did"] if when else None, condition=condition,
            starts=parse_when(rule.get("starts"), "starts"), ends=parse_when(rule.get("ends"), "ends"),
            slots=frozenset(rule.get("slots") or ()), reason=rule.get("reason", ""),
        ))
    needed = set().union(*(r.condition for r in compiled)) if compiled else set()
    titles = {it.id: it.title for it in items if it.id in needed}
    return CompiledRules(tuple(compiled), titles)


# --- serving ----------------------------------------------------------------------------------


@dataclass
class Visit:
    """What rules look at in one request: the slot, the time, and the visitor's history newest
    first as ``(product id, "view" | "cart" | "purchase")``; the product on the page counts as viewed."""

    slot: str
    now: float
    history: Sequence[tuple[str, str]] = ()
    product: str | None = None

    @cached_property
    def bought(self) -> frozenset[str]:
        return frozenset(pid for pid, kind in self.history if kind == "purchase")

    @cached_property
    def seen(self) -> frozenset[str]:
        return frozenset(pid for pid, _kind in self.history)


def _trigger(rule: CompiledRule, visit: Visit) -> str | None:
    """The product (newest first) that meets the rule's condition; ``""`` when it has none."""
    if rule.did is None:
        return ""
    if rule.did == "viewed" and visit.product and visit.product in rule.condition:
        return visit.product
    if rule.condition.isdisjoint(visit.bought if rule.did == "bought" else visit.seen):
        return None  # most rules, most visitors: one set operation
    for pid, kind in visit.history:
        if pid in rule.condition and (kind == "purchase" if rule.did == "bought" else True):
            return pid
    return None


def active_rules(compiled: CompiledRules, visit: Visit) -> list[tuple[CompiledRule, str]]:
    """The rules that apply to this visit, each with the product that triggered it ("" for none)."""
    out = []
    for rule in compiled.rules:
        if rule.live(visit.slot, visit.now):
            trigger = _trigger(rule, visit)
            if trigger is not None:
                out.append((rule, trigger))
    return out


def _reason(rule: CompiledRule, trigger: str, titles: Mapping[str, str]) -> str:
    if rule.reason:
        return rule.reason
    if trigger:
        return f"Goes well with {titles.get(trigger) or trigger}"
    return "Picked by the shop"


def extra_candidates(compiled: CompiledRules, visit: Visit, exclude: Iterable[str] = ()) -> list[Recommendation]:
    """The products that "show" rules bring into the list (more than ``count`` each: some may turn
    out to be in the list already or out of stock); :func:`apply` then lifts them."""
    skip = set(exclude)
    if visit.product:
        skip.add(visit.product)
    out: list[Recommendation] = []
    seen: set[str] = set()
    for rule, trigger in active_rules(compiled, visit):
        if rule.action != "show":
            continue
        n = 0
        for pid in rule.ordered:
            if pid in skip or pid in seen:
                continue
            out.append(Recommendation(pid, SHOW_CANDIDATE / (1 + len(out)), _reason(rule, trigger, compiled.titles), f"rule:{rule.id}"))
            seen.add(pid)
            n += 1
            if n >= rule.count + 4:
                break
    return out


def apply(compiled: CompiledRules, items: list[Recommendation], visit: Visit) -> list[tuple[str, str]]:
    """Apply the rules to ``items`` in place (hide, show, boost, bury; re-sorted best first) and
    return ``(product id, rule id)`` for each change, in the order made."""
    changes: list[tuple[str, str]] = []
    rules = active_rules(compiled, visit)
    if not rules or not items:
        return changes
    hidden = set()
    for rule, _ in rules:
        if rule.action == "hide":
            for item in items:
                if item.product_id in rule.targets and item.product_id not in hidden:
                    hidden.add(item.product_id)
                    changes.append((item.product_id, rule.id))
    if hidden:
        items[:] = [item for item in items if item.product_id not in hidden]
    items.sort(key=lambda c: -c.score)
    lifted: set[str] = set()
    position = 0
    for rule, trigger in rules:
        if rule.action != "show":
            continue
        n = 0
        for item in items:  # best first: what the strategy ranked higher shows first
            if n >= rule.count:
                break
            pid = item.product_id
            if pid in rule.targets and pid not in lifted and item.score < PIN_BAND and pid != visit.product:
                item.score = SHOW_SCORE - position
                item.reason = _reason(rule, trigger, compiled.titles)
                lifted.add(pid)
                changes.append((pid, rule.id))
                position += 1
                n += 1
    for rule, trigger in rules:
        if rule.action != "boost":
            continue
        for item in items:
            if item.product_id in rule.targets and item.product_id not in lifted and item.score < PIN_BAND:
                item.score *= rule.factor
                if rule.factor > 1 or rule.reason:
                    item.reason = _reason(rule, trigger, compiled.titles)
                changes.append((item.product_id, rule.id))
    buried: list[Recommendation] = []
    buried_ids: set[str] = set()
    for rule, _trigger in rules:
        if rule.action != "bury":
            continue
        for item in items:
            if item.product_id in rule.targets and item.score < PIN_BAND and item.product_id not in buried_ids:
                buried.append(item)
                buried_ids.add(item.product_id)
                if rule.reason:
                    item.reason = rule.reason
                changes.append((item.product_id, rule.id))
    if buried:
        kept = [item for item in items if item.product_id not in buried_ids]
        lowest = min((item.score for item in kept), default=0.0)
        buried.sort(key=lambda c: -c.score)
        for i, item in enumerate(buried):
            item.score = lowest - 1.0 - i
    items.sort(key=lambda c: -c.score)
    return changes


def describe_selector(sel: dict) -> str:
    """A selector in words: ``category is shoes``, ``price between 10 and 20``."""
    name = sel["field"].removeprefix("attributes.")
    if sel["field"] == "id":
        return "products " + ", ".join(sel["value"])
    if sel["op"] in TEXT_OPS:
        return f"{name} {OP_LABELS[sel['op']]} " + " or ".join(sel["value"])
    if sel["op"] == "between":
        return f"{name} between {sel['value'][0]:g} and {sel['value'][1]:g}"
    return f"{name} {sel['op']} {sel['value']:g}"


def describe(rule: dict) -> str:
    """A rule in the shop owner's words."""
    what = describe_selector(rule["items"])
    text = {"show": f"show {rule.get('count', DEFAULT_COUNT)} of {what}", "boost": f"boost {what} ×{rule.get('factor', 1):g}",
            "bury": f"bury {what}", "hide": f"hide {what}"}[rule["action"]]
    if rule.get("when"):
        text = f"who {rule['when']['did']} {describe_selector(rule['when']['items'])}: {text}"
    return text[0].upper() + text[1:]
