"""Jobs on real Celery worker processes through RabbitMQ: one code path, at-least-once, effects once."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select

from personalize import jobs
from personalize.db import db
from personalize.models import Event

from .support import personalize_command, process_env, stop, wait_for

# A job with a visible effect, loaded by the workers as a plugin file. Its effect is an
# event row with a fixed id (insert ... on conflict do nothing): a second run adds nothing.
# On its first attempt it can be told to wait (so a test can kill the worker mid-job).
JOB_PLUGIN = '''
import os
import time
from pathlib import Path

from personalize import jobs
from personalize.db import db, insert_ignoring_conflicts
from personalize.models import Event, utcnow


def mark(site_id, marker, folder, hold=False):
    attempts = Path(folder) / (marker + ".attempts")
    with attempts.open("a") as f:
        f.write(f"{os.getpid()}\\n")
    insert_ignoring_conflicts(Event, [{
        "site_id": site_id, "event_id": marker, "type": "job_effect", "visitor": "job",
        "properties": {}, "occurred_at": utcnow(),
    }], ["site_id", "event_id"])
    db.session.commit()
    if hold and len(attempts.read_text().split()) == 1:
        (Path(folder) / (marker + ".holding")).write_text(str(os.getpid()))
        time.sleep(60)


jobs.register("test_mark", mark)
'''


@pytest.fixture
def mark_job():
    """``test_mark`` registered here too: web processes and workers run the same code and plugins."""
    namespace: dict = {}
    exec(textwrap.dedent(JOB_PLUGIN), namespace)
    yield
    jobs.REGISTRY.pop("test_mark", None)


@pytest.fixture
def worker_setup(app, site, broker_url, tmp_path, mark_job):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "jobmark.py").write_text(textwrap.dedent(JOB_PLUGIN))
    queue = "ptest-" + secrets.token_hex(4)  # a queue of this test's own on the shared broker
    env = process_env(app, BROKER_URL=broker_url, QUEUE_NAME=queue, PLUGINS_DIR=str(plugins))
    app.config.update(BROKER_URL=broker_url, QUEUE_NAME=queue)
    started: list[subprocess.Popen] = []

    def start_worker(name: str, concurrency: int = 1) -> subprocess.Popen:
        log = tmp_path / f"{name}.log"
        proc = subprocess.Popen(
            personalize_command("worker", "--concurrency", str(concurrency)), env=env,
            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        started.append(proc)
        wait_for(lambda: "ready." in log.read_text(), 60, f"worker {name} to start", proc, log)
        return proc

    yield start_worker
    for proc in started:
        stop(proc)
    from kombu import Connection

    with Connection(broker_url) as connection:  # leave the shared broker as we found it
        channel = connection.default_channel
        channel.queue_delete(queue)
        channel.exchange_delete(queue)
    runner = app.extensions.pop("personalize.jobs", None)
    if runner is not None:
        runner.shutdown()


def effect_rows(app, marker: str) -> int:
    with app.app_context():
        db.session.remove()
        return db.session.scalar(select(func.count()).select_from(Event).where(Event.event_id == marker))


def attempts(tmp_path: Path, marker: str) -> list[str]:
    path = tmp_path / f"{marker}.attempts"
    return path.read_text().split() if path.exists() else []


def test_a_submitted_job_runs_on_a_worker_process(app, site, worker_setup, tmp_path):
    worker = worker_setup("w1")
    with app.app_context():
        future = jobs.submit("test_mark", site_id=site.id, marker="job-1", folder=str(tmp_path))
    assert future.result(timeout=10)  # the broker's message id: queued, not run here
    wait_for(lambda: effect_rows(app, "job-1") == 1, 30, "the job's effect")
    assert attempts(tmp_path, "job-1") == [str(worker.pid)]


def test_a_worker_killed_mid_job_the_job_is_retried_and_its_effect_happens_once(app, site, worker_setup, tmp_path):
    first = worker_setup("w1")
    with app.app_context():
        jobs.submit("test_mark", site_id=site.id, marker="job-2", folder=str(tmp_path), hold=True)
    holding = tmp_path / "job-2.holding"
    wait_for(holding.exists, 30, "the job to start")
    assert effect_rows(app, "job-2") == 1  # it did its work, but has not finished: not acknowledged
    os.killpg(first.pid, signal.SIGKILL)  # the machine dies
    first.wait(timeout=10)

    second = worker_setup("w2")
    wait_for(lambda: len(attempts(tmp_path, "job-2")) == 2, 60, "the retried job")
    assert attempts(tmp_path, "job-2") == [str(first.pid), str(second.pid)]
    assert effect_rows(app, "job-2") == 1


def test_a_pool_process_killed_mid_job_the_job_goes_back_to_the_queue(app, site, worker_setup, tmp_path):
    worker_setup("w1", concurrency=2)  # prefork: the job runs in a child of the worker
    with app.app_context():
        jobs.submit("test_mark", site_id=site.id, marker="job-4", folder=str(tmp_path), hold=True)
    holding = tmp_path / "job-4.holding"
    wait_for(holding.exists, 30, "the job to start")
    child = int(holding.read_text())
    os.kill(child, signal.SIGKILL)  # the pool process dies; the worker itself lives on
    wait_for(lambda: len(attempts(tmp_path, "job-4")) == 2, 60, "the retried job")
    first, second = attempts(tmp_path, "job-4")
    assert first == str(child) and second != str(child)
    assert effect_rows(app, "job-4") == 1


def test_without_a_broker_the_same_job_runs_in_process(app, site, tmp_path, mark_job):
    with app.app_context():
        jobs.submit("test_mark", site_id=site.id, marker="job-3", folder=str(tmp_path)).result(timeout=30)
        jobs.submit("test_mark", site_id=site.id, marker="job-3", folder=str(tmp_path)).result(timeout=30)
    app.extensions.pop("personalize.jobs").shutdown()
    assert len(attempts(tmp_path, "job-3")) == 2  # run twice (a redelivery), effect once
    assert effect_rows(app, "job-3") == 1


def test_readiness_reports_the_broker(app, client, broker_url):
    app.config["BROKER_URL"] = broker_url
    assert client.get("/api/v1/ready").json["broker"]["state"] == "ok"
    app.config["BROKER_URL"] = "amqp://guest:guest@127.0.0.1:1//"
    body = client.get("/api/v1/ready").json
    assert body["broker"]["state"] == "degraded" and body["status"] == "degraded"
