"""A journey's definition: its JSON shape, validation, and how people move through its steps.

A definition (docs/journeys.md has every field)::

    {"trigger": {"type": "event", "event": "product_added"},
     "reentry": {"mode": "cooldown", "days": 7},
     "steps": [
        {"id": "s1", "type": "wait", "seconds": 3600},
        {"id": "s2", "type": "branch", "rule": {"field": "orders.count", "op": "gte", "value": 1},
         "branches": {"yes": [{"id": "s3", "type": "exit"}],
                      "no": [{"id": "s4", "type": "email", "subject": "…", "html": "…", "recommendations": 4}]}}],
     "goal": {"type": "order"}, "goal_days": 7,
     "exit": {"on_goal": true, "on_segment_exit": false},
     "control": 10,
     "limits": {"quiet_start": "21:00", "quiet_end": "08:00", "recent_hours": 0}}

Steps form a vertical flow: a step with branches (``branch``, ``split``, ``wait_event``)
sends each person down one of its lists, and every list flows back into the step after
the branching one. Step ids are unique in a journey and never reused, so a person in
flight can be found again in a later version of it (:mod:`personalize.journeys.store`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..profiles.attributes import NAME_RE
from ..records import EVENT_TYPES
from ..segments.rules import validate_rule
from ..validation import InvalidInput

TRIGGERS = ("event", "segment_entered", "segment_left", "date", "api")
STEP_TYPES = ("wait", "wait_event", "branch", "split", "email", "webhook", "connector", "set_attribute", "exit")
ACTIONS = ("email", "webhook", "connector", "set_attribute")
BRANCHES = {"branch": ("yes", "no"), "wait_event": ("received", "timeout")}
SPLIT_LABELS = ("a", "b", "c", "d")
REENTRY = ("once", "every_time", "cooldown")
GOALS = ("order", "event", "none")
WHERE_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "contains", "exists")
STEP_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
MAX_STEPS = 100
MAX_DEPTH = 8
MAX_WAIT_SECONDS = 365 * 86400
MAX_TEMPLATE = 100_000
MAX_CONTROL = 50
DEFAULT_GOAL_DAYS = 7


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: Any, path: str, low: int, high: int) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
        raise InvalidInput(path, f"must be a whole number from {low} to {high}")
    return v


def _text(v: Any, path: str, limit: int, required: bool = True) -> str:
    if v is None and not required:
        return ""
    if not isinstance(v, str) or (required and not v.strip()) or len(v) > limit:
        raise InvalidInput(path, f"must be text of 1 to {limit} characters" if required else f"must be text of at most {limit} characters")
    return v


def _time(v: Any, path: str) -> str:
    if not isinstance(v, str) or not TIME_RE.match(v):
        raise InvalidInput(path, "must be a time of day such as 09:30 (24-hour clock)")
    return v


def _only(node: dict, allowed: set[str], path: str) -> None:
    unknown = set(node) - allowed
    if unknown:
        raise InvalidInput(f"{path}.{sorted(unknown)[0]}", f"is not a field here (known: {', '.join(sorted(allowed))})")


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | bool) or _is_number(v)


def check_url(v: Any, path: str) -> str:
    """An absolute http(s) URL without credentials in it."""
    if not isinstance(v, str) or len(v) > 2000:
        raise InvalidInput(path, "must be an http:// or https:// address of at most 2000 characters")
    parts = urlsplit(v.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(path, "must be an http:// or https:// address")
    if parts.username or parts.password:
        raise InvalidInput(path, "must not carry a user name or password; webhooks are signed instead")
    return v.strip()


# ---------------------------------------------------------------- validation


def validate_definition(raw: Any) -> dict:
    """Check a definition and return it normalised (defaults filled in); raise :class:`InvalidInput`
    naming the field (``steps[1].branches.no[0].subject``)."""
    if not isinstance(raw, dict):
        raise InvalidInput("definition", "must be an object with trigger, steps, …")
    _only(raw, {"trigger", "reentry", "steps", "goal", "goal_days", "exit", "control", "limits"}, "definition")
    out: dict[str, Any] = {"trigger": _trigger(raw.get("trigger"), "trigger")}
    out["reentry"] = _reentry(raw.get("reentry", {"mode": "once"}), "reentry")
    seen: set[str] = set()
    steps = raw.get("steps", [])
    out["steps"] = _steps(steps, "steps", 0, seen)
    out["goal"] = _goal(raw.get("goal", {"type": "order"}), "goal")
    out["goal_days"] = _whole(raw.get("goal_days", DEFAULT_GOAL_DAYS), "goal_days", 1, 90)
    exits = raw.get("exit", {})
    if not isinstance(exits, dict):
        raise InvalidInput("exit", "must be an object with on_goal and on_segment_exit")
    _only(exits, {"on_goal", "on_segment_exit"}, "exit")
    segment_trigger = out["trigger"]["type"] == "segment_entered"
    out["exit"] = {
        "on_goal": _bool(exits.get("on_goal", out["goal"]["type"] != "none"), "exit.on_goal"),
        "on_segment_exit": _bool(exits.get("on_segment_exit", segment_trigger), "exit.on_segment_exit"),
    }
    if out["exit"]["on_segment_exit"] and not segment_trigger:
        raise InvalidInput("exit.on_segment_exit", "applies only to journeys entered by entering a segment")
    if out["exit"]["on_goal"] and out["goal"]["type"] == "none":
        raise InvalidInput("exit.on_goal", "needs a goal")
    out["control"] = _whole(raw.get("control", 10), "control", 0, MAX_CONTROL)
    out["limits"] = _limits(raw.get("limits", {}), "limits")
    return out


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise InvalidInput(path, "must be true or false")
    return v


def _trigger(t: Any, path: str) -> dict:
    if not isinstance(t, dict) or t.get("type") not in TRIGGERS:
        raise InvalidInput(f"{path}.type", f"must be one of {', '.join(TRIGGERS)}")
    kind = t["type"]
    out: dict[str, Any] = {"type": kind}
    if kind == "event":
        _only(t, {"type", "event", "where", "condition"}, path)
        if t.get("event") not in EVENT_TYPES:
            raise InvalidInput(f"{path}.event", f"must be one of {', '.join(EVENT_TYPES)}")
        out["event"] = t["event"]
        where = t.get("where", [])
        if not isinstance(where, list) or len(where) > 10:
            raise InvalidInput(f"{path}.where", "must be a list of at most 10 conditions on the event")
        out["where"] = [_where(w, f"{path}.where[{i}]") for i, w in enumerate(where)]
    elif kind in ("segment_entered", "segment_left"):
        _only(t, {"type", "segment", "condition"}, path)
        if not isinstance(t.get("segment"), str) or not KEY_RE.match(t["segment"]):
            raise InvalidInput(f"{path}.segment", "must be a segment key")
        out["segment"] = t["segment"]
    elif kind == "date":
        _only(t, {"type", "field", "offset_days", "yearly", "at", "condition"}, path)
        name = t.get("field")
        if not isinstance(name, str) or not (
            name in ("orders.last_at", "orders.first_at", "profile.created_at")
            or (name.startswith("attributes.") and NAME_RE.match(name[11:]))
        ):
            raise InvalidInput(f"{path}.field", "must be attributes.<name> (a date), orders.last_at, orders.first_at or profile.created_at")
        out["field"] = name
        out["offset_days"] = _whole(t.get("offset_days", 0), f"{path}.offset_days", -366, 3650)
        out["yearly"] = _bool(t.get("yearly", False), f"{path}.yearly")
        if out["yearly"] and not name.startswith("attributes."):
            raise InvalidInput(f"{path}.yearly", "repeats every year only for a date attribute (a birthday, a sign-up date)")
        out["at"] = _time(t.get("at", "09:00"), f"{path}.at")
    else:
        _only(t, {"type", "condition"}, path)
    if t.get("condition") is not None:
        out["condition"] = validate_rule(t["condition"], f"{path}.condition")
    return out


def _where(w: Any, path: str) -> dict:
    if not isinstance(w, dict):
        raise InvalidInput(path, "must be an object with field, op and value")
    _only(w, {"field", "op", "value"}, path)
    name = w.get("field")
    ok = name in ("product_id", "product.category", "product.price") or (
        isinstance(name, str) and name.startswith("properties.") and NAME_RE.match(name[11:])
    )
    if not ok:
        raise InvalidInput(f"{path}.field", "must be product_id, product.category, product.price or properties.<name>")
    if w.get("op") not in WHERE_OPS:
        raise InvalidInput(f"{path}.op", f"must be one of {', '.join(WHERE_OPS)}")
    out = {"field": name, "op": w["op"]}
    if w["op"] == "exists":
        return out
    value = w.get("value")
    if w["op"] == "in":
        if not isinstance(value, list) or not value or len(value) > 200 or not all(_scalar(v) and v is not None for v in value):
            raise InvalidInput(f"{path}.value", "must be a non-empty list of strings or numbers")
    elif w["op"] in ("gt", "gte", "lt", "lte"):
        if not _is_number(value):
            raise InvalidInput(f"{path}.value", "must be a number")
    elif w["op"] == "contains":
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{path}.value", "must be a non-empty string")
    elif not _scalar(value) or value is None:
        raise InvalidInput(f"{path}.value", "must be a string, number or boolean")
    out["value"] = value
    return out


def _reentry(r: Any, path: str) -> dict:
    if not isinstance(r, dict) or r.get("mode") not in REENTRY:
        raise InvalidInput(f"{path}.mode", f"must be one of {', '.join(REENTRY)}")
    _only(r, {"mode", "days"}, path)
    if r["mode"] == "cooldown":
        return {"mode": "cooldown", "days": _whole(r.get("days"), f"{path}.days", 1, 3650)}
    return {"mode": r["mode"]}


def _goal(g: Any, path: str) -> dict:
    if not isinstance(g, dict) or g.get("type") not in GOALS:
        raise InvalidInput(f"{path}.type", f"must be one of {', '.join(GOALS)}")
    _only(g, {"type", "event"}, path)
    if g["type"] == "event":
        if g.get("event") not in EVENT_TYPES:
            raise InvalidInput(f"{path}.event", f"must be one of {', '.join(EVENT_TYPES)}")
        return {"type": "event", "event": g["event"]}
    return {"type": g["type"]}


def _limits(raw: Any, path: str) -> dict:
    if not isinstance(raw, dict):
        raise InvalidInput(path, "must be an object with quiet_start, quiet_end and recent_hours")
    _only(raw, {"quiet_start", "quiet_end", "recent_hours"}, path)
    start, end = raw.get("quiet_start"), raw.get("quiet_end")
    if (start is None) != (end is None):
        raise InvalidInput(f"{path}.quiet_end" if end is None else f"{path}.quiet_start", "quiet hours need both a start and an end")
    out: dict[str, Any] = {"quiet_start": None, "quiet_end": None}
    if start is not None:
        out["quiet_start"], out["quiet_end"] = _time(start, f"{path}.quiet_start"), _time(end, f"{path}.quiet_end")
        if start == end:
            raise InvalidInput(f"{path}.quiet_end", "must differ from the start")
    out["recent_hours"] = _whole(raw.get("recent_hours", 0), f"{path}.recent_hours", 0, 24 * 90)
    return out


def _steps(steps: Any, path: str, depth: int, seen: set[str]) -> list[dict]:
    if not isinstance(steps, list):
        raise InvalidInput(path, "must be a list of steps")
    if depth > MAX_DEPTH:
        raise InvalidInput(path, f"branches nest at most {MAX_DEPTH} levels")
    return [_step(s, f"{path}[{i}]", depth, seen) for i, s in enumerate(steps)]


def _step(s: Any, path: str, depth: int, seen: set[str]) -> dict:
    if not isinstance(s, dict) or s.get("type") not in STEP_TYPES:
        raise InvalidInput(f"{path}.type", f"must be one of {', '.join(STEP_TYPES)}")
    sid = s.get("id")
    if not isinstance(sid, str) or not STEP_ID_RE.match(sid):
        raise InvalidInput(f"{path}.id", "must be 1-32 lowercase letters, digits, _ or - (unique in the journey)")
    if sid in seen:
        raise InvalidInput(f"{path}.id", f"{sid!r} is used by another step")
    seen.add(sid)
    if len(seen) > MAX_STEPS:
        raise InvalidInput(path, f"a journey has at most {MAX_STEPS} steps")
    kind = s["type"]
    out: dict[str, Any] = {"id": sid, "type": kind}
    if kind == "wait":
        _only(s, {"id", "type", "seconds", "until"}, path)
        if ("seconds" in s) == ("until" in s):
            raise InvalidInput(f"{path}.seconds", "a wait has either a duration (seconds) or a time of day (until)")
        if "seconds" in s:
            out["seconds"] = _whole(s["seconds"], f"{path}.seconds", 0, MAX_WAIT_SECONDS)
        else:
            out["until"] = _time(s["until"], f"{path}.until")
    elif kind == "wait_event":
        _only(s, {"id", "type", "event", "seconds", "branches"}, path)
        if s.get("event") not in EVENT_TYPES:
            raise InvalidInput(f"{path}.event", f"must be one of {', '.join(EVENT_TYPES)}")
        out["event"] = s["event"]
        out["seconds"] = _whole(s.get("seconds"), f"{path}.seconds", 1, MAX_WAIT_SECONDS)
        out["branches"] = _branches(s.get("branches", {}), BRANCHES[kind], path, depth, seen)
    elif kind == "branch":
        _only(s, {"id", "type", "rule", "branches"}, path)
        out["rule"] = validate_rule(s.get("rule"), f"{path}.rule")
        out["branches"] = _branches(s.get("branches", {}), BRANCHES[kind], path, depth, seen)
    elif kind == "split":
        _only(s, {"id", "type", "shares", "branches"}, path)
        shares = s.get("shares")
        if not isinstance(shares, dict) or not 2 <= len(shares) <= 4 or set(shares) - set(SPLIT_LABELS):
            raise InvalidInput(f"{path}.shares", "must give 2 to 4 paths (a, b, c, d) each a whole percentage")
        labels = tuple(label for label in SPLIT_LABELS if label in shares)
        out["shares"] = {label: _whole(shares[label], f"{path}.shares.{label}", 1, 99) for label in labels}
        if sum(out["shares"].values()) != 100:
            raise InvalidInput(f"{path}.shares", "the percentages must add up to 100")
        out["branches"] = _branches(s.get("branches", {}), labels, path, depth, seen)
    elif kind == "email":
        _only(s, {"id", "type", "subject", "html", "text", "recommendations", "recommendations_at"}, path)
        from .email import check_template

        out["subject"] = check_template(_text(s.get("subject"), f"{path}.subject", 300), f"{path}.subject")
        out["html"] = check_template(_text(s.get("html"), f"{path}.html", MAX_TEMPLATE), f"{path}.html")
        text = _text(s.get("text"), f"{path}.text", MAX_TEMPLATE, required=False)
        if text:
            out["text"] = check_template(text, f"{path}.text")
        out["recommendations"] = _whole(s.get("recommendations", 4), f"{path}.recommendations", 0, 12)
        at = s.get("recommendations_at", "send")
        if at not in ("send", "open"):
            raise InvalidInput(f"{path}.recommendations_at", "must be send (the list as it is when the email goes out) "
                               "or open (an image of the list as it is when the email is opened)")
        if at == "open":
            out["recommendations_at"] = "open"
    elif kind == "webhook":
        _only(s, {"id", "type", "url", "fields"}, path)
        out["url"] = check_url(s.get("url"), f"{path}.url")
        fields = s.get("fields", {})
        if not isinstance(fields, dict) or len(fields) > 50 or not all(
            isinstance(k, str) and NAME_RE.match(k) and _scalar(v) and (not isinstance(v, str) or len(v) <= 2000) for k, v in fields.items()
        ):
            raise InvalidInput(f"{path}.fields", "must be an object of at most 50 names to strings, numbers or booleans")
        out["fields"] = fields
    elif kind == "connector":
        _only(s, {"id", "type", "connection", "action", "params"}, path)
        if not isinstance(s.get("connection"), str) or not KEY_RE.match(s["connection"]):
            raise InvalidInput(f"{path}.connection", "must name one of the site's connections")
        if not isinstance(s.get("action"), str) or not STEP_ID_RE.match(s["action"]):
            raise InvalidInput(f"{path}.action", "must name an action of the connection's connector")
        params = s.get("params", {})
        if not isinstance(params, dict) or len(params) > 20 or not all(
            isinstance(k, str) and len(k) <= 64 and _scalar(v) and (not isinstance(v, str) or len(v) <= 500) for k, v in params.items()
        ):
            raise InvalidInput(f"{path}.params", "must be an object of at most 20 names to strings, numbers or booleans")
        out.update(connection=s["connection"], action=s["action"], params=params)
    elif kind == "set_attribute":
        _only(s, {"id", "type", "name", "value"}, path)
        if not isinstance(s.get("name"), str) or not NAME_RE.match(s["name"]):
            raise InvalidInput(f"{path}.name", "must be an attribute name (letters, digits, _ . -)")
        if not _scalar(s.get("value")) or (isinstance(s.get("value"), str) and len(s["value"]) > 2000):
            raise InvalidInput(f"{path}.value", "must be a string, number, boolean or null")
        out.update(name=s["name"], value=s.get("value"))
    else:
        _only(s, {"id", "type"}, path)
    return out


def _branches(raw: Any, labels: tuple[str, ...], path: str, depth: int, seen: set[str]) -> dict[str, list[dict]]:
    if not isinstance(raw, dict) or set(raw) - set(labels):
        raise InvalidInput(f"{path}.branches", f"must be an object with the lists {', '.join(labels)}")
    return {label: _steps(raw.get(label, []), f"{path}.branches.{label}", depth + 1, seen) for label in labels}


# ---------------------------------------------------------------- the flow


@dataclass
class Flow:
    """Where each step of a definition leads: the step after it, and the first step of each branch."""

    steps: dict[str, dict] = field(default_factory=dict)
    after: dict[str, str | None] = field(default_factory=dict)
    first: str | None = None
    order: list[str] = field(default_factory=list)
    parent: dict[str, tuple[str, str] | None] = field(default_factory=dict)

    @classmethod
    def of(cls, definition: dict) -> Flow:
        flow = cls()
        flow._walk(definition.get("steps") or [], None, None)
        steps = definition.get("steps") or []
        flow.first = steps[0]["id"] if steps else None
        return flow

    def _walk(self, steps: list[dict], then: str | None, parent: tuple[str, str] | None) -> None:
        for i, step in enumerate(steps):
            nxt = steps[i + 1]["id"] if i + 1 < len(steps) else then
            self.steps[step["id"]] = step
            self.after[step["id"]] = nxt
            self.parent[step["id"]] = parent
            self.order.append(step["id"])
            for label, inner in (step.get("branches") or {}).items():
                self._walk(inner, nxt, (step["id"], label))

    def branch_start(self, step_id: str, label: str) -> str | None:
        """The first step of a branch of ``step_id`` (the step after it when the branch is empty)."""
        inner = (self.steps[step_id].get("branches") or {}).get(label) or []
        return inner[0]["id"] if inner else self.after[step_id]

    def depth(self, step_id: str) -> int:
        n, parent = 0, self.parent.get(step_id)
        while parent is not None:
            n += 1
            parent = self.parent.get(parent[0])
        return n


def all_step_ids(definition: dict) -> set[str]:
    return set(Flow.of(definition).steps)


def next_step_id(definitions: list[dict]) -> str:
    """A step id no version of the journey has used (``s1``, ``s2``…): ids are never reused."""
    used = set().union(*(all_step_ids(d) for d in definitions)) if definitions else set()
    numbers = [int(i[1:]) for i in used if re.fullmatch(r"s\d{1,6}", i)]
    return f"s{max(numbers, default=0) + 1}"


def trigger_segments(definition: dict) -> set[str]:
    """Segment keys the definition names: the trigger's, and those inside rules."""
    from ..segments.rules import referenced_segments

    out: set[str] = set()
    trigger = definition.get("trigger") or {}
    if trigger.get("segment"):
        out.add(trigger["segment"])
    if trigger.get("condition"):
        out |= referenced_segments(trigger["condition"])
    for step in Flow.of(definition).steps.values():
        if step.get("rule"):
            out |= referenced_segments(step["rule"])
    return out
