"""Saving journeys, publishing versions, and the live journeys each process keeps in memory.

Edits change the journey's working copy; **publishing** stores it as the next version,
and only published versions are run. Versions are never changed afterwards, so a person
in flight can always finish. When a newer version is published, each person moves to it
at their next step if the step they are at still exists there (steps keep their ids);
otherwise they finish on the version they entered (docs/journeys.md, "Editing a live journey").
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import bindparam, func, select, update

from ..db import db
from ..models import utcnow
from ..validation import InvalidInput
from .definition import KEY_RE, Flow, trigger_segments, validate_definition
from .models import Journey, JourneyEnrollment, JourneyStep, JourneyVersion

STATUSES = ("draft", "active", "paused", "stopped")
MAX_JOURNEYS = 200
RECHECK_SECONDS = 1.0


def empty_definition() -> dict:
    return validate_definition({"trigger": {"type": "api"}, "steps": []})


def get_journey(site_id: int, key: str) -> Journey | None:
    if not isinstance(key, str) or not KEY_RE.match(key):
        return None
    return db.session.scalar(select(Journey).where(Journey.site_id == site_id, Journey.key == key))


def list_journeys(site_id: int) -> list[Journey]:
    return list(db.session.scalars(select(Journey).where(Journey.site_id == site_id).order_by(Journey.name, Journey.key)))


def check_references(site_id: int, definition: dict) -> None:
    """Refuse a definition naming a segment, connection or connector action the site does not have."""
    from ..segments.store import segment_ids

    known = segment_ids(site_id)
    for key in sorted(trigger_segments(definition)):
        if key not in known:
            raise InvalidInput("definition", f"names segment {key!r}, which does not exist")
    steps = Flow.of(definition).steps.values()
    if any(s["type"] == "connector" for s in steps):
        from .connectors import connector_actions, site_connection

        catalog = connector_actions()
        for step in steps:
            if step["type"] != "connector":
                continue
            conn = site_connection(site_id, step["connection"])
            if conn is None:
                raise InvalidInput("definition", f"step {step['id']} uses connection {step['connection']!r}, which the site does not have")
            action = catalog.get((conn.connector, step["action"]))
            if action is None:
                offered = sorted(name for (c, name) in catalog if c == conn.connector)
                raise InvalidInput("definition", f"step {step['id']}: {conn.connector} has no action {step['action']!r}"
                                   + (f" (it offers {', '.join(offered)})" if offered else " (it offers none)"))
            missing = [p.name for p in action.params if p.required and step["params"].get(p.name) in (None, "")]
            if missing:
                raise InvalidInput("definition", f"step {step['id']}: {action.title} needs {', '.join(missing)}")


def create_journey(site_id: int, key: str, name: str, definition: dict | None = None, description: str = "") -> Journey:
    """A new draft journey (its definition validated; nothing runs until it is activated). Commits."""
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise InvalidInput("key", "must be 1-64 lowercase letters, digits, _ or - (starting with a letter or digit)")
    if get_journey(site_id, key) is not None:
        raise InvalidInput("key", f"a journey {key!r} exists already")
    if db.session.scalar(select(func.count()).select_from(Journey).where(Journey.site_id == site_id)) >= MAX_JOURNEYS:
        raise InvalidInput("key", f"a site has at most {MAX_JOURNEYS} journeys")
    name = (name or key).strip()
    if len(name) > 200:
        raise InvalidInput("name", "must be at most 200 characters")
    clean = validate_definition(definition) if definition is not None else empty_definition()
    now = utcnow()
    journey = Journey(site_id=site_id, key=key, name=name, description=(description or "")[:2000], status="draft",
                      definition=clean, version=0, created_at=now, updated_at=now)
    db.session.add(journey)
    db.session.commit()
    return journey


def save_definition(journey: Journey, definition: Any, name: str | None = None, description: str | None = None) -> dict:
    """Validate and store the working copy (``publish`` makes it live). Commits."""
    clean = validate_definition(definition)
    if name is not None:
        if not name.strip() or len(name) > 200:
            raise InvalidInput("name", "must be 1 to 200 characters")
        journey.name = name.strip()
    if description is not None:
        journey.description = description[:2000]
    journey.definition = clean
    journey.updated_at = utcnow()
    db.session.commit()
    return clean


def versions_of(journey: Journey) -> list[dict]:
    return [v for (v,) in db.session.execute(select(JourneyVersion.definition).where(JourneyVersion.journey_id == journey.id).order_by(JourneyVersion.version))]


def live_definition(journey: Journey) -> dict | None:
    if not journey.version:
        return None
    return version_definition(journey.id, journey.version)


def unpublished(journey: Journey) -> bool:
    """Whether the working copy differs from the live version."""
    return journey.version == 0 or live_definition(journey) != journey.definition


def publish(journey: Journey) -> int:
    """Store the working copy as the next version (references checked). Commits; returns the version."""
    clean = validate_definition(journey.definition)
    check_references(journey.site_id, clean)
    if journey.version and live_definition(journey) == clean:
        return journey.version
    journey.version = (journey.version or 0) + 1
    db.session.add(JourneyVersion(journey_id=journey.id, version=journey.version, definition=clean, created_at=utcnow()))
    journey.updated_at = utcnow()
    db.session.commit()
    _forget(journey.site_id)
    return journey.version


def set_status(journey: Journey, status: str) -> None:
    """``active`` (publishing first when needed), ``paused`` (nobody enters, steps wait) or
    ``stopped`` (everyone in it leaves). Commits."""
    if status not in ("active", "paused", "stopped"):
        raise InvalidInput("status", "must be active, paused or stopped")
    if status == "active":
        if unpublished(journey) and journey.status != "active":
            publish(journey)
        if not journey.version:
            raise InvalidInput("status", "publish the journey before activating it")
        if not (live_definition(journey) or {}).get("steps"):
            raise InvalidInput("status", "add at least one step before activating the journey")
    now = utcnow()
    if status == "active" and journey.status != "active":
        journey.activated_at = now  # the catch-up enters nobody for what was stored before (a pause)
    journey.status = status
    journey.updated_at = now
    if status == "stopped":
        exit_all(journey.id, "journey stopped", now)
    db.session.commit()
    _forget(journey.site_id)


def exit_all(journey_id: int, reason: str, now: datetime) -> int:
    """Every active entry of a journey leaves it (their waiting steps are cancelled). No commit."""
    ids = list(db.session.scalars(select(JourneyEnrollment.id).where(JourneyEnrollment.journey_id == journey_id, JourneyEnrollment.status == "active")))
    finish_enrollments(ids, "exited", reason, now)
    return len(ids)


def finish_enrollments(ids: list[int], status: str, reason: str, now: datetime, goal_at: datetime | None = None) -> list[int]:
    """End active entries: their status, and their waiting (unclaimed) steps done with the same outcome.

    Returns the entries that were still active. A step a runner holds is left to it: the
    runner sees the entry ended and does not move it on. No commit.
    """
    if not ids:
        return []
    ended: list[int] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        values: dict[str, Any] = {"status": status, "exit_reason": reason[:120], "finished_at": now, "active_profile": None}
        if goal_at is not None:
            values["goal_at"] = goal_at
        ended += [r[0] for r in db.session.execute(
            update(JourneyEnrollment).where(JourneyEnrollment.id.in_(chunk), JourneyEnrollment.status == "active")
            .values(**values).returning(JourneyEnrollment.id)
        )]
    outcome = "goal" if status == "goal" else "exited"
    for start in range(0, len(ended), 500):
        db.session.execute(
            update(JourneyStep).where(JourneyStep.enrollment_id.in_(ended[start : start + 500]), JourneyStep.state == "due", JourneyStep.claim.is_(None))
            .values(state="done", outcome=outcome, done_at=now, detail={"reason": reason[:200]})
        )
    return ended


def delete_journey(journey: Journey) -> None:
    """Delete a journey that nobody ever entered (one with entries can only be stopped). Commits."""
    entered = db.session.scalar(select(func.count()).select_from(JourneyEnrollment).where(JourneyEnrollment.journey_id == journey.id))
    if entered:
        raise InvalidInput("journey", f"{entered} people have entered it; stop it instead, so its report stays")
    site_id = journey.site_id
    db.session.delete(journey)
    db.session.commit()
    _forget(site_id)


# ---------------------------------------------------------------- versions and live journeys


_versions_lock = threading.Lock()


def version_definition(journey_id: int, version: int) -> dict:
    return version_flow(journey_id, version)[0]


def version_flow(journey_id: int, version: int) -> tuple[dict, Flow]:
    """A published version and its flow; kept in the application's memory (versions never change)."""
    key = (journey_id, version)
    _versions: dict[tuple[int, int], tuple[dict, Flow]] = current_app.extensions.setdefault("personalize.journey_versions", {})
    found = _versions.get(key)
    if found is None:
        definition = db.session.scalar(select(JourneyVersion.definition).where(JourneyVersion.journey_id == journey_id, JourneyVersion.version == version))
        if definition is None:
            raise LookupError(f"journey {journey_id} has no version {version}")
        found = (definition, Flow.of(definition))
        with _versions_lock:
            if len(_versions) > 5000:
                _versions.clear()
            _versions[key] = found
    return found


