"""Background jobs: one registry of job functions, run in-process by default.

A job is a plain function of JSON-able keyword arguments, registered by name::

    from personalize import jobs
    future = jobs.submit("sync", site_id=1, connection="shopify", trigger="admin")

:func:`submit` hands it to the application's :class:`JobRunner` (a small thread
pool, each job inside an application context) and returns at once; :func:`run`
runs it in the caller's thread (what ``personalize sync`` does, with progress).
Both call the same function, so moving jobs onto a distributed queue later means
giving that queue this registry, nothing else.

:class:`Scheduler` is the in-process clock that ``personalize serve`` starts: every
``tick`` seconds it submits the syncs that are due (each connection's
``schedule_minutes``), the processing of received webhooks, the push of segment
changes to connections that push them, the ``train`` and ``scores`` jobs of every site whose
model is older than ``MODEL_REFRESH_HOURS`` and has seen new behaviour since, once an hour the ``retention`` job
(:mod:`personalize.retention`) when a retention setting is on, and every
``SEGMENT_RELATIVE_MINUTES`` the rebuild of segments whose rules use relative dates.
Beside it runs the journeys' clock (:mod:`personalize.journeys.clock`), which runs due
journey steps as soon as they are due.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from flask import Flask, current_app

from . import metrics

log = logging.getLogger(__name__)

REGISTRY: dict[str, Callable[..., Any]] = {}

JOBS = metrics.counter("personalize_jobs_total", "Jobs finished, in-process or on a worker, by job and outcome (succeeded, failed).",
                       ["job", "outcome"])
JOBS_WAITING = metrics.gauge("personalize_jobs_waiting", "Jobs waiting for a thread of a web process's pool (without a broker; "
                             "with one, see personalize_queue_messages).", ["job"])


def register(name: str, fn: Callable[..., Any]) -> None:
    """Make ``fn`` runnable as job ``name`` (a later registration under the same name wins)."""
    REGISTRY[name] = fn


_builtins_loaded = False


def _builtin_jobs() -> None:
    """Register the core jobs once; a job registered earlier under the same name keeps its place."""
    global _builtins_loaded
    from . import retention
    from .journeys import jobs as journeys
    from .segments import bulk
    from .sync import tasks

    for name, fn in (
        ("retention", retention.prune),
        ("segment_rebuild", bulk.rebuild_job),
        ("segments_relative", bulk.rebuild_drifting),
        ("sync", tasks.sync_connection),
        ("push", tasks.push_segment_changes),
        ("webhooks", tasks.process_webhooks),
        ("push_segments", tasks.push_segment_outbox),
        ("train", train_job),
        ("scores", scores_job),
        ("journeys_run", journeys.run_steps),
        ("journeys_triggers", journeys.run_triggers),
    ):
        REGISTRY.setdefault(name, fn)
    _builtins_loaded = True


def train_job(site_id: int) -> dict[str, Any]:
    """The ``train`` job: fit a new model for one site and make it the one served."""
    from .recommend.service import train_site

    return train_site(site_id)


def scores_job(site_id: int) -> dict[str, Any]:
    """The ``scores`` job: recompute RFM, value/attrition/potential, clusters and purchase propensity of one site,
    then rebuild the segments that use them."""
    from .segments.scores import compute_scores

    return compute_scores(site_id)


def stale_models(max_age_hours: float, now=None) -> list[int]:
    """Sites to train again: their newest model is older than ``max_age_hours`` and they have
    interactions newer than it, or they have no model yet and have interactions at all."""
    from sqlalchemy import exists, func, select

    from .db import db
    from .models import Interaction, ModelVersion, Site, utcnow

    now = now or utcnow()
    newest = (
        select(ModelVersion.site_id, func.max(ModelVersion.created_at).label("at"))
        .where(ModelVersion.active.is_(True))
        .group_by(ModelVersion.site_id)
        .subquery()
    )
    rows = db.session.execute(select(Site.id, newest.c.at).outerjoin(newest, newest.c.site_id == Site.id).order_by(Site.id)).all()
    due = []
    for site_id, at in rows:
        if at is not None and (now - at).total_seconds() < max_age_hours * 3600:
            continue
        newer = exists().where(Interaction.site_id == site_id)
        if at is not None:
            newer = newer.where(Interaction.occurred_at > at)
        if db.session.scalar(select(newer)):
            due.append(site_id)
    return due


def job_function(name: str) -> Callable[..., Any]:
    if not _builtins_loaded:
        _builtin_jobs()
    if name not in REGISTRY:
        raise KeyError(f"no job {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def run(name: str, **kwargs: Any) -> Any:
    """Run a job now, in this thread (an application context must be active)."""
    return job_function(name)(**kwargs)


class JobRunner:
    """A thread pool that runs jobs inside the application's context."""

    def __init__(self, app: Flask, workers: int = 2):
        self.app = app
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="personalize-job")
        self._futures: set[Future] = set()
        self._lock = threading.Lock()

    def submit(self, name: str, **kwargs: Any) -> Future:
        from .logs import new_request_id

        fn = job_function(name)
        job_id = new_request_id()  # the job's lines carry it as their request id
        log.debug("job %s queued as %s", name, job_id)
        JOBS_WAITING.inc(job=name)
        future = self.pool.submit(self._call, name, fn, kwargs, job_id)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _call(self, name: str, fn: Callable[..., Any], kwargs: dict[str, Any], job_id: str | None = None) -> Any:
        from .logs import REQUEST_ID

        JOBS_WAITING.dec(job=name)
        token = REQUEST_ID.set(job_id)
        try:
            with self.app.app_context():
                try:
                    result = fn(**kwargs)
                except Exception:
                    JOBS.add((name, "failed"))
                    log.exception("job %s failed", name)
                    raise
                JOBS.add((name, "succeeded"))
                return result
        finally:
            REQUEST_ID.reset(token)

    def _forget(self, future: Future) -> None:
        with self._lock:
            self._futures.discard(future)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until every submitted job has finished (tests and shutdown)."""
        from concurrent.futures import wait

        with self._lock:
            pending = list(self._futures)
        wait(pending, timeout=timeout)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


def runner(app: Flask | None = None) -> JobRunner:
    """The application's job runner, created on first use: in-process, or Celery when ``BROKER_URL`` is set."""
    app = app or current_app._get_current_object()
    existing = app.extensions.get("personalize.jobs")
    if existing is None:
        if app.config.get("BROKER_URL"):  # production: the same jobs, run by Celery workers
            from .queue import CeleryRunner

            existing = CeleryRunner(app, known=job_function)
        else:
            existing = JobRunner(app)
        app.extensions["personalize.jobs"] = existing
    return existing


