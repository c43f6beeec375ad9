"""The journeys' ears: a built-in plugin that hears new events and segment changes.

Lower layers publish ``event_received`` and ``segment_membership_changed`` after their
commits (:func:`personalize.plugins.notify_each`); they never import journeys. What this
plugin does in the request that delivered the events is only a dictionary lookup: is
any live journey of the site interested in this event type or segment? If so the item
goes to the process's :class:`Inbox`, and a thread of the process enters people, ends
goals and answers waits in batches (one transaction for many), then wakes the step
runner. ``JOURNEY_INBOX = "inline"`` does the work in the request instead (tests).

Nothing here is the only record: the events and changes are stored, and the catch-up of
:mod:`personalize.journeys.triggers` handles whatever a dead process left in its inbox. So that
the catch-up need not read again what was handled, the inbox thread notes, every
:data:`MARK_SECONDS`, up to when its process's events are all handled (``journey_inbox_marks``,
by the token each event row carries); a failure in the hook or a drain stops the notes for
good in that process, and the catch-up reads all it stores from then on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import datetime

from flask import Flask, current_app

from personalize import hookimpl

from .store import live_journeys  # at the top: this hook runs once per stored event

log = logging.getLogger(__name__)
GATHER_SECONDS = 0.2  # at most this often a process's inbox is drained: a busy moment's events share one transaction
BUSY_GATHER_SECONDS = 0.5  # …and this often while busy (the last drain had BUSY_ITEMS or more): fewer, larger transactions
BUSY_ITEMS = 100
DRAIN_MAX = 2000  # items handled per drain: a burst's backlog is worked off in bounded steps, not one long transaction
MARK_SECONDS = 2.0  # how often the inbox thread notes up to when its process's events are handled, while it handles some
IDLE_MARK_SECONDS = 60.0  # …and while it handles none (the events no journey hears are vouched for too)
# An event is handed to the inbox right after the commit that stored it; its stored time is taken
# just before that commit. A drain that emptied the inbox vouches for what was stored more than
# this long before it began: the catch-up's own bound on how long a transaction takes to commit.
MARK_MARGIN_SECONDS = 60.0


class Inbox:
    """Events and segment changes that concern live journeys, waiting for the inbox thread."""

    def __init__(self, app: Flask):
        self.app = app
        self.items: deque = deque()
        self.wake = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.handled = 0
        self.failed = False  # a notification or drain failed: no mark is noted again (the catch-up reads everything)
        self.safe: datetime | None = None  # every event this process stored before this was handled
        self._marked: datetime | None = None  # the last mark written
        self._marked_at = 0.0
        self._marked_handled = -1  # self.handled when the last mark was written

    def put(self, kind: str, site_id: int, payload) -> None:
        # once per event: each threading.Event's lock only when its state changes (the thread clears
        # ``wake`` before it drains, so an item appended while ``wake`` is still set is in that drain)
        if self.idle.is_set():
            self.idle.clear()
        self.items.append((kind, site_id, payload))
        self._start()
        if not self.wake.is_set():
            self.wake.set()

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="personalize-journeys-inbox", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        last, pause = 0.0, GATHER_SECONDS
        while True:
            if not self.items:
                self.wake.wait(timeout=5.0)
            # a quiet moment's event is handled at once; under load the drains come GATHER_SECONDS apart,
            # each taking what gathered meanwhile (one transaction for many: SQLite has one writer), and
            # at least as long apart as the last drain took: after a burst, the backlog is worked off with
            # this thread busy half the time at most, so the process's requests keep their share. While
            # busy (BUSY_ITEMS or more in the last drain) they come BUSY_GATHER_SECONDS apart: what a
            # transaction of entries costs the one writer is mostly per transaction (the pages each of
            # its indexes touches), so fewer, larger ones leave the event requests most of the writer
            time.sleep(max(0.0, last + pause - time.monotonic()))
            last = time.monotonic()
            self.wake.clear()
            handled = self.handled
            try:
                with self.app.app_context():
                    self.drain(DRAIN_MAX)
            except Exception:  # the inbox thread must keep going; the catch-up redoes what failed
                self.failed = True
                log.exception("journeys inbox failed")
            since = time.monotonic() - self._marked_at
            if since >= IDLE_MARK_SECONDS or (since >= MARK_SECONDS and self.handled != self._marked_handled):
                try:
                    with self.app.app_context():
                        self.write_mark()
                except Exception:  # a mark not written only costs the catch-up a longer read
                    log.exception("journeys inbox: the mark was not written")
            busy = self.handled - handled >= BUSY_ITEMS
            pause = max(BUSY_GATHER_SECONDS if busy else GATHER_SECONDS, time.monotonic() - last)
            if not self.items:
                self.idle.set()

    def drain(self, limit: int | None = None) -> int:
        """Handle everything queued, or the first ``limit`` items (an application context must be active)."""
        from ..db import db
        from ..models import utcnow
        from .triggers import on_events, on_segment_changes

        began = utcnow()  # before the items are taken: whatever was queued by now is in this drain, unless it is full
        batch = []
        while self.items and (limit is None or len(batch) < limit):
            batch.append(self.items.popleft())
        whole = not self.items  # nothing left: everything queued before ``began`` is in this batch
        if not batch:
            self._vouch(began)
            return 0
        events: dict[int, list] = {}
        changes: dict[int, list] = {}
        for kind, site_id, payload in batch:
            (events if kind == "event" else changes).setdefault(site_id, []).append(payload)
        entered = 0
        for site_id, items in events.items():
            try:
                entered += on_events(site_id, items, remember=True)
            except Exception:
                self.failed = True
                db.session.rollback()
                log.exception("journeys: events of site %s were not handled now; the catch-up will", site_id)
        for site_id, items in changes.items():
            try:
                entered += on_segment_changes(site_id, items)
            except Exception:
                db.session.rollback()
                log.exception("journeys: segment changes of site %s were not handled now; the catch-up will", site_id)
        db.session.remove()
        self.handled += len(batch)
        if whole:
            self._vouch(began)
        if entered:
            wake_runner(self.app)
        return entered

    def _vouch(self, began: datetime) -> None:
        """Everything queued before ``began`` is handled: the events stored up to the margin before it are."""
        from datetime import timedelta

        if not self.failed:
            self.safe = began - timedelta(seconds=MARK_MARGIN_SECONDS)

    def write_mark(self) -> None:
        """Note in the database up to when this process's events are handled (an application context
        must be active; on SQLite it takes the writer turn). Nothing once a failure was seen."""
        from sqlalchemy import insert, update

        from ..db import db, writer_turn
        from ..models import utcnow
        from ..profiles import storer_token
        from .models import JourneyInboxMark

        self._marked_at, self._marked_handled = time.monotonic(), self.handled
        safe = self.safe
        if self.failed or safe is None or safe == self._marked:
            return
        token, marks = storer_token(), JourneyInboxMark.__table__
        with writer_turn("journeys"):
            try:
                if not db.session.execute(update(marks).where(marks.c.token == token).values(handled_before=safe, updated_at=utcnow())).rowcount:
                    db.session.execute(insert(marks).values(token=token, handled_before=safe, updated_at=utcnow()))
                db.session.commit()
            except Exception:
                db.session.rollback()
                raise
            finally:
                db.session.remove()
        self._marked = safe

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was handled (tests, benchmarks)."""
        return self.idle.wait(timeout)


