"""Running due steps, exactly once each, and never dropping one.

Every step an entry reaches is a row of ``journey_steps`` with the time it is due. A
runner (:func:`personalize.journeys.batches.run_due`, the ``journeys_run`` job) works in three phases:

1. **Claim** a batch of due rows in one statement: ``UPDATE … SET due_at = <now + lease>,
   claim = <token>, attempts = attempts + 1 WHERE id IN (SELECT … ORDER BY due_at LIMIT n
   FOR UPDATE SKIP LOCKED)`` on PostgreSQL; SQLite runs the same UPDATE under its single
   writer lock. Moving ``due_at`` to the end of the lease is what makes a crash harmless:
   a runner killed mid-batch leaves its rows due again once the lease ends.
2. **Move** every claimed step that needs no outside call (a wait that ended, a branch,
   a split, an exit, a wait-for-event that was answered or timed out), and the
   instantaneous steps that follow it, in one transaction: each row is marked done with
   its outcome, and the row of the step each person reaches next is inserted. Actions
   reached this way are inserted already claimed by this runner.
3. **Act**: each action is checked (control group, consent, quiet hours, recent contact,
   contact policy), carried out with its idempotency key, and its row is marked done
   together with the next step's row in one transaction, right after the provider
   accepted it.

Every write first re-takes the claimed rows with ``UPDATE … WHERE claim = <token>``: a
runner whose lease ran out (another one took the rows over) writes nothing. The one
window where an action can be repeated is a crash between the provider's acceptance and
that commit; the retry then carries the same idempotency key (the email's Message-ID,
the webhook's ``Idempotency-Key``, the connector action's key), so the provider can
tell it is the same message.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, select, update

from ..db import db, holding_writer_turn, sqlite_insert_rows
from ..metrics import JOURNEY_STEPS
from .definition import ACTIONS, SPLIT_LABELS, Flow
from .models import Journey, JourneyEnrollment, JourneySettings, JourneyStep
from .store import version_flow

log = logging.getLogger(__name__)

STEPS = JourneyStep.__table__
ENROLLMENTS = JourneyEnrollment.__table__
MAX_RETRIES = 8
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 6 * 3600


def step_key(enrollment_id: int, step_id: str) -> str:
    """The idempotency key of one step of one entry: the same on every attempt, unique otherwise."""
    return "pz-" + hashlib.sha256(f"journey-step:{enrollment_id}:{step_id}".encode()).hexdigest()[:40]


def step_row(site_id: int, journey_id: int, entry_id: int, profile_id: int, step: dict, due, now, state: str = "due", outcome: str = "",
             detail=None, claim: str | None = None) -> tuple:
    """A new ``journey_steps`` row, its values in the order of :data:`STEP_COLUMNS` (``due``, ``now``
    and ``detail`` as given: datetimes and a dict, or the texts SQLite stores; ``claim``: the
    claiming runner's token, the row then counts one attempt)."""
    return (site_id, journey_id, entry_id, profile_id, step["id"], step["type"], state, outcome, due, claim, 1 if claim else 0,
            None, step_key(entry_id, step["id"]), {} if detail is None else detail, now, now if state == "done" else None)


def fixed_due(step: dict, now: datetime) -> datetime | None:
    """When a new row of ``step`` is due, where that is the same for everyone: a wait of a duration
    or for an event, ``now`` plus its seconds; an action, ``now``. None for the others (a wait
    until a time of the person's day, the steps that take no time)."""
    kind = step["type"]
    if kind in ("wait", "wait_event") and "seconds" in step:
        return now + timedelta(seconds=step["seconds"])
    return now if kind in ACTIONS else None


def retry_delay(retries: int) -> timedelta:
    return timedelta(seconds=min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, retries)))


