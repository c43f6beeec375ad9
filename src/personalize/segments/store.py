"""Saving and reading segment definitions; the order in which segments are evaluated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from ..db import db
from ..models import utcnow
from ..shapes import Obj, Shape, Text
from ..validation import InvalidInput
from .models import Segment, SegmentMember
from .rules import KEY_RE, referenced_segments, validate_rule


class Rule(Shape):
    """A segment's rule tree, checked by :func:`validate_rule` (docs/segments.md)."""

    def __init__(self, *, required: bool = False):
        self.required = required

    def read(self, obj: dict, key: str, path: str) -> dict | None:
        if key not in obj:
            if self.required:
                raise InvalidInput(f"{path}{key}", "is required", "missing")
            return None
        return validate_rule(obj[key], f"{path}{key}")

    def value_schema(self) -> dict[str, Any]:
        return {"$ref": "#/components/schemas/Rule"}  # rule_schema(), once in the description

    def schema(self, *, as_field: bool = True) -> dict[str, Any]:
        return self.value_schema()


RULE = Rule(required=True)
KEY_MESSAGE = "must be 1-64 lowercase letters, digits, _ or - (starting with a letter or digit)"


def _segment_input(create: bool) -> Obj:
    return Obj({
        "key": Text(64, pattern=KEY_RE, pattern_message=KEY_MESSAGE, required=create,
                    description="1-64 lowercase letters, digits, _ or -; fixed once created"),
        "name": Text(200, description="the key when absent"),
        "description": Text(2000),
        "rule": Rule(required=create),
    }, unknown_message="is not a segment field (key, name, description, rule)", unknown_code="invalid")


SEGMENT_CREATE = _segment_input(create=True)  # POST /segments
SEGMENT_INPUT = _segment_input(create=False)  # PUT and PATCH /segments/<key>: what is given changes

MAX_SEGMENTS = 500


@dataclass(frozen=True)
class CompiledSegment:
    id: int
    key: str
    rule: dict


def check_definition(site_id: int, body: dict, key: str | None = None, existing: Segment | None = None) -> dict[str, Any]:
    """Validate a segment's ``key``, ``name``, ``description`` and ``rule``; return the clean values.

    Refuses a rule naming an unknown segment, or one that would make segments depend on
    each other in a circle.
    """
    if not isinstance(body, dict):
        raise InvalidInput("", "the body must be a JSON object")
    # the rule is read last, below, with the segments it may name; the key may come from the address
    given = SEGMENT_INPUT.read_object({k: v for k, v in body.items() if k != "rule"}, "")
    out: dict[str, Any] = {}
    if existing is None:
        key = given["key"] or key
        if not isinstance(key, str) or not KEY_RE.match(key):
            raise InvalidInput("key", KEY_MESSAGE)
        out["key"] = key
    else:
        key = existing.key
        if "key" in body and body["key"] != key:
            raise InvalidInput("key", "cannot change; create a new segment instead")
    if existing is None or "name" in body:
        out["name"] = given["name"] or key
    if "description" in body:
        out["description"] = given["description"] or ""
    if existing is None or "rule" in body:
        rule = RULE.read(body, "rule", "")
        known = {s.key: s for s in all_segments(site_id)}
        for ref in referenced_segments(rule):
            if ref not in known and ref != key:
                raise InvalidInput("rule", f"names segment {ref!r}, which does not exist")
        rules = {k: s.rule for k, s in known.items()}
        rules[key] = rule
        if _has_cycle(rules):
            raise InvalidInput("rule", "segments would depend on each other in a circle")
        out["rule"] = rule
    return out


def _has_cycle(rules: dict[str, dict]) -> bool:
    try:
        evaluation_order(rules)
    except ValueError:
        return True
    return False


def evaluation_order(rules: dict[str, dict]) -> list[str]:
    """Keys with every segment after the segments its rule names (Kahn's algorithm)."""
    deps = {k: {d for d in referenced_segments(r) if d in rules} for k, r in rules.items()}
    order: list[str] = []
    ready = sorted(k for k, d in deps.items() if not d)
    while ready:
        k = ready.pop(0)
        order.append(k)
        for other, d in deps.items():
            if k in d:
                d.discard(k)
                if not d and other not in order and other not in ready:
                    ready.append(other)
    if len(order) != len(rules):
        raise ValueError("circular segment references")
    return order


