"""Jobs on Celery workers, when the ``BROKER_URL`` setting names a broker.

The queue carries only a job's registered name and its JSON keyword arguments; a
worker (``personalize worker``) looks the name up in :mod:`personalize.jobs` and
calls the same function the in-process runner would, inside an application
context. So there is one code path for jobs, and a job is written once.

Delivery is at least once: a message is acknowledged only after its job returns
(``acks_late``), and a worker that dies mid-job hands it back to the broker
(``reject_on_worker_lost``) for another worker. A job may therefore run again after
a crash, and every registered job is written so that a second run changes nothing
the first completed: syncs resume from their checkpoint and upsert, pushes work
from an outbox of undelivered changes, webhook processing marks inbox rows done,
events and orders insert with ``ON CONFLICT DO NOTHING`` on their ids, training
writes a new version of the same model.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)

TASK_NAME = "personalize.run_job"


def make_celery(broker_url: str, queue: str = "personalize"):
    """The Celery application: one task that runs any registered job by name."""
    from celery import Celery

    celery = Celery("personalize", broker=broker_url, set_as_current=False)
    celery.conf.update(
        task_acks_late=True,  # acknowledge after the job, not before
        task_reject_on_worker_lost=True,  # a killed worker's job goes back to the queue
        worker_prefetch_multiplier=1,  # long jobs: a worker holds one message at a time
        task_default_queue=queue,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # callers read a job's effects from the database, not a result store
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_heartbeat=30,
        broker_connection_timeout=2,
        # a web request that queues a job must not hang on a dead broker: fail fast, the readiness check says why
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
    )
    return celery


class CeleryRunner:
    """What :func:`personalize.jobs.runner` returns when a broker is configured: submit sends."""

    def __init__(self, app: Flask):
        self.app = app
        self.queue = app.config.get("QUEUE_NAME") or "personalize"
        self.celery = make_celery(app.config["BROKER_URL"], self.queue)

    def submit(self, name: str, **kwargs: Any) -> Future:
        """Send job ``name`` to the broker; the future holds the message id once the broker has it."""
        from .jobs import job_function

        job_function(name)  # an unknown name fails here, in the caller, not later on a worker
        future: Future = Future()
        try:
            result = self.celery.send_task(TASK_NAME, args=[name], kwargs={"job_kwargs": kwargs}, queue=self.queue)
        except Exception as exc:
            log.error("job %s could not be queued: %s", name, exc)
            future.set_exception(exc)
            raise
        log.debug("job %s queued as %s", name, result.id)
        future.set_result(result.id)
        return future

    def wait(self, timeout: float | None = None) -> None:
        """Jobs finish on the workers; there is nothing to wait for here."""

    def shutdown(self) -> None:
        self.celery.close()


def worker_celery(app: Flask):
    """The Celery application a worker runs, with the task bound to ``app``."""
    from celery.signals import worker_process_init

    from .db import db
    from .jobs import JOBS, run
    from .monitoring import start_publishing

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
        from .jobs import start_scheduler

        # the same scheduler `personalize serve` runs without a broker; its jobs go to the queue
        start_scheduler(app)
    argv = ["worker", f"--concurrency={max(1, concurrency)}", f"--loglevel={loglevel}", f"--queues={app.config.get('QUEUE_NAME') or 'personalize'}", "--without-gossip", "--without-mingle"]
    if concurrency <= 1:
        argv.append("--pool=solo")  # the job runs in the worker process itself
    celery.worker_main(argv)


_status_cache: dict[str, tuple[float, dict[str, str]]] = {}


def broker_status(app: Flask, max_age: float = 5.0) -> dict[str, str]:
    """``{"state", "detail"}`` of the broker: ``off`` without one, else a (briefly cached) connection check."""
    url = app.config.get("BROKER_URL")
    if not url:
        return {"state": "off", "detail": "no BROKER_URL: jobs run in the web process"}
    now = time.monotonic()
    cached = _status_cache.get(url)
    if cached and now - cached[0] < max_age:
        return cached[1]
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=1.0) as connection:
            connection.ensure_connection(max_retries=1, timeout=1.0)
        status = {"state": "ok", "detail": "connected"}
    except Exception as exc:  # the check reports; it must not fail itself
        status = {"state": "degraded", "detail": f"unreachable, jobs cannot be queued: {type(exc).__name__}"}
    _status_cache[url] = (now, status)
    return status
