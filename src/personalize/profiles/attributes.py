"""Profile attributes, one row each, with the source and time of their value.

Every writer (the widget's ``identify`` traits, connectors, the API, computed
facts) goes through :func:`set_attributes`, which applies one merge strategy:
**the newest value wins**. A value older than the stored one is ignored, so
replaying an old sync can never overwrite fresher data; on a tie the stored
value stays. ``None`` removes an attribute (under the same rule).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from ..db import db
from ..models import utcnow
from ..validation import InvalidInput
from .models import ProfileAttribute

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
MAX_ATTRIBUTES = 200
MAX_TEXT = 2000
LIST_SEP = "\x1f"  # lists are stored as \x1fa\x1fb\x1f so SQL can test membership by substring
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:?\d{2})?$")
EPOCH = datetime(1970, 1, 1)


def parse_when(value: Any) -> datetime | None:
    """An ISO-8601 date or date-time string as naive UTC, or ``None`` when it is not one."""
    if not isinstance(value, str) or not ISO_DATE.match(value):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def epoch_seconds(when: datetime) -> float:
    return (when - EPOCH).total_seconds()


def typed(value: Any) -> tuple[str, str | None, float | None]:
    """The ``(vtype, value_text, value_num)`` shadow of a JSON value, as rules compare it."""
    if value is None:
        return "z", None, None
    if isinstance(value, bool):
        return "b", "true" if value else "false", None
    if isinstance(value, int | float):
        return "n", None, float(value)
    if isinstance(value, str):
        when = parse_when(value)  # dates in text compare as time: value_num holds epoch seconds
        return "s", value, epoch_seconds(when) if when is not None else None
    if isinstance(value, list | tuple):
        items = [str(v) for v in value if isinstance(v, str | int | float) and not isinstance(v, bool)]
        return "l", LIST_SEP + LIST_SEP.join(items) + LIST_SEP if items else "", None
    return "o", None, None


def check_attributes(attrs: Any, field: str = "attributes") -> dict[str, Any]:
    """Validate an attribute mapping (names, JSON-able values, sizes); raise :class:`InvalidInput`."""
    if not isinstance(attrs, Mapping):
        raise InvalidInput(field, "must be an object of attribute names to values")
    if len(attrs) > MAX_ATTRIBUTES:
        raise InvalidInput(field, f"has more than {MAX_ATTRIBUTES} attributes")
    out = {}
    for name, value in attrs.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidInput(f"{field}.{str(name)[:40]}", "names are 1-100 letters, digits or _ . - (not starting with . or -)")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"{field}.{name}", "must be a finite number")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise InvalidInput(f"{field}.{name}", f"is longer than {MAX_TEXT} characters")
        if isinstance(value, list | tuple | dict) and len(repr(value)) > 4 * MAX_TEXT:
            raise InvalidInput(f"{field}.{name}", "is too large")
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def set_attributes(
    site_id: int, profile_id: int, attrs: Mapping[str, Any], source: str, at: datetime | None = None, *, commit: bool = True
) -> list[str]:
    """Merge ``attrs`` into a profile: per attribute, the value with the newest ``at`` wins.

    :param source: who says so (``identify``, ``api``, a connector's name, ``orders``…); kept per attribute.
    :param at: when the value was true at the source (naive UTC); defaults to now.
    :param commit: commit and update the profile's segment membership (the default).
        With ``commit=False`` the caller commits, then calls
        :func:`personalize.segments.live.refresh_profiles` for the profiles it changed.
    :returns: the names of the attributes that changed.
    :raises InvalidInput: for a bad name or value (nothing is written).
    """
    attrs = check_attributes(attrs)
    at = at or utcnow()
    if not attrs:
        return []
    existing = {
        row.name: row
        for row in db.session.scalars(
            select(ProfileAttribute).where(ProfileAttribute.profile_id == profile_id, ProfileAttribute.name.in_(list(attrs)))
        )
    }
    room = MAX_ATTRIBUTES - attribute_count(profile_id)
    changed = []
    for name, value in attrs.items():
        row = existing.get(name)
        if row is not None and row.updated_at >= at:
            continue  # the stored value is as new or newer
        if value is None:
            if row is not None:
                db.session.delete(row)
                changed.append(name)
            continue
        vtype, text, num = typed(value)
        if row is None:
            if room <= 0:
                continue
            room -= 1
            db.session.add(ProfileAttribute(
                site_id=site_id, profile_id=profile_id, name=name, value=value, vtype=vtype,
                value_text=text, value_num=num, source=source[:64], updated_at=at,
            ))
            changed.append(name)
        else:
            if row.value != value or row.vtype != vtype:
                changed.append(name)
            row.value, row.vtype, row.value_text, row.value_num = value, vtype, text, num
            row.source, row.updated_at = source[:64], at
    if commit:
        db.session.commit()
        if changed:
            from ..plugins import notify

            notify("profiles_changed", site_id=site_id, profile_ids=[profile_id])
    else:
        db.session.flush()
    return changed


def attribute_count(profile_id: int) -> int:
    from sqlalchemy import func

    return db.session.scalar(select(func.count()).select_from(ProfileAttribute).where(ProfileAttribute.profile_id == profile_id)) or 0


def attributes_of(profile_id: int) -> dict[str, dict[str, Any]]:
    """A profile's attributes: ``{name: {"value", "source", "updated_at"}}``."""
    rows = db.session.scalars(select(ProfileAttribute).where(ProfileAttribute.profile_id == profile_id).order_by(ProfileAttribute.name))
    return {r.name: {"value": r.value, "source": r.source, "updated_at": r.updated_at} for r in rows}


def attribute_values(profile_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Just the values, for many profiles at once."""
    out: dict[int, dict[str, Any]] = {}
    ids = list(profile_ids)
    for start in range(0, len(ids), 500):
        for pid, name, value in db.session.execute(
            select(ProfileAttribute.profile_id, ProfileAttribute.name, ProfileAttribute.value).where(ProfileAttribute.profile_id.in_(ids[start : start + 500]))
        ):
            out.setdefault(pid, {})[name] = value
    return out
