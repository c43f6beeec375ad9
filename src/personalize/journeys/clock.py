"""The journeys' clock: runs due steps as soon as they are due, and the triggers' catch-up.

Started with the scheduler (``personalize serve``: in the one web process that holds the
scheduler lock; ``personalize worker --beat`` with a broker). Without a broker it runs
the ``journeys_run`` job itself, batch after batch while steps are due, then sleeps
until the next step is due, :data:`POLL_SECONDS` at most, or until it is woken (a
process entered someone). With a broker it sends ``journeys_run`` jobs to the Celery
workers instead, at most ``JOURNEY_WORKERS`` at once; PostgreSQL's ``SKIP LOCKED``
lets them claim disjoint batches. Every ``JOURNEY_TRIGGER_SECONDS`` it runs the
``journeys_triggers`` job (catch-up of events and segment changes, date triggers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from flask import Flask
from sqlalchemy import func, select

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
IDLE_SECONDS = 5.0  # how often a server without active journeys looks again


class JourneyClock(threading.Thread):
    """``submit(name)`` queues a job and returns a future: the job runner's, handed down by
    the layer that starts the clock (:func:`personalize.jobs.start_scheduler`, the demo)."""

    def __init__(self, app: Flask, submit: Callable[[str], Future]):
        super().__init__(name="personalize-journeys-clock", daemon=True)
        self.app = app
        self.submit = submit
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._inflight: list[Future] = []
        self._triggers_due = 0.0
        self._triggers: Future | None = None

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                pause = self.tick()
            except Exception:  # the clock must keep ticking
                log.exception("journeys clock tick failed")
                pause = POLL_SECONDS * 4
            self._wake.wait(pause)
            self._wake.clear()

    def tick(self) -> float:
        """Run (or send) what is due; returns how long to sleep."""
        from ..db import db
        from ..models import utcnow
        from .jobs import run_steps
        from .models import Journey, JourneyStep

        with self.app.app_context():
            try:
                active = db.session.scalar(select(func.count()).select_from(Journey).where(Journey.status == "active"))
                if not active:
                    return IDLE_SECONDS
                every = float(self.app.config.get("JOURNEY_TRIGGER_SECONDS") or 30)
                if time.monotonic() >= self._triggers_due and (self._triggers is None or self._triggers.done()):
                    self._triggers_due = time.monotonic() + every
                    self._triggers = self.submit("journeys_triggers")
                broker = bool(self.app.config.get("BROKER_URL"))
                if broker:
                    self._send_runs()
                else:
                    while not self._stop_event.is_set():
                        summary = run_steps()  # the journeys_run job, in this thread
                        if not summary.get("claimed"):
                            break
                nxt = db.session.scalar(
                    select(func.min(JourneyStep.due_at)).where(JourneyStep.state == "due")
                    .where(JourneyStep.journey_id.in_(select(Journey.id).where(Journey.status == "active")))
                )
            finally:
                db.session.remove()
        if nxt is None:
            return POLL_SECONDS
        return max(0.01, min(POLL_SECONDS, (nxt - utcnow()).total_seconds()))

    def _send_runs(self) -> None:
        from ..db import db
        from ..models import utcnow
        from .models import JourneyStep

        self._inflight = [f for f in self._inflight if not f.done()]
        workers = max(1, int(self.app.config.get("JOURNEY_WORKERS") or 2))
        due = db.session.scalar(select(func.count()).select_from(
            select(JourneyStep.id).where(JourneyStep.state == "due", JourneyStep.due_at <= utcnow()).limit(workers * 500).subquery()
        )) or 0
        wanted = min(workers, (due + 499) // 500)
        for _ in range(max(0, wanted - len(self._inflight))):
            self._inflight.append(self.submit("journeys_run"))


def start_clock(app: Flask, submit: Callable[[str], Future]) -> JourneyClock:
    clock = JourneyClock(app, submit)
    clock.start()
    app.extensions["personalize.journeys.clock"] = clock
    return clock