@dataclass
class LiveJourney:
    """An active journey as the trigger listeners and runners see it."""

    id: int
    site_id: int
    key: str
    name: str
    version: int
    definition: dict
    flow: Flow
    created_at: datetime
    activated_at: datetime | None = None  # when it was last made active: the catch-up ignores what came before

    @property
    def trigger(self) -> dict:
        return self.definition["trigger"]

    def awaits(self) -> set[str]:
        """Event types its wait-for-event steps wait for."""
        return {s["event"] for s in self.flow.steps.values() if s["type"] == "wait_event"}


@dataclass
class SiteJourneys:
    stamp: tuple
    journeys: list[LiveJourney]
    by_event: dict[str, list[LiveJourney]] = field(default_factory=dict)
    by_segment: dict[str, list[LiveJourney]] = field(default_factory=dict)
    goal_events: set[str] = field(default_factory=set)
    awaited: set[str] = field(default_factory=set)
    heard: frozenset[str] = frozenset()  # every event type some live journey acts on: a trigger, a goal, a wait
    checked: float = 0.0

    @classmethod
    def of(cls, stamp: tuple, journeys: list[LiveJourney]) -> SiteJourneys:
        out = cls(stamp, journeys)
        for j in journeys:
            t = j.trigger
            if t["type"] == "event":
                out.by_event.setdefault(t["event"], []).append(j)
            elif t["type"] in ("segment_entered", "segment_left"):
                out.by_segment.setdefault(t["segment"], []).append(j)
            goal = j.definition["goal"]
            if j.definition["exit"]["on_goal"]:
                out.goal_events.add("order_completed" if goal["type"] == "order" else goal.get("event", ""))
            out.awaited |= j.awaits()
        out.goal_events.discard("")
        out.heard = frozenset(out.by_event) | out.goal_events | out.awaited
        return out