def submitter(app: Flask) -> Callable[..., Future]:
    """``submit(name, **kwargs)`` bound to ``app``'s runner: what lower layers are handed
    (the journeys' clock) so they queue jobs without importing this module."""
    return lambda name, **kwargs: runner(app).submit(name, **kwargs)


def submit(name: str, **kwargs: Any) -> Future:
    """Queue job ``name`` with keyword arguments; returns at once with a future of its result."""
    return runner().submit(name, **kwargs)


class Scheduler(threading.Thread):
    """Submits due syncs and webhook processing every ``tick`` seconds until :meth:`stop`."""

    def __init__(self, app: Flask, tick: float = 30.0):
        super().__init__(name="personalize-scheduler", daemon=True)
        self.app, self.tick = app, tick
        self._stop_event = threading.Event()
        self._inflight: dict[tuple[int, str], Future] = {}
        self._retention_due = 0.0  # monotonic time of the next retention run
        self._relative_due = 0.0  # monotonic time of the next rebuild of segments with relative dates
        self._models_due = 0.0  # monotonic time of the next look for stale models

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.run_once()
            except Exception:  # the clock must keep ticking
                log.exception("scheduler tick failed")
            self._stop_event.wait(self.tick)

    def run_once(self, clock: Callable[[], float] = time.monotonic) -> list[Future]:
        """Submit what is due now; return the futures (tests call this directly, with their own ``clock``)."""
        from . import retention
        from .sync.tasks import due_connections, pushing_connections

        jobs = runner(self.app)
        submitted = []
        with self.app.app_context():
            due = due_connections()
            pushers = pushing_connections()
        for site_id, name in due:
            key = (site_id, name)
            if key in self._inflight and not self._inflight[key].done():
                continue
            self._inflight[key] = jobs.submit("sync", site_id=site_id, connection=name, trigger="schedule")
            submitted.append(self._inflight[key])
        submitted.append(jobs.submit("webhooks"))
        for connection_id in pushers:  # catch up on segment changes a push missed
            key = (-connection_id, "push")
            if key not in self._inflight or self._inflight[key].done():
                self._inflight[key] = jobs.submit("push_segments", connection_id=connection_id)
                submitted.append(self._inflight[key])
        if retention.enabled(self.app.config) and clock() >= self._retention_due:
            self._retention_due = clock() + retention.EVERY_SECONDS
            submitted.append(jobs.submit("retention"))
        minutes = float(self.app.config.get("SEGMENT_RELATIVE_MINUTES") or 0)
        if minutes > 0 and clock() >= self._relative_due:  # members of "within N days" drift out without events
            key = (0, "segments_relative")
            if key not in self._inflight or self._inflight[key].done():
                self._relative_due = clock() + minutes * 60
                self._inflight[key] = jobs.submit("segments_relative")
                submitted.append(self._inflight[key])
        hours = float(self.app.config.get("MODEL_REFRESH_HOURS") or 0)
        if hours > 0 and clock() >= self._models_due:  # new behaviour reaches the models, then the scores
            self._models_due = clock() + min(hours * 3600, 600)
            with self.app.app_context():
                stale = stale_models(hours)
            for site_id in stale:
                key = (site_id, "train")
                if key not in self._inflight or self._inflight[key].done():
                    self._inflight[key] = jobs.submit("train", site_id=site_id)
                    submitted.append(self._inflight[key])
                    scores = (site_id, "scores")
                    if scores not in self._inflight or self._inflight[scores].done():
                        self._inflight[scores] = jobs.submit("scores", site_id=site_id)
                        submitted.append(self._inflight[scores])
        return submitted

    def stop(self) -> None:
        self._stop_event.set()


