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

What follows the commit (the ``event_received`` hook, device facts from the
request's own headers, segment membership) runs in each request's own thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import current_app

from .profiles import IncomingEvent, IngestResult, after_store, store_events
from .profiles.events import unique_by_id


@dataclass
class _Waiting:
    events: list[IncomingEvent]
    done: bool = False
    result: IngestResult | None = None
    error: BaseException | None = None


@dataclass
class EventBatcher:
    """The queue and the writer's turn, per site, for one process."""

    _queued: dict[int, list[_Waiting]] = field(default_factory=dict)
    _writer: dict[int, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self, site_id: int, events: list[IncomingEvent]) -> IngestResult:
        """Store ``events`` (validated) with whatever else is queued for the site; return this request's share."""
        mine = _Waiting(events)
        with self._lock:
            self._queued.setdefault(site_id, []).append(mine)
            writer = self._writer.setdefault(site_id, threading.Lock())
        with writer:
            if not mine.done:  # nobody took them while we waited: we write, for everyone queued
                with self._lock:
                    group = self._queued.pop(site_id, [])
                _write(site_id, group)
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result


def _write(site_id: int, group: list[_Waiting]) -> None:
    owner: dict[str, int] = {}
    combined: list[IncomingEvent] = []
    for n, waiting in enumerate(group):
        for ev in waiting.events:
            if ev.id not in owner:  # the same id twice (a retry racing the original) is stored once
                owner[ev.id] = n
                combined.append(ev)
    try:
        stored = store_events(site_id, combined)
    except BaseException as exc:  # every request of the group answers with the error; nothing was stored
        shared = exc if isinstance(exc, Exception) else RuntimeError("the request storing these events was stopped")
        for waiting in group:
            waiting.error, waiting.done = shared, True
        raise
    shares = [IngestResult() for _ in group]
    for record in stored.stored:
        shares[owner[record.event_id]].stored.append(record)
    for waiting, share in zip(group, shares, strict=True):
        share.accepted = len(share.stored)
        share.duplicates = len(waiting.events) - share.accepted
        share.profiles = list(dict.fromkeys(record.profile_id for record in share.stored))
        waiting.result, waiting.done = share, True


def store_batched(site_id: int, events: list[IncomingEvent]) -> IngestResult:
    """Store one request's validated events through the process's group commit, then run what follows."""
    batcher = current_app.extensions.get("personalize.event_batcher")
    if batcher is None:
        batcher = current_app.extensions.setdefault("personalize.event_batcher", EventBatcher())
    unique = unique_by_id(events)
    result = batcher.store(site_id, unique)
    result.duplicates += len(events) - len(unique)
    after_store(site_id, result)
    return result
