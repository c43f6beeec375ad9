"""The shared cache: Redis when ``REDIS_URL`` is set, this process's memory otherwise.

What it does: **new models**: after training, :meth:`announce_model` tells every
web process (Redis pub/sub) to look for the new model at once instead of at its
next ``MODEL_CHECK_SECONDS`` poll; without Redis the poll alone does it.

Recommendation lists are not kept here any more: each web process reuses the
rankings it computed (:class:`personalize.recommend.service.RankingCache`), keyed
by everything they were computed from and checked against the database on every
request, so nothing has to be announced for them. Lists that earlier versions
stored in Redis expire on their own; :meth:`forget_visitors` still drops them when
a profile is erased.

(Rate-limit counters use the same Redis through :mod:`personalize.limits`.)

Redis is an accelerator, never a dependency: when it cannot be reached, every call
falls back (no list, the poll) and the server keeps serving; the
readiness check reports the cache as degraded. After a failure Redis is left alone
for ``RETRY_SECONDS``, so an outage costs one timeout per process, not one per request.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, current_app

from . import hookimpl

log = logging.getLogger(__name__)

PREFIX = "personalize:"
RETRY_SECONDS = 5.0


class SharedCache:
    """A tiny cache API over Redis (``url``) or, with ``url=None``, over process memory."""

    def __init__(self, url: str | None = None, list_seconds: float = 30.0, prefix: str = PREFIX):
        self.url = url
        self.prefix = prefix
        self.list_seconds = float(list_seconds)
        self._client = None
        self._pid = None
        self._down_until = 0.0
        self._last_error = ""
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()

    # -- the connection -------------------------------------------------------------

    def _redis(self):
        """The client for this process, or ``None`` (no Redis configured, or resting after a failure)."""
        if not self.url or time.monotonic() < self._down_until:
            return None
        if self._client is None or self._pid != os.getpid():  # a forked worker opens its own sockets
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_connect_timeout=0.25, socket_timeout=0.5, health_check_interval=30
            )
            self._pid = os.getpid()
        return self._client

    def _failed(self, exc: Exception) -> None:
        if not self._last_error:
            log.warning("Redis at %s unavailable (%s); serving without it", self.url, exc)
        self._last_error = f"{type(exc).__name__}: {exc}"[:200]
        self._down_until = time.monotonic() + RETRY_SECONDS

    def _ok(self) -> None:
        if self._last_error:
            log.warning("Redis at %s is back", self.url)
            self._last_error = ""

    def _call(self, fn: Callable[[Any], Any], fallback: Any = None) -> Any:
        client = self._redis()
        if client is None:
            return fallback
        import redis

        try:
            value = fn(client)
        except redis.RedisError as exc:
            self._failed(exc)
            return fallback
        self._ok()
        return value

    def status(self) -> dict[str, str]:
        """``{"state": "ok" | "off" | "degraded", "detail": …}`` from a live ``PING``."""
        if not self.url:
            return {"state": "off", "detail": "no REDIS_URL: new models are found by polling"}
        self._down_until = 0.0  # the check itself always tries
        if self._call(lambda r: r.ping(), False):
            return {"state": "ok", "detail": "connected"}
        return {"state": "degraded", "detail": self._last_error or "unavailable"}

    # -- recommendation lists of earlier versions ----------------------------------------

    def _list_key(self, site_id: int, visitor: str) -> str:
        return f"{self.prefix}lists:{site_id}:{visitor}"

    def forget_visitors(self, site_id: int, visitors: Iterable[str]) -> None:
        """Drop lists an earlier version cached in Redis for these visitors (a profile was erased)."""
        keys = [self._list_key(site_id, v) for v in set(visitors) if v]
        if keys and self.url:
            self._call(lambda r: r.delete(*keys))

    # -- model versions ---------------------------------------------------------------

    def announce_model(self, site_id: int, version: int) -> None:
        """Tell every listening process that ``site_id`` has a new model."""
        self._call(lambda r: r.publish(self.prefix + "models", json.dumps({"site_id": site_id, "version": version})))

    def listen_for_models(self, on_new_model: Callable[[int], None]) -> None:
        """Call ``on_new_model(site_id)`` from a background thread on every announcement.

        Started once per process (after a fork too); survives Redis restarts.
        """
        if not self.url:
            return
        with self._lock:
            if self._listener is not None and self._listener.is_alive() and self._pid == os.getpid():
                return
            self._redis()  # binds the client to this process
            self._listener = threading.Thread(
                target=self._listen, args=(on_new_model,), name="personalize-model-listener", daemon=True
            )
            self._listener.start()

    def _listen(self, on_new_model: Callable[[int], None]) -> None:
        import redis

        while not self._closed.is_set():
            try:
                client = redis.Redis.from_url(self.url, socket_connect_timeout=1.0, health_check_interval=10)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.prefix + "models")
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        on_new_model(int(json.loads(message["data"])["site_id"]))
                pubsub.close()
                client.close()
            except (redis.RedisError, OSError, ValueError, KeyError) as exc:
                log.debug("model announcements paused: %s", exc)
                self._closed.wait(RETRY_SECONDS)

    def close(self) -> None:
        """Stop listening and drop the connection (tests; a server process just exits)."""
        self._closed.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        if self._client is not None:
            self._client.close()


def shared_cache(app: Flask | None = None) -> SharedCache:
    app = app or current_app
    return app.extensions["personalize.cache"]


class CachePlugin:
    """Announces a trained model to every web process; forgets an erased person's rankings and email block pictures."""

    @hookimpl
    def model_trained(self, site_id, summary):
        shared_cache().announce_model(site_id, int(summary["version"]))

    @hookimpl
    def profile_erased(self, site_id, profile_id, identities):
        rankings = current_app.extensions.get("personalize.rankings")
        if rankings is not None:
            rankings.forget_profile(profile_id)
        blocks = current_app.extensions.get("personalize.email_blocks")  # the email block's pictures of their list
        if blocks is not None:
            blocks.forget_profile(site_id, profile_id)


def init_app(app: Flask, registry) -> None:
    """Create the app's cache and register what keeps it in step with the data."""
    cache = SharedCache(app.config.get("REDIS_URL") or None, float(app.config.get("RECOMMENDATION_CACHE_SECONDS") or 0))
    app.extensions["personalize.cache"] = cache
    registry.pm.register(CachePlugin(), name="personalize.cache")
    registry.sources["personalize.cache"] = ("built-in", "")
    models = app.extensions["personalize.models"]
    cache.listen_for_models(models.expire)