def start_scheduler(app: Flask, tick: float = 30.0) -> Scheduler | None:
    """Start the in-process scheduler unless the ``SYNC_SCHEDULER`` setting turns it off."""
    if not app.config.get("SYNC_SCHEDULER", True):
        return None
    scheduler = Scheduler(app, tick)
    scheduler.start()
    app.extensions["personalize.scheduler"] = scheduler
    from .journeys.clock import start_clock

    start_clock(app, submit=submitter(app))  # due journey steps run within a second, not at the next tick
    return scheduler


# ---------------------------------------------------------------- Celery workers (``personalize worker``)


def worker_celery(app: Flask):
    """The Celery application a worker runs, with the task bound to ``app``."""
    from celery.signals import worker_process_init

    from .db import db
    from .monitoring import start_publishing
    from .queue import TASK_NAME, make_celery

    celery = make_celery(app.config["BROKER_URL"], app.config.get("QUEUE_NAME") or "personalize")

    @worker_process_init.connect(weak=False)
    def _own_connections(**_kwargs):
        # a forked pool process must not share the parent's database connections
        with app.app_context():
            db.engine.dispose(close=False)
        start_publishing(app)  # and publishes the figures of the jobs it runs (METRICS)

    @celery.task(name=TASK_NAME, bind=True)
    def run_job(task, name: str, job_kwargs: dict[str, Any] | None = None):
        from .logs import REQUEST_ID

        started = time.perf_counter()
        token = REQUEST_ID.set(task.request.id)  # the job's lines carry its message id as their request id
        try:
            with app.app_context():
                try:
                    run(name, **(job_kwargs or {}))
                except Exception:
                    JOBS.add((name, "failed"))
                    db.session.rollback()
                    log.exception("job %s failed (message %s)", name, task.request.id)
                    raise
                finally:
                    db.session.remove()
            JOBS.add((name, "succeeded"))
            log.info("job %s done in %.1f s", name, time.perf_counter() - started)
        finally:
            REQUEST_ID.reset(token)

    return celery


def run_worker(app: Flask, concurrency: int, beat: bool, loglevel: str | None = None) -> None:
    """Run a Celery worker for ``app`` until stopped (``personalize worker``).

    Logging is the process's own (:func:`personalize.logs.configure`, called by the command):
    Celery is told so through its ``setup_logging`` signal and adds no handler of its own.
    """
    from celery.signals import setup_logging

    @setup_logging.connect(weak=False)
    def _logging_is_configured(**_kwargs):
        pass  # a receiver makes Celery leave the root logger's handlers, our format, alone

    loglevel = loglevel or str(app.config.get("LOG_LEVEL") or "INFO").upper()
    celery = worker_celery(app)
    from .monitoring import start_publishing

    start_publishing(app)  # the worker process itself (it runs the jobs with --concurrency 1, and the scheduler)
    if beat:
        # the same scheduler `personalize serve` runs without a broker; its jobs go to the queue
        start_scheduler(app)
    argv = ["worker", f"--concurrency={max(1, concurrency)}", f"--loglevel={loglevel}", f"--queues={app.config.get('QUEUE_NAME') or 'personalize'}", "--without-gossip", "--without-mingle"]
    if concurrency <= 1:
        argv.append("--pool=solo")  # the job runs in the worker process itself
    celery.worker_main(argv)
