"""Group commit for events: the event batches that arrive together in one process share a transaction.

Each ``POST /api/v1/events`` is already a batch (the widget's), but a busy shop
sends many small batches at once, and storing each in a transaction of its own
spends most of the time on per-statement and per-commit work, not on the rows.
:func:`store_batched` queues a request's events; one request at a time per site
(the *writer*) takes everything queued and stores it with one
:func:`personalize.profiles.store_events` call, one transaction; the requests
whose events it stored wake up with their own share of the result. Under light
load a request finds the queue empty and writes its own events at once: nothing
waits for a timer. Every request still answers only after its events are
committed, so a 2xx keeps meaning "durably stored".

Device facts (browser, device, language: from each request's own headers) are
written by the writer too. A profile created for this group's events gets them in
the events' own transaction (one more insert, no commit of its own). For the other
profiles, those this process saw holding the same facts within the last minute cost
nothing; the rest are compared with what is stored and written, for the whole group,
in one more transaction right after the events' commit (a failure there is logged;
the events are stored already). With real browsers every batch carries the headers,
and a commit per request made the writers queue for the database. What follows
(the ``event_received`` hook, segment membership) runs in each request's own thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field

from flask import current_app, has_request_context, request

from .db import database_unavailable, db, writer_turn
from .models import utcnow
from .plugins import notify_each
from .profiles import IncomingEvent, IngestResult, store_events
from .profiles.events import unique_by_id
from .profiles.facts import (
    KnownFacts,
    device_facts,
    fact_rows,
    insert_new_profiles_facts,
    record_facts_of_group,
    remember_facts,
)
from .profiles.privacy import address_facts

log = logging.getLogger(__name__)


@dataclass
class _Waiting:
    events: list[IncomingEvent]
    facts: dict[str, str] = field(default_factory=dict)  # device facts from the request's headers
    done: bool = False
    result: IngestResult | None = None
    error: BaseException | None = None


@dataclass
class EventBatcher:
    """The queue and the writer's turn, per site, for one process."""

    _queued: dict[int, list[_Waiting]] = field(default_factory=dict)
    _writer: dict[int, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    known_facts: KnownFacts = field(default_factory=KnownFacts)  # the app's database's profiles, so one per app

    def store(self, site_id: int, events: list[IncomingEvent], facts: dict[str, str] | None = None) -> IngestResult:
        """Store ``events`` (validated) with whatever else is queued for the site, and record
        ``facts`` for their profiles; return this request's share."""
        mine = _Waiting(events, dict(facts or {}))
        with self._lock:
            self._queued.setdefault(site_id, []).append(mine)
            writer = self._writer.setdefault(site_id, threading.Lock())
        with writer:
            if not mine.done:  # nobody took them while we waited: we write, for everyone queued
                with writer_turn("events"):  # SQLite: one writing process at a time, woken at once (db.SQLiteWriterTurn)
                    with self._lock:
                        group = self._queued.pop(site_id, [])
                    _write(site_id, group, self.known_facts)
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result


def _write(site_id: int, group: list[_Waiting], known: KnownFacts) -> None:
    owner: dict[str, int] = {}
    combined: list[IncomingEvent] = []
    for n, waiting in enumerate(group):
        for ev in waiting.events:
            if ev.id not in owner:  # the same id twice (a retry racing the original) is stored once
                owner[ev.id] = n
                combined.append(ev)
    done: dict[int, tuple] = {}  # new profiles whose device facts went in with the events: which facts

    def new_profiles_facts(profile_of: dict[str, int], created: set[int]) -> None:
        if not created:
            return
        now, rows = utcnow(), []
        for waiting in group:
            if waiting.facts:
                for ev in waiting.events:
                    pid = profile_of[ev.visitor]
                    if pid in created and pid not in done:
                        done[pid] = tuple(sorted(waiting.facts.items()))
                        rows.extend(fact_rows(site_id, pid, waiting.facts, now))
        insert_new_profiles_facts(rows)

    try:
        stored = store_events(site_id, combined, before_commit=new_profiles_facts)
    except Exception as exc:
        if len(group) > 1 and not database_unavailable(exc):
            # Something in one request's events broke the shared transaction (nothing was stored):
            # each request again on its own, so only the one that carries it fails.
            log.warning("a group of %d event batches failed for site %s (%s); storing each on its own", len(group), site_id, exc)
            for waiting in group:
                with contextlib.suppress(Exception):  # kept on the waiting request: its own answer
                    _write(site_id, [waiting], known)
            return
        _fail(group, exc)
        raise
    except BaseException:
        _fail(group, RuntimeError("the request storing these events was stopped"))
        raise
    _share(site_id, group, owner, stored, done, known)


def _fail(group: list[_Waiting], exc: Exception) -> None:
    """Every request of ``group`` answers with ``exc``: nothing of theirs was stored."""
    for waiting in group:
        waiting.error, waiting.done = exc, True


def _share(site_id: int, group: list[_Waiting], owner: dict[str, int], stored: IngestResult, done: dict[int, tuple], known: KnownFacts) -> None:
    """Each request's share of what the group stored, then the group's device facts."""
    shares = [IngestResult() for _ in group]
    for record in stored.stored:
        shares[owner[record.event_id]].stored.append(record)
    for waiting, share in zip(group, shares, strict=True):
        share.accepted = len(share.stored)
        share.duplicates = len(waiting.events) - share.accepted
        share.profiles = list(dict.fromkeys(record.profile_id for record in share.stored))
    try:
        _record_facts(site_id, group, shares, done, known)
    finally:  # the events are committed: every request gets its answer whatever happened to the facts
        for waiting, share in zip(group, shares, strict=True):
            waiting.result, waiting.done = share, True


def _record_facts(site_id: int, group: list[_Waiting], shares: list[IngestResult], done: dict[int, tuple], known: KnownFacts) -> None:
    """The group's device facts in one transaction (each request's facts for its own profiles);
    profiles known to hold them already, and new ones (``done``: written with the events), cost no statement."""
    wanted = [(share.profiles, waiting.facts) for waiting, share in zip(group, shares, strict=True) if waiting.facts and share.profiles]
    if not wanted:
        return
    try:
        if record_facts_of_group(site_id, wanted, done, known, utcnow()):
            db.session.commit()
        remember_facts(wanted, known)
    except Exception:
        db.session.rollback()
        log.exception("device facts after events failed for site %s", site_id)


def store_batched(site_id: int, events: list[IncomingEvent]) -> IngestResult:
    """Store one request's validated events through the process's group commit, then run what follows."""
    batcher = current_app.extensions.get("personalize.event_batcher")
    if batcher is None:
        batcher = current_app.extensions.setdefault("personalize.event_batcher", EventBatcher())
    unique = unique_by_id(events)
    facts: dict[str, str] = {}
    if has_request_context():
        facts = device_facts(request.headers.get("User-Agent"), request.headers.get("Accept-Language"))
        facts.update(address_facts(current_app.config, request.remote_addr))  # only when the admin opted in
    result = batcher.store(site_id, unique, facts)
    result.duplicates += len(events) - len(unique)
    _after_group_commit(site_id, result)
    return result


def _after_group_commit(site_id: int, result: IngestResult) -> None:
    """What :func:`personalize.profiles.after_store` does, but the device facts (recorded with the group)."""
    if not result.stored:
        return
    notify_each("event_received", [{"site_id": site_id, "event": record} for record in result.stored])
    from .segments.live import refresh_profiles

    try:
        refresh_profiles(site_id, result.profiles)
    except Exception:
        db.session.rollback()
        log.exception("segment update after events failed for site %s", site_id)