def forget_rules(site_id: int) -> None:
    """Drop this process's cached rule set of a site (after a segment changed)."""
    from flask import current_app, has_app_context

    if has_app_context():
        current_app.extensions.get("personalize.segments", {}).pop(site_id, None)


def create_segment(site_id: int, body: dict) -> Segment:
    values = check_definition(site_id, body)
    if get_segment(site_id, values["key"]) is not None:
        raise InvalidInput("key", f"a segment {values['key']!r} exists already", "conflict")
    if db.session.scalar(select(func.count()).select_from(Segment).where(Segment.site_id == site_id)) >= MAX_SEGMENTS:
        raise InvalidInput("key", f"a site has at most {MAX_SEGMENTS} segments")
    now = utcnow()
    values.setdefault("description", "")
    seg = Segment(site_id=site_id, status="building", member_count=0, created_at=now, updated_at=now, **values)
    db.session.add(seg)
    db.session.commit()
    forget_rules(site_id)
    return seg


def update_segment(seg: Segment, body: dict) -> bool:
    """Apply changes; returns whether the rule changed (then the members need a rebuild)."""
    values = check_definition(seg.site_id, body, existing=seg)
    rule_changed = "rule" in values and values["rule"] != seg.rule
    for k, v in values.items():
        setattr(seg, k, v)
    seg.updated_at = _later(seg.updated_at)
    if rule_changed:
        seg.status = "building"
    db.session.commit()
    forget_rules(seg.site_id)
    return rule_changed


def _later(previous: datetime) -> datetime:
    # updated_at is the live evaluator's cache stamp: it must move even within one clock tick
    return max(utcnow(), previous + timedelta(microseconds=1))


def delete_segment(seg: Segment) -> None:
    users = [s.key for s in all_segments(seg.site_id) if seg.key in referenced_segments(s.rule)]
    if users:
        raise InvalidInput("key", f"segments {', '.join(users)} refer to this one; change them first", "conflict")
    site_id = seg.site_id
    db.session.delete(seg)
    db.session.commit()
    forget_rules(site_id)


def get_segment(site_id: int, key: str) -> Segment | None:
    return db.session.scalar(select(Segment).where(Segment.site_id == site_id, Segment.key == key))


def all_segments(site_id: int) -> list[Segment]:
    return list(db.session.scalars(select(Segment).where(Segment.site_id == site_id).order_by(Segment.key)))


def segment_ids(site_id: int) -> dict[str, int]:
    return dict(db.session.execute(select(Segment.key, Segment.id).where(Segment.site_id == site_id)).all())


def segments_of_profile(profile_id: int) -> list[dict[str, Any]]:
    """The segments a profile belongs to, with the time it joined each."""
    rows = db.session.execute(
        select(Segment.key, Segment.name, SegmentMember.since)
        .join(SegmentMember, SegmentMember.segment_id == Segment.id)
        .where(SegmentMember.profile_id == profile_id).order_by(Segment.key)
    ).all()
    return [{"key": k, "name": n, "since": s} for k, n, s in rows]


def segment_json(seg: Segment) -> dict[str, Any]:
    return {
        "key": seg.key, "name": seg.name, "description": seg.description, "rule": seg.rule, "status": seg.status,
        "member_count": seg.member_count, "created_at": _iso(seg.created_at), "updated_at": _iso(seg.updated_at),
        "rebuilt_at": _iso(seg.rebuilt_at),
    }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() + "Z" if when else None


def cluster_names_of(site_id: int) -> dict[int, str]:
    """Each scored customer's cluster name (for "popular with customers like you")."""
    from .models import ProfileScore

    return dict(db.session.execute(select(ProfileScore.profile_id, ProfileScore.cluster_name).where(ProfileScore.site_id == site_id)).all())


def cluster_name_of(profile_id: int) -> str | None:
    from .models import ProfileScore

    return db.session.scalar(select(ProfileScore.cluster_name).where(ProfileScore.profile_id == profile_id))


def recount_members(site_id: int) -> None:
    """Set each segment's ``member_count`` of the site from its stored members, and commit
    (after members went without a rule run: a profile erased)."""
    counted = select(func.count()).select_from(SegmentMember).where(SegmentMember.segment_id == Segment.id).scalar_subquery()
    db.session.execute(update(Segment).where(Segment.site_id == site_id).values(member_count=counted))
    db.session.commit()
