"""Fixtures for production mode: the real Redis and RabbitMQ on 127.0.0.1, and server processes.

A test that needs a service it cannot reach is skipped with the reason, unless
PERSONALIZE_REQUIRE_SERVICES=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import secrets

import pytest

from personalize.cache import SharedCache

from .support import REDIS_URL, require


@pytest.fixture
def redis_url() -> str:
    require("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def redis_app(app, redis_url):
    """The test app with its cache on the real Redis, under a key prefix of its own."""
    cache = SharedCache(redis_url, list_seconds=30, prefix=f"ptest-{secrets.token_hex(4)}:")
    cache.listen_for_models(app.extensions["personalize.models"].expire)
    app.extensions["personalize.cache"] = cache
    app.config["REDIS_URL"] = redis_url
    yield app
    cache.close()