STAMP = select(func.count(), func.max(Journey.updated_at)).where(Journey.site_id == bindparam("site"))
_lock = threading.Lock()


def live_journeys(site_id: int, app: Flask | None = None) -> SiteJourneys:
    """The site's active journeys at their live versions, cached per process (``app``: the current
    application, when the caller has it at hand); a change made here is seen at once, one made by
    another process within :data:`RECHECK_SECONDS`."""
    extensions = (app or current_app).extensions
    cache: dict[int, SiteJourneys] | None = extensions.get("personalize.journeys")
    if cache is None:
        cache = extensions.setdefault("personalize.journeys", {})
    cached = cache.get(site_id)
    now = time.monotonic()
    if cached is not None and now - cached.checked < RECHECK_SECONDS:
        return cached
    stamp = tuple(db.session.connection().execute(STAMP, {"site": site_id}).one())
    if cached is not None and cached.stamp == stamp:
        cached.checked = now
        return cached
    rows = db.session.execute(
        select(Journey.id, Journey.key, Journey.name, Journey.version, Journey.created_at, Journey.activated_at)
        .where(Journey.site_id == site_id, Journey.status == "active", Journey.version > 0).order_by(Journey.id)
    ).all()
    journeys = []
    for jid, key, name, version, created, activated in rows:
        definition, flow = version_flow(jid, version)
        journeys.append(LiveJourney(jid, site_id, key, name, version, definition, flow, created, activated))
    result = SiteJourneys.of(stamp, journeys)
    result.checked = now
    with _lock:
        cache[site_id] = result
    return result


def _forget(site_id: int) -> None:
    with contextlib.suppress(RuntimeError):  # no application context: nothing cached here
        current_app.extensions.get("personalize.journeys", {}).pop(site_id, None)
