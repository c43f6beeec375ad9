"""The shared cache on a real Redis, and the server without it (Redis down)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from personalize.cache import SharedCache

from .support import free_port, wait_for


def recs(client, site, visitor="runner-0", **params):
    response = client.get("/api/v1/recommendations", query_string={"key": site.public_key, "visitor": visitor, **params})
    assert response.status_code == 200, response.json
    return response.json


def test_a_retrained_model_is_announced_to_every_process(redis_app, trained):
    from personalize.recommend.service import model_cache, train_site

    with redis_app.app_context():
        models = model_cache()
        models.check_seconds = 3600  # without the announcement this process would not look again
        before = models.get(trained.id).version
        summary = train_site(trained.id)
        assert summary["version"] != before
        wait_for(lambda: models.get(trained.id).version == summary["version"], 10, "the announced model")


def test_redis_down_the_server_keeps_serving_and_says_so(app, client, trained):
    closed_port = free_port()
    app.extensions["personalize.cache"] = SharedCache(f"redis://127.0.0.1:{closed_port}/0", list_seconds=30)
    app.config["RATE_LIMIT_PER_IP"] = 100

    first = recs(client, trained)
    assert first["items"]
    event = {"id": "runner-0-down", "type": "product_viewed", "visitor": "runner-0", "product_id": "tea-pot"}
    assert client.post("/api/v1/events", json={"key": trained.public_key, "events": [event]}).status_code == 202
    assert client.get("/api/v1/health").status_code == 200

    ready = client.get("/api/v1/ready")
    assert ready.status_code == 200
    body = ready.json
    assert body["status"] == "degraded"
    assert body["redis"]["state"] == "degraded"
    assert body["database"]["state"] == "ok" and body["models"]["state"] == "ok"


def test_redis_restarted_the_server_notices(app, client, trained, tmp_path):
    """A private redis-server on a port of its own, stopped and started again (never the shared one)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    app.extensions["personalize.cache"] = cache = SharedCache(f"redis://127.0.0.1:{port}/0", list_seconds=30)

    def ready_state():
        return client.get("/api/v1/ready").json["redis"]["state"]

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: ready_state() == "ok", 10, "the private Redis")
        recs(client, trained)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert ready_state() == "degraded"
    assert recs(client, trained)["items"]  # from the database and this process's model

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: ready_state() == "ok", 10, "Redis back")
        assert recs(client, trained)["items"]
        with app.app_context():
            assert cache._redis().ping()  # the process uses Redis again (its client reconnected)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        cache.close()


def test_without_redis_nothing_is_cached_and_ready_says_off(client, trained):
    body = client.get("/api/v1/ready").json
    assert body["redis"]["state"] == "off" and body["broker"]["state"] == "off"
    assert body["status"] == "ok"
