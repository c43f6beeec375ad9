"""``personalize serve``: the app under gunicorn, ``WORKERS`` processes of ``THREADS`` threads.

Every worker process builds its own app (its own database pool, model cache and
Redis connection: nothing is shared across a fork), so a load balancer may spread
requests over any number of them, on any number of machines. The master process
builds the app once first, so a configuration error or a pending migration shows
up before any worker starts.

The in-process scheduler (connector syncs, webhooks) must run once per
installation, not once per worker: the workers take turns at a file lock in the
instance folder and the holder runs it. With a broker configured the Celery
workers' scheduler does this instead (``personalize worker --beat``).
"""

from __future__ import annotations

import fcntl
import gc
import logging
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

log = logging.getLogger(__name__)

LOCK_FILE = "scheduler.lock"


class SameFormatLogger(GunicornLogger):
    """gunicorn's own lines ("Booting worker", "Worker exiting", errors) through the root logger's handler:
    the format, the request id and the redaction :func:`personalize.logs.configure` set up."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                if getattr(handler, "_gunicorn", False):
                    logger.removeHandler(handler)
            logger.propagate = True


def gunicorn_options(host: str, port: int, workers: int, threads: int, timeout: int = 60, loglevel: str = "info") -> dict[str, Any]:
    return {
        "bind": f"{host}:{port}",
        "workers": max(1, workers),
        "threads": max(1, threads),
        # gthread keeps connections alive (the widget reuses them); sync is enough for one thread
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": max(1, int(timeout)),  # WORKER_TIMEOUT: a silent worker is restarted
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": None,  # the application writes the access log (ACCESS_LOG), with the request id and route
        "errorlog": "-",
        "loglevel": loglevel.lower(),
        "logger_class": SameFormatLogger,
        "post_worker_init": _post_worker_init,
        # gunicorn 24+ opens a control socket in $HOME by default; several servers on one machine would share it
        "control_socket_disable": True,
    }


class Server(BaseApplication):
    """gunicorn with options from code and an app built per worker by ``create_app``."""

    def __init__(self, options: dict[str, Any], app_factory=None):
        self.options = options
        self.app_factory = app_factory
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # skip what an older gunicorn does not know
                self.cfg.set(key, value)

    def load(self) -> Flask:
        if self.app_factory is not None:
            return self.app_factory()
        from .app import create_app

        return create_app()


def _post_worker_init(worker) -> None:
    # The app, its plugins and libraries are built now and live as long as the process: about
    # 140,000 objects that Python's cycle collector would otherwise walk at each of its full
    # collections, every few seconds under load, stopping every thread of the worker for
    # 40-70 ms each time (measured: docs/deployment.md). Frozen, they are left out of them.
    gc.freeze()
    app = worker.wsgi
    if not isinstance(app, Flask):
        return
    from .monitoring import start_publishing

    start_publishing(app)  # this worker's figures reach /metrics whichever worker a scrape lands on (METRICS)
    if app.config.get("BROKER_URL"):
        return
    if app.config.get("SYNC_SCHEDULER", True):
        threading.Thread(target=_scheduler_when_locked, args=(app,), name="personalize-scheduler-lock", daemon=True).start()


def _scheduler_when_locked(app: Flask, retry_seconds: float = 30.0) -> None:
    """Wait for the instance's scheduler lock, then run the scheduler in this process."""
    import time

    from .jobs import start_scheduler

    path = Path(app.instance_path) / LOCK_FILE
    handle = path.open("a")  # kept open for the process's life: closing it would release the lock
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            time.sleep(retry_seconds)
            continue
        log.info("this worker runs the scheduler")
        app.extensions["personalize.scheduler_lock"] = handle
        start_scheduler(app)
        return


def serve(app: Flask, host: str, port: int, workers: int, threads: int) -> None:
    """Run the server until interrupted; ``app`` (built in this, the master process) is only checked."""
    from .db import db

    with app.app_context():
        db.engine.dispose()  # no connection of the master's may leak into a forked worker
    app.extensions["personalize.cache"].close()  # nor its Redis connection; workers open their own
    Server(gunicorn_options(host, port, workers, threads, int(app.config.get("WORKER_TIMEOUT") or 60),
                            str(app.config.get("LOG_LEVEL") or "INFO"))).run()
