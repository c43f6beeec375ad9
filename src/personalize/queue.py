"""Jobs on Celery workers, when the ``BROKER_URL`` setting names a broker.

The queue carries only a job's registered name and its JSON keyword arguments; a
worker (``personalize worker``, :func:`personalize.jobs.run_worker`) looks the name up
in the job registry and calls the same function the in-process runner would, inside an
application context. So there is one code path for jobs, and a job is written once.
This module is the transport only: it knows no job.

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
    """What :func:`personalize.jobs.runner` returns when a broker is configured: submit sends.

    ``known(name)`` raises for a job name no worker would know (the job registry, which sits
    above this transport and hands its check down)."""

    def __init__(self, app: Flask, known: Any = None):
        self.app = app
        self.known = known
        self.queue = app.config.get("QUEUE_NAME") or "personalize"
        self.celery = make_celery(app.config["BROKER_URL"], self.queue)

    def submit(self, name: str, **kwargs: Any) -> Future:
        """Send job ``name`` to the broker; the future holds the message id once the broker has it."""
        if self.known is not None:
            self.known(name)  # an unknown name fails here, in the caller, not later on a worker
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
