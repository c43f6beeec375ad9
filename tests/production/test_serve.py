"""``personalize serve``: gunicorn with two worker processes serving, and both taking up a new model."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from .support import free_port, personalize_command, process_env, stop, wait_for


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except OSError:
        return None, None


@pytest.mark.parametrize("announce", ["poll", "redis"])
def test_two_workers_serve_and_both_take_up_a_new_model(app, trained, tmp_path, announce, request):
    settings = {"MODEL_CHECK_SECONDS": "0.5"}
    if announce == "redis":
        # a model check an hour apart: only the announcement can bring the new model in time
        settings = {"MODEL_CHECK_SECONDS": "3600", "REDIS_URL": request.getfixturevalue("redis_url")}
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        personalize_command("serve", "--port", str(port), "--workers", "2", "--threads", "2"),
        env=process_env(app, **settings), stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: get(f"{base}/ready")[0] == 200, 60, "the server", proc, log)

        def versions_by_process() -> dict[int, str]:
            seen: dict[int, str] = {}
            for _ in range(40):  # connections are new each time, so both workers answer
                status, body = get(f"{base}/ready")
                if status == 200:
                    seen[body["process"]] = body["models"]["detail"]
            return seen

        before = wait_for(lambda: (v := versions_by_process()) and len(v) == 2 and v, 30, "two worker processes", proc, log)
        status, body = get(f"{base}/recommendations?key={trained.public_key}&visitor=runner-0")
        assert status == 200 and body["strategy"] == "personal" and body["items"]

        from personalize.cache import SharedCache
        from personalize.recommend.service import train_site

        if announce == "redis":  # this process trains, as `personalize train` would, with the same REDIS_URL
            app.extensions["personalize.cache"] = SharedCache(settings["REDIS_URL"])
        with app.app_context():
            version = train_site(trained.id)["version"]
        wanted = f"site {trained.id}: version {version}"

        def all_new():
            seen = versions_by_process()
            return len(seen) == 2 and all(wanted in detail for detail in seen.values()) and seen

        after = wait_for(all_new, 30, f"both workers on model {version}", proc, log)
        assert set(after) == set(before)  # the same processes, no restart
    finally:
        stop(proc)


def test_one_web_process_per_instance_runs_the_scheduler(app, tmp_path):
    import threading

    from personalize.app import create_app
    from personalize.serve import _scheduler_when_locked
    from personalize.testing import app_config

    other = create_app(app_config(app.instance_path, app.config["DATABASE_URL"], AUTO_MIGRATE=False))
    first = threading.Thread(target=_scheduler_when_locked, args=(app, 0.05), daemon=True)
    first.start()
    first.join(timeout=10)
    assert "personalize.scheduler" in app.extensions  # it took the lock and started the scheduler
    second = threading.Thread(target=_scheduler_when_locked, args=(other, 0.05), daemon=True)
    second.start()
    second.join(timeout=0.5)
    assert second.is_alive() and "personalize.scheduler" not in other.extensions  # waiting its turn
    app.extensions["personalize.scheduler"].stop()
    app.extensions.pop("personalize.scheduler_lock").close()  # the first process ends: its lock goes
    second.join(timeout=10)
    assert "personalize.scheduler" in other.extensions
    other.extensions["personalize.scheduler"].stop()
    other.extensions.pop("personalize.scheduler_lock").close()
    for application in (app, other):
        runner = application.extensions.pop("personalize.jobs", None)
        if runner is not None:
            runner.wait(timeout=10)
            runner.shutdown()
    from personalize.db import db

    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def test_serve_writes_one_json_object_a_line_gunicorn_included_with_request_ids_and_no_keys(app, trained, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    proc = subprocess.Popen(
        personalize_command("serve", "--port", str(port), "--workers", "2", "--threads", "2"),
        env=process_env(app, LOG_FORMAT="json", LOG_LEVEL="DEBUG", ACCESS_LOG="true"), stdout=out.open("w"), stderr=err.open("w"),
    )
    try:
        wait_for(lambda: get(f"{base}/api/v1/health")[0] == 200, 60, "the server", proc, err)
        asked = urllib.request.Request(f"{base}/api/v1/recommendations?key={trained.public_key}&visitor=runner-0",
                                       headers={"X-Request-ID": "edge-4f1c"})
        with urllib.request.urlopen(asked, timeout=5) as response:
            assert response.headers["X-Request-ID"] == "edge-4f1c"
        secret = urllib.request.Request(f"{base}/api/v1/site", headers={"Authorization": f"Bearer {trained.secret_key}"})
        with urllib.request.urlopen(secret, timeout=5) as response:
            made = response.headers["X-Request-ID"]
        wait_for(lambda: made in err.read_text(), 10, "the access log line", proc, err)
    finally:
        stop(proc)
    text = err.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line one JSON object
    messages = {(line["logger"], line["message"].split(" with pid")[0]) for line in lines}
    assert ("gunicorn.error", "Booting worker") in messages, "gunicorn's own lines share the format"
    [access] = [line for line in lines if line["request_id"] == "edge-4f1c" and line["logger"] == "personalize.access"]
    assert (access["route"], access["status"], access["path"]) == ("/api/v1/recommendations", 200, "/api/v1/recommendations")
    assert any(line["request_id"] == made and line.get("route") == "/api/v1/site" for line in lines)
    assert trained.public_key not in text and trained.secret_key not in text
