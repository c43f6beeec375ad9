"""``/metrics`` across processes: gunicorn workers and Celery workers add up, through the instance
folder on one machine or through Redis, whichever process a scrape lands on."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from personalize import jobs, metrics

from .support import free_port, personalize_command, process_env, stop, wait_for
from .test_queue import JOB_PLUGIN, mark_job  # noqa: F401  (the job a worker runs, and its fixture)

TOKEN = "scrape-" + secrets.token_hex(16)


def scrape(base: str) -> dict[str, float]:
    request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) (\S+)$", text, re.M)}


def healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/api/v1/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def forget(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)


@pytest.mark.parametrize("store", ["instance folder", "redis"])
def test_every_gunicorn_workers_requests_are_in_every_scrape(app, tmp_path, store, request):
    queue = "ptest-" + secrets.token_hex(4)
    settings = {"METRICS": "token", "METRICS_TOKEN": TOKEN, "QUEUE_NAME": queue}
    if store == "redis":
        settings["REDIS_URL"] = request.getfixturevalue("redis_url")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(personalize_command("serve", "--port", str(port), "--workers", "2", "--threads", "2"),
                            env=process_env(app, **settings), stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: healthy(base), 60, "the server", proc, log)
        before = scrape(base)
        processes, sent = set(), 0

        def both_answered() -> bool:
            nonlocal sent
            for _ in range(10):  # a new connection each time: either worker answers
                with urllib.request.urlopen(f"{base}/api/v1/ready", timeout=5) as response:
                    processes.add(json.loads(response.read())["process"])
                sent += 1
            return len(processes) == 2

        wait_for(both_answered, 30, "answers from both workers", proc, log)
        series = 'personalize_http_requests_total{route="/api/v1/ready",method="GET",status="2xx"}'

        def counted():
            now = scrape(base)  # lands on either worker
            return now.get(series, 0) - before.get(series, 0) == sent and now["personalize_metrics_processes"] == 2 and now

        after = wait_for(counted, 30, "both workers' requests in a scrape", proc, log)
        assert after[series] - before.get(series, 0) == sent
    finally:
        stop(proc)
        if store == "redis":
            forget(settings["REDIS_URL"], f"personalize:metrics:{queue}:")


PROCESS = """
import sys, time
from personalize import metrics
c = metrics.counter("test_redis_shared_total", "Counted by several processes.")
g = metrics.gauge("test_redis_busy", "Busy in each live process.")
c.inc(int(sys.argv[3]))
g.set(1)
publisher = metrics.Publisher(metrics.RedisStore(sys.argv[1], sys.argv[2]))
publisher.publish()
c.inc(int(sys.argv[3]))  # counted again: only the difference goes to Redis
publisher.publish()
if sys.argv[4] == "stay":
    print("published", flush=True)
    time.sleep(60)
else:
    publisher.ensure_running()  # its exit publishes a last time and withdraws its gauges
"""


def test_processes_add_up_in_redis_and_a_stopped_ones_gauges_go(redis_url):
    prefix = f"ptest-metrics-{secrets.token_hex(4)}:"
    run = [sys.executable, "-c", textwrap.dedent(PROCESS), redis_url, prefix]
    try:
        subprocess.run([*run, "3", "exit"], check=True, timeout=60)
        staying = subprocess.Popen([*run, "5", "stay"], stdout=subprocess.PIPE, text=True)
        try:
            assert staying.stdout.readline().strip() == "published"
            meta, values, live = metrics.RedisStore(redis_url, prefix).collect()
            assert values["test_redis_shared_total"]["test_redis_shared_total"] == 16
            assert values["test_redis_busy"]["test_redis_busy"] == 1, "the stopped process's gauge is gone"
            assert live == 1 and meta["test_redis_busy"][0] == "gauge"
        finally:
            staying.kill()
            staying.wait(10)
            staying.stdout.close()
    finally:
        forget(redis_url, prefix)


@pytest.mark.usefixtures("mark_job")
def test_jobs_a_celery_worker_runs_are_counted(app, site, tmp_path, redis_url, broker_url):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "jobmark.py").write_text(textwrap.dedent(JOB_PLUGIN))
    queue = "ptest-" + secrets.token_hex(4)
    settings = {"BROKER_URL": broker_url, "QUEUE_NAME": queue, "REDIS_URL": redis_url, "METRICS": "token", "METRICS_TOKEN": TOKEN}
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(personalize_command("worker", "--concurrency", "2"), env=process_env(app, PLUGINS_DIR=str(plugins), **settings),
                              stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    from personalize.app import create_app
    from personalize.testing import app_config

    web = create_app(app_config(app.instance_path, app.config["DATABASE_URL"], AUTO_MIGRATE=False, **settings))
    series = 'personalize_jobs_total{job="test_mark",outcome="succeeded"}'

    def scraped() -> dict[str, float]:
        response = web.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+) (\S+)$", response.get_data(as_text=True), re.M)}

    try:
        wait_for(lambda: "ready." in log.read_text(), 60, "the worker", worker, log)
        with web.app_context():
            jobs.submit("test_mark", site_id=site.id, marker="counted-1", folder=str(tmp_path))
        # the job ran in a pool process of the worker (prefork), which published its figures to Redis
        after = wait_for(lambda: (s := scraped()).get(series) == 1 and s, 30, "the job in /metrics", worker, log)
        assert after[f'personalize_queue_messages{{queue="{queue}"}}'] == 0, "the broker's queue is empty again"
        assert after["personalize_metrics_processes"] >= 2  # the worker and its pool processes publish
    finally:
        stop(worker)
        web.extensions["personalize.metrics"].stop()
        runner = web.extensions.pop("personalize.jobs", None)
        if runner is not None:
            runner.shutdown()
        from kombu import Connection

        with Connection(broker_url) as connection:
            connection.default_channel.queue_delete(queue)
            connection.default_channel.exchange_delete(queue)
        forget(redis_url, f"personalize:metrics:{queue}:")