def split_label(shares: dict[str, int], enrollment_id: int, step_id: str) -> str:
    """The path of a random split for one entry: a fixed point from a hash, so a retry takes the same path."""
    digest = hashlib.sha256(f"journey-split:{enrollment_id}:{step_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * 100
    edge = 0.0
    labels = [label for label in SPLIT_LABELS if label in shares]
    for label in labels:
        edge += shares[label]
        if point < edge:
            return label
    return labels[-1]


# ---------------------------------------------------------------- in-memory shapes


@dataclass
class Entry:
    """One entry as a runner sees it."""

    id: int
    site_id: int
    journey_id: int
    profile_id: int
    version: int
    control: bool
    entered_at: datetime
    data: dict
    status: str
    definition: dict = field(default_factory=dict)
    flow: Flow | None = None


@dataclass
class Claimed:
    id: int
    site_id: int
    journey_id: int
    enrollment_id: int
    profile_id: int
    step_id: str
    kind: str
    attempts: int
    signal: str | None
    key: str
    entered_at: datetime
    detail: dict


@dataclass
class Change:
    """What one claimed row turns into: its own end (or a new due time) and what follows it."""

    row: Claimed
    outcome: str = ""  # the row is done with this outcome; "" with ``release``: due again
    detail: dict = field(default_factory=dict)
    release: datetime | None = None
    inserts: list[tuple] = field(default_factory=list)  # new step rows (:meth:`Mover.row`)
    ends: list[tuple[int, str, str, datetime | None]] = field(default_factory=list)  # (entry, status, reason, goal_at)
    version: tuple[int, int] | None = None  # (entry, version) it moved to
    contact: tuple[int, str] | None = None  # (profile, channel) to count on the contact policy
    attribute: tuple[int, str, Any] | None = None
    follow: tuple[Entry, str | None] | None = None  # where the entry goes on from, once the row is done


@dataclass
class Summary:
    claimed: int = 0
    moved: int = 0
    acted: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0

    def add(self, other: Summary) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


# ---------------------------------------------------------------- claiming


def _setting(name: str, default: Any) -> Any:
    try:
        return current_app.config.get(name, default)
    except RuntimeError:
        return default


def _due(now: datetime):
    j = Journey.__table__
    return select(STEPS.c.id).join(j, j.c.id == STEPS.c.journey_id).where(STEPS.c.state == "due", STEPS.c.due_at <= now, j.c.status == "active")


def claim(limit: int, now: datetime, lease_seconds: float, token: str) -> list[Claimed]:
    """Claim up to ``limit`` due steps of active journeys for ``lease_seconds``; commits.

    When nothing is due (most ticks of a quiet runner) it only reads: no write transaction,
    and on SQLite no writer turn taken from the events' batches."""
    if db.session.execute(_due(now).limit(1)).first() is None:
        db.session.commit()  # ends the read (PostgreSQL: its transaction), as the claim's commit did
        return []
    return _claim(limit, now, lease_seconds, token)


@holding_writer_turn("journeys")
def _claim(limit: int, now: datetime, lease_seconds: float, token: str) -> list[Claimed]:
    inner = _due(now).order_by(STEPS.c.due_at).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        inner = inner.with_for_update(of=STEPS, skip_locked=True)
    stmt = (
        update(STEPS).where(STEPS.c.id.in_(inner.scalar_subquery()))
        .values(due_at=now + timedelta(seconds=lease_seconds), claim=token, attempts=STEPS.c.attempts + 1)
        .returning(STEPS.c.id, STEPS.c.site_id, STEPS.c.journey_id, STEPS.c.enrollment_id, STEPS.c.profile_id, STEPS.c.step_id,
                   STEPS.c.kind, STEPS.c.attempts, STEPS.c.signal, STEPS.c.idempotency_key, STEPS.c.entered_at, STEPS.c.detail)
    )
    try:
        rows = db.session.execute(stmt).all()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return [Claimed(*r[:11], detail=r[11] or {}) for r in rows]


def _claimed_again(token: str) -> list[Claimed]:
    """The rows this runner holds and has not finished (its actions, after the move phase)."""
    rows = db.session.execute(
        select(STEPS.c.id, STEPS.c.site_id, STEPS.c.journey_id, STEPS.c.enrollment_id, STEPS.c.profile_id, STEPS.c.step_id,
               STEPS.c.kind, STEPS.c.attempts, STEPS.c.signal, STEPS.c.idempotency_key, STEPS.c.entered_at, STEPS.c.detail)
        .where(STEPS.c.claim == token, STEPS.c.state == "due").order_by(STEPS.c.id)
    ).all()
    return [Claimed(*r[:11], detail=r[11] or {}) for r in rows]


# ---------------------------------------------------------------- loading


def _entries(ids: list[int]) -> dict[int, Entry]:
    out: dict[int, Entry] = {}
    for start in range(0, len(ids), 500):
        for r in db.session.execute(
            select(ENROLLMENTS.c.id, ENROLLMENTS.c.site_id, ENROLLMENTS.c.journey_id, ENROLLMENTS.c.profile_id, ENROLLMENTS.c.version,
                   ENROLLMENTS.c.control, ENROLLMENTS.c.entered_at, ENROLLMENTS.c.data, ENROLLMENTS.c.status)
            .where(ENROLLMENTS.c.id.in_(ids[start : start + 500]))
        ):
            out[r[0]] = Entry(*r[:7], data=r[7] or {}, status=r[8])
    return out


def _journeys(ids: set[int]) -> dict[int, tuple[str, int, str, str]]:
    """``{id: (status, live version, key, name)}``."""
    if not ids:
        return {}
    return {r[0]: tuple(r[1:]) for r in db.session.execute(select(Journey.id, Journey.status, Journey.version, Journey.key, Journey.name).where(Journey.id.in_(ids)))}


class SiteZones:
    """Each site's time zone (journey settings), read once per batch."""

    def __init__(self):
        self._zones: dict[int, str] = {}

    def of(self, site_id: int) -> str:
        if site_id not in self._zones:
            self._zones[site_id] = db.session.scalar(select(JourneySettings.timezone).where(JourneySettings.site_id == site_id)) or "UTC"
        return self._zones[site_id]


# ---------------------------------------------------------------- moving through the flow


class Mover:
    """Works out where entries go next, for many entries at once (branch rules are evaluated
    per step in one query for all the people at it)."""

    def __init__(self, now: datetime, token: str | None, lease_until: datetime, zones: SiteZones):
        self.now, self.token, self.lease_until, self.zones = now, token, lease_until, zones
        self._timezones: dict[int, str | None] = {}

    def zone_of(self, entry: Entry):
        from .email import zone
        from .pressure import UTC

        if entry.profile_id not in self._timezones:
            from ..profiles.models import ProfileAttribute

            self._timezones[entry.profile_id] = db.session.scalar(
                select(ProfileAttribute.value).where(ProfileAttribute.profile_id == entry.profile_id, ProfileAttribute.name == "timezone")
            )
        mine = zone(self._timezones[entry.profile_id])
        return mine or zone(self.zones.of(entry.site_id)) or UTC

    def row(self, entry: Entry, step: dict, due: datetime, state: str = "due", outcome: str = "", detail: dict | None = None,
            claimed: bool = False) -> tuple:
        """A new ``journey_steps`` row, its values in the order of :data:`STEP_COLUMNS`."""
        claimed = claimed and self.token is not None
        return step_row(entry.site_id, entry.journey_id, entry.id, entry.profile_id, step, self.lease_until if claimed else due,
                        self.now, state, outcome, detail or {}, self.token if claimed else None)

    def advance(self, items: list[tuple[Change, Entry, str | None]], claim_actions: bool) -> None:
        """Move each entry on from a step to ``next_id`` (None: the end), through every step that
        takes no time, adding the rows and ends to its :class:`Change`."""
        frontier = items
        guard = 0
        while frontier:
            guard += 1
            if guard > 200:  # a definition is a tree of at most 100 steps
                raise RuntimeError("a journey's flow did not end")
            branch_at: dict[tuple[int, int, str], list[int]] = defaultdict(list)
            for _change, entry, sid in frontier:
                if sid is not None and entry.flow.steps[sid]["type"] == "branch":
                    branch_at[(entry.journey_id, entry.version, sid)].append(entry.profile_id)
            verdicts = {key: self._matching(key, pids, frontier) for key, pids in branch_at.items()}
            nxt: list[tuple[Change, Entry, str | None]] = []
            for change, entry, sid in frontier:
                if sid is None:
                    change.ends.append((entry.id, "completed", "went through every step", None))
                    continue
                step = entry.flow.steps[sid]
                kind = step["type"]
                if kind == "wait":
                    due = fixed_due(step, self.now)
                    if due is None:
                        from .pressure import next_local_time

                        due = next_local_time(self.now, step["until"], self.zone_of(entry))
                    change.inserts.append(self.row(entry, step, due))
                elif kind == "wait_event":
                    change.inserts.append(self.row(entry, step, fixed_due(step, self.now)))
                elif kind == "branch":
                    label = "yes" if entry.profile_id in verdicts[(entry.journey_id, entry.version, sid)] else "no"
                    change.inserts.append(self.row(entry, step, self.now, "done", label))
                    nxt.append((change, entry, entry.flow.branch_start(sid, label)))
                elif kind == "split":
                    label = split_label(step["shares"], entry.id, sid)
                    change.inserts.append(self.row(entry, step, self.now, "done", label))
                    nxt.append((change, entry, entry.flow.branch_start(sid, label)))
                elif kind == "exit":
                    change.inserts.append(self.row(entry, step, self.now, "done", "exited", {"reason": "exit step"}))
                    change.ends.append((entry.id, "exited", "exit step", None))
                elif kind in ACTIONS:
                    change.inserts.append(self.row(entry, step, self.now, claimed=claim_actions and self.token is not None))
                else:  # pragma: no cover - validated definitions have no other kind
                    raise ValueError(f"unknown step type {kind!r}")
            frontier = nxt

    def _matching(self, key: tuple[int, int, str], profile_ids: list[int], frontier) -> set[int]:
        from ..models import Profile
        from ..segments.bulk import matching

        journey_id, version, sid = key
        definition, flow = version_flow(journey_id, version)
        rule = flow.steps[sid]["rule"]
        site_id = next(entry.site_id for _c, entry, _s in frontier if entry.journey_id == journey_id)
        out: set[int] = set()
        ids = list(dict.fromkeys(profile_ids))
        p = Profile.__table__
        for start in range(0, len(ids), 500):
            q = matching(site_id, rule, self.now).where(p.c.id.in_(ids[start : start + 500]))
            out.update(db.session.scalars(q))
        return out


# ---------------------------------------------------------------- writing


@holding_writer_turn("journeys")
def write(changes: list[Change], token: str, now: datetime) -> tuple[int, int]:
    """Apply changes in one transaction; a change whose row this runner no longer holds is
    dropped whole. Returns ``(applied, lost)``. Commits (or rolls back and raises)."""
    if not changes:
        return 0, 0
    from ..segments.policy import record_many

    try:
        ids = [c.row.id for c in changes]
        pg = db.session.get_bind().dialect.name == "postgresql"
        held: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            if pg:  # row locks, without writing new row versions
                lock = select(STEPS.c.id).where(STEPS.c.id.in_(chunk), STEPS.c.claim == token).with_for_update()
            else:  # SQLite: a write first, so this transaction holds the one writer lock from here on
                lock = update(STEPS).where(STEPS.c.id.in_(chunk), STEPS.c.claim == token).values(claim=token).returning(STEPS.c.id)
            held.update(r[0] for r in db.session.execute(lock))
        kept = [c for c in changes if c.row.id in held]
        entries = sorted({c.row.enrollment_id for c in kept})
        q = select(ENROLLMENTS.c.id, ENROLLMENTS.c.status)
        if db.session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update()
        active: set[int] = set()
        for start in range(0, len(entries), 500):
            active.update(i for i, status in db.session.execute(q.where(ENROLLMENTS.c.id.in_(entries[start : start + 500]))) if status == "active")
        done = [{"i": c.row.id, "o": c.outcome, "d": c.detail, "t": now} for c in kept if c.release is None]
        if done:
            if pg:
                _bulk_pg(_DONE_PG, {"ids": [d["i"] for d in done], "outs": [d["o"] for d in done],
                                    "details": [json.dumps(d["d"] or {}) for d in done], "t": now})
            else:
                db.session.execute(_DONE, done)
        released = [{"i": c.row.id, "u": c.release, "d": c.detail} for c in kept if c.release is not None]
        if released:
            db.session.execute(_RELEASE, released)
        insert_steps([row for c in kept if c.row.enrollment_id in active for row in c.inserts])
        by_site: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for c in kept:
            if c.contact is not None:
                by_site[c.row.site_id].append(c.contact)
        for site_id, sent in by_site.items():
            record_many(site_id, sent, now)
        attributes = [(c.row.site_id, c.attribute) for c in kept if c.attribute is not None]
        if attributes:
            from ..profiles import set_attributes

            for site_id, (pid, name, value) in attributes:
                set_attributes(site_id, pid, {name: value}, "journey", now, commit=False)
        versions = [{"i": c.version[0], "v": c.version[1]} for c in kept if c.version is not None and c.version[0] in active]
        if versions:
            db.session.execute(_VERSION, versions)
        ends = [(e, status, reason, goal_at) for c in kept if c.row.enrollment_id in active for e, status, reason, goal_at in c.ends]
        end_entries(ends, now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    for c in kept:  # what /metrics shows: steps run by kind and outcome (a retry is "retried")
        JOURNEY_STEPS.inc(step=c.row.kind, outcome=c.outcome if c.release is None else "retried")
    if attributes:
        _refresh_segments({(site_id, pid) for site_id, (pid, _n, _v) in attributes})
    return len(kept), len(changes) - len(kept)


def end_entries(ends: list[tuple[int, str, str, datetime | None]], now: datetime) -> None:
    """Mark entries ended ``(entry, status, reason, goal time)``, in one statement per kind. No commit."""
    if ends and db.session.get_bind().dialect.name == "postgresql":
        _bulk_pg(_END_PG, {"ids": [e for e, *_rest in ends], "statuses": [s for _e, s, _r, _g in ends],
                           "reasons": [r[:120] for _e, _s, r, _g in ends], "goals": [g for *_rest, g in ends], "t": now})
        return
    plain = [{"i": e, "s": status, "r": reason[:120], "t": now} for e, status, reason, goal_at in ends if goal_at is None]
    goals = [{"i": e, "s": status, "r": reason[:120], "t": now, "g": goal_at} for e, status, reason, goal_at in ends if goal_at is not None]
    if plain:
        db.session.execute(_END, plain)
    if goals:
        db.session.execute(_END_GOAL, goals)


def _refresh_segments(pairs: set[tuple[int, int]]) -> None:
    from ..segments.live import refresh_profiles

    by_site: dict[int, list[int]] = defaultdict(list)
    for site_id, pid in pairs:
        by_site[site_id].append(pid)
    for site_id, pids in by_site.items():
        try:
            refresh_profiles(site_id, pids)
        except Exception:
            db.session.rollback()
            log.exception("segment update after a journey set attributes failed for site %s", site_id)


_DONE = (
    update(STEPS).where(STEPS.c.id == bindparam("i"))
    .values(state="done", outcome=bindparam("o"), detail=bindparam("d"), done_at=bindparam("t"), claim=None)
)
_RELEASE = update(STEPS).where(STEPS.c.id == bindparam("i")).values(due_at=bindparam("u"), detail=bindparam("d"), claim=None)
STEP_COLUMNS = (
    ("site_id", "integer"), ("journey_id", "integer"), ("enrollment_id", "bigint"), ("profile_id", "bigint"), ("step_id", "varchar"),
    ("kind", "varchar"), ("state", "varchar"), ("outcome", "varchar"), ("due_at", "timestamp"), ("claim", "varchar"),
    ("attempts", "integer"), ("signal", "varchar"), ("idempotency_key", "varchar"), ("detail", "json"), ("entered_at", "timestamp"),
    ("done_at", "timestamp"),
)


def unnest_insert(table: str, columns: tuple[tuple[str, str], ...], suffix: str = "") -> str:
    """``INSERT … SELECT * FROM unnest(arrays…)`` (PostgreSQL): many rows in one statement."""
    names = ", ".join(name for name, _t in columns)
    arrays = ", ".join(f"%({name})s::{'text' if kind == 'json' else kind}[]" for name, kind in columns)
    values = ", ".join(f"{name}::json" if kind == "json" else name for name, kind in columns)
    return f"INSERT INTO {table} ({names}) SELECT {values} FROM unnest({arrays}) AS v({names}) {suffix}"


_INSERT_STEPS_PG = unnest_insert("journey_steps", STEP_COLUMNS)


def column_arrays(rows: list[tuple], columns: tuple[tuple[str, str], ...]) -> dict[str, list]:
    """Rows (tuples in the order of ``columns``) as one array per column, for :func:`unnest_insert`."""
    if not rows:
        return {name: [] for name, _kind in columns}
    return {name: [json.dumps(v) for v in values] if kind == "json" else list(values)
            for (name, kind), values in zip(columns, zip(*rows, strict=True), strict=True)}


def insert_steps(rows: list[tuple], stored: bool = False) -> None:
    """Store new step rows (tuples in the order of :data:`STEP_COLUMNS`; in the caller's transaction).
    ``stored``: on SQLite, the rows' JSON and timestamps are texts already (:func:`personalize.db.sqlite_insert_rows`)."""
    if not rows:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        for start in range(0, len(rows), 5000):
            _bulk_pg(_INSERT_STEPS_PG, column_arrays(rows[start : start + 5000], STEP_COLUMNS))
    else:
        sqlite_insert_rows("journey_steps", STEP_COLUMNS, rows, chunk=400, stored=stored)  # 16 columns: under SQLite's 32,766 parameters


def _bulk_pg(sql: str, params: dict):
    """One statement over arrays of values (PostgreSQL): a batch costs one round trip and one plan."""
    connection = db.session.connection()
    cursor = connection.connection.dbapi_connection.cursor()
    cursor.execute(sql, params)
    return cursor


_DONE_PG = """
UPDATE journey_steps AS s SET state = 'done', outcome = v.o, detail = v.d::json, done_at = %(t)s, claim = NULL
FROM unnest(%(ids)s::bigint[], %(outs)s::varchar[], %(details)s::text[]) AS v(i, o, d) WHERE s.id = v.i
"""
_END_PG = """
UPDATE journey_enrollments AS e SET status = v.s, exit_reason = v.r, finished_at = %(t)s, active_profile = NULL,
    goal_at = COALESCE(v.g, e.goal_at)
FROM unnest(%(ids)s::bigint[], %(statuses)s::varchar[], %(reasons)s::varchar[], %(goals)s::timestamp[]) AS v(i, s, r, g)
WHERE e.id = v.i AND e.status = 'active'
"""
_END = (
    update(ENROLLMENTS).where(ENROLLMENTS.c.id == bindparam("i"), ENROLLMENTS.c.status == "active")
    .values(status=bindparam("s"), exit_reason=bindparam("r"), finished_at=bindparam("t"), active_profile=None)
)
_END_GOAL = _END.values(goal_at=bindparam("g"))
_VERSION = update(ENROLLMENTS).where(ENROLLMENTS.c.id == bindparam("i")).values(version=bindparam("v"))


# ---------------------------------------------------------------- the run


def prepare(claimed: list[Claimed], entries: dict[int, Entry], journeys: dict[int, tuple], now: datetime) -> list[Change]:
    """The checks every claimed step goes through first: the entry ended, the journey was
    stopped, the goal was reached, the person left the trigger segment; and which version's
    flow the entry is on. Returns a :class:`Change` for every row; those that end the
    entry here already carry their outcome."""
    changes: list[Change] = []
    live: list[tuple[Claimed, Entry]] = []
    for row in claimed:
        change = Change(row)
        changes.append(change)
        entry = entries.get(row.enrollment_id)
        journey = journeys.get(row.journey_id)
        if entry is None or journey is None:
            change.outcome, change.detail = "cancelled", {"reason": "the entry is gone"}
            continue
        if entry.status != "active":
            change.outcome, change.detail = ("goal" if entry.status == "goal" else "exited"), {"reason": f"the entry ended ({entry.status})"}
            continue
        if journey[0] == "stopped":
            change.outcome = "exited"
            change.ends.append((entry.id, "exited", "journey stopped", None))
            continue
        _choose_version(entry, row, journey[1], change)
        if entry.flow is None:
            change.outcome = "exited"
            change.ends.append((entry.id, "exited", f"step {row.step_id} no longer exists", None))
            continue
        live.append((row, entry))
    goals = _goals_reached([(r, e) for r, e in live if e.definition["exit"]["on_goal"]], now)
    outside = _left_segment([(r, e) for r, e in live if e.definition["exit"]["on_segment_exit"]])
    by_row = {c.row.id: c for c in changes}
    for row, entry in live:
        change = by_row[row.id]
        if entry.id in goals:
            change.outcome, change.detail = "goal", {"reason": "the goal was reached"}
            change.ends.append((entry.id, "goal", "reached the goal", goals[entry.id]))
        elif entry.id in outside:
            change.outcome, change.detail = "exited", {"reason": "left the trigger segment"}
            change.ends.append((entry.id, "exited", "left the trigger segment", None))
    return changes


def _choose_version(entry: Entry, row: Claimed, live_version: int, change: Change) -> None:
    """People in flight move to the live version at their next step when that step still exists
    there (by id); otherwise they stay on their own version."""
    if live_version and live_version != entry.version:
        definition, flow = version_flow(entry.journey_id, live_version)
        if row.step_id in flow.steps:
            entry.version, entry.definition, entry.flow = live_version, definition, flow
            change.version = (entry.id, live_version)
            return
    definition, flow = version_flow(entry.journey_id, entry.version)
    entry.definition, entry.flow = definition, (flow if row.step_id in flow.steps else None)


def _goals_reached(pairs: list[tuple[Claimed, Entry]], now: datetime) -> dict[int, datetime]:
    """Entries whose person reached the journey's goal since entering: ``{entry id: when}``. The
    order or event that made the entry is not its goal (a post-purchase journey's own order)."""
    from ..models import Event, Order

    out: dict[int, datetime] = {}
    by_goal: dict[tuple, list[Entry]] = defaultdict(list)
    for _row, entry in pairs:
        goal = entry.definition["goal"]
        by_goal[(entry.site_id, goal["type"], goal.get("event"))].append(entry)
    for (site_id, kind, event), group in by_goal.items():
        since = min(e.entered_at for e in group)
        pids = sorted({e.profile_id for e in group})
        times: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
        for start in range(0, len(pids), 500):
            chunk = pids[start : start + 500]
            if kind == "order":
                q = select(Order.profile_id, Order.occurred_at, Order.external_id).where(
                    Order.site_id == site_id, Order.profile_id.in_(chunk), Order.occurred_at >= since, Order.occurred_at <= now)
            else:
                q = select(Event.profile_id, Event.occurred_at, Event.event_id).where(
                    Event.profile_id.in_(chunk), Event.type == event, Event.occurred_at >= since, Event.occurred_at <= now)
            for pid, at, ident in db.session.execute(q):
                times[pid].append((at, ident))
        for entry in group:
            made_by = entry.data.get("event_id") if kind == "event" else ((entry.data.get("properties") or {}).get("order_id"))
            hits = [t for t, ident in times.get(entry.profile_id, ()) if t >= entry.entered_at and ident != made_by]
            if hits:
                out[entry.id] = min(hits)
    return out


def _left_segment(pairs: list[tuple[Claimed, Entry]]) -> set[int]:
    """Entries (of journeys entered by joining a segment) whose person is no longer in it."""
    from ..segments.models import SegmentMember
    from ..segments.store import segment_ids

    out: set[int] = set()
    by_segment: dict[tuple[int, str], list[Entry]] = defaultdict(list)
    for _row, entry in pairs:
        by_segment[(entry.site_id, entry.definition["trigger"]["segment"])].append(entry)
    for (site_id, key), group in by_segment.items():
        seg = segment_ids(site_id).get(key)
        if seg is None:
            out.update(e.id for e in group)
            continue
        pids = sorted({e.profile_id for e in group})
        members: set[int] = set()
        for start in range(0, len(pids), 500):
            members.update(db.session.scalars(select(SegmentMember.profile_id).where(SegmentMember.segment_id == seg, SegmentMember.profile_id.in_(pids[start : start + 500]))))
        out.update(e.id for e in group if e.profile_id not in members)
    return out


def _finish_waiting(row: Claimed, step: dict, entry: Entry, now: datetime) -> tuple[str, str | None]:
    """A due row of a step that takes time (a wait, a wait for an event): its outcome and the step that follows."""
    flow = entry.flow
    if step["type"] == "wait_event":
        got = row.signal or _awaited_since(entry, step["event"], row.entered_at, now)
        label = "received" if got else "timeout"
        return ("received" if got else "timed_out"), flow.branch_start(step["id"], label)
    if step["type"] != "wait":  # only waits and actions are ever inserted due
        raise ValueError(f"a {step['type']} step is never due")
    return "waited", flow.after[step["id"]]


def _awaited_since(entry: Entry, event: str, since: datetime, now: datetime) -> bool:
    """Whether the awaited event was stored after the step was reached, and by ``now`` (the notification
    may have been lost)."""
    from ..models import Event

    return db.session.scalar(
        select(Event.id).where(Event.profile_id == entry.profile_id, Event.type == event, Event.received_at >= since,
                               Event.received_at <= now).limit(1)
    ) is not None