def inbox(app: Flask | None = None) -> Inbox:
    app = app or current_app._get_current_object()
    found = app.extensions.get("personalize.journeys.inbox")
    if found is None:
        found = app.extensions.setdefault("personalize.journeys.inbox", Inbox(app))
    return found


def wake_runner(app: Flask) -> None:
    clock = app.extensions.get("personalize.journeys.clock")
    if clock is not None:
        clock.wake()


def _queue(kind: str, site_id: int, payload, app: Flask | None = None) -> None:
    app = app or current_app._get_current_object()
    if app.config.get("JOURNEY_INBOX") == "inline":
        from .triggers import on_events, on_segment_changes

        try:
            if kind == "event":
                on_events(site_id, [payload], remember=True)
            else:
                on_segment_changes(site_id, [payload])
        except Exception:
            from ..db import db

            db.session.rollback()
            log.exception("journeys: a %s of site %s was not handled now; the catch-up will", kind, site_id)
        return
    inbox(app).put(kind, site_id, payload)


@hookimpl
def event_received(site_id, event):
    # once per stored event, in the request that stored it: the application looked up once
    app = current_app._get_current_object()
    try:
        if event.type in live_journeys(site_id, app).heard:
            _queue("event", site_id, event, app)
    except Exception:
        inbox(app).failed = True  # this event may be missed: the catch-up must read what this process stores
        raise


@hookimpl
def segment_membership_changed(site_id, changes):
    live = live_journeys(site_id)
    if not live.by_segment:
        return
    for change in changes:
        if change.segment in live.by_segment:
            at = change.occurred_at if isinstance(change.occurred_at, datetime) else None
            if at is None:
                from ..models import utcnow

                at = utcnow()
            _queue("segment", site_id, (change.profile_id, change.segment, change.added, at))
