"""``/metrics``: off by default, a bearer token when on, Prometheus' text format, bounded series,
and what the server counts: requests by route rule, events, recommendation lists, jobs, sync runs,
journey steps. Several processes add up through the instance folder (Redis: tests/production)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time

import pytest

from personalize import metrics
from personalize.app import create_app
from personalize.config import ConfigError
from personalize.testing import app_config

TOKEN = "scrape-token-" + "x" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}

_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)')


def parse(text: str) -> dict[str, float]:
    """Every line of Prometheus' text format checked; the samples as ``{'name{labels}': value}``."""
    out, typed = {}, set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge", "histogram", "untyped"), line
            typed.add(name)
            continue
        match = _SAMPLE.fullmatch(line)
        assert match, f"not a sample line: {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", match.group(1))
        assert family in typed or match.group(1) in typed, f"{line!r} has no # TYPE before it"
        out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


@pytest.fixture
def metrics_app(app):
    """A second server process of the test app's instance and database, with /metrics on."""
    from personalize.db import db

    application = create_app(app_config(app.instance_path, app.config["DATABASE_URL"], AUTO_MIGRATE=False,
                                        METRICS="token", METRICS_TOKEN=TOKEN))
    yield application
    application.extensions["personalize.metrics"].stop()
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def scrape(app) -> dict[str, float]:
    response = app.test_client().get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.get_data(as_text=True))


def delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0) - before.get(name, 0)


# -- turning it on ---------------------------------------------------------------------------------

def test_metrics_are_off_by_default(app, client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=AUTH).status_code == 404
    assert "metrics" not in {rule.endpoint for rule in app.url_map.iter_rules()}


@pytest.mark.parametrize(("settings", "message"), [
    ({"METRICS": "token"}, "METRICS=token needs METRICS_TOKEN"),
    ({"METRICS": "token", "METRICS_TOKEN": "short"}, "at least 16 characters"),
    ({"METRICS": "open"}, "METRICS must be off or token"),
])
def test_a_metrics_setting_that_cannot_work_stops_the_start(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db", **settings))


def test_metrics_ask_for_the_token(metrics_app):
    client = metrics_app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-enough-length"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert "personalize_" not in response.get_data(as_text=True)
    assert client.get(f"/metrics?token={TOKEN}").status_code == 401, "never in a URL: it would be logged"
    samples = scrape(metrics_app)
    assert samples[f'personalize_build_info{{version="{metrics_app.config["VERSION"]}"}}'] == 1
    assert samples["personalize_metrics_processes"] >= 1


def test_the_settings_page_never_shows_the_token(metrics_app):
    from personalize.config import secret_setting

    assert secret_setting("METRICS_TOKEN") and not secret_setting("RATE_LIMIT_PER_SECRET_KEY")


# -- what is counted -------------------------------------------------------------------------------

def test_requests_are_counted_by_route_rule_method_and_status_class(metrics_app):
    client = metrics_app.test_client()
    before = scrape(metrics_app)
    for n in range(3):
        client.get(f"/api/v1/profiles/{1000 + n}", headers={"Authorization": "Bearer sk_not-a-real-key"})
    for n in range(25):  # paths clients invent: one series, whatever they are
        client.get(f"/no/such/{n}/page-{n * 7}")
    client.open("/api/v1/health", method="BREW")
    after = scrape(metrics_app)
    profile = 'route="/api/v1/profiles/<int:profile_id>"'
    assert delta(before, after, f'personalize_http_requests_total{{{profile},method="GET",status="4xx"}}') == 3
    assert delta(before, after, 'personalize_http_requests_total{route="(unmatched)",method="GET",status="4xx"}') == 25
    assert delta(before, after, 'personalize_http_requests_total{route="(unmatched)",method="other",status="4xx"}') == 1  # 405
    assert not [name for name in after if "/no/such" in name or "1000" in name], "a raw path became a label"
    # the latency histogram: cumulative buckets that end in the count
    assert delta(before, after, f'personalize_http_request_duration_seconds_count{{{profile},status="4xx"}}') == 3
    assert delta(before, after, f'personalize_http_request_duration_seconds_bucket{{{profile},status="4xx",le="+Inf"}}') == 3
    assert delta(before, after, f'personalize_http_request_duration_seconds_sum{{{profile},status="4xx"}}') > 0


def test_events_are_counted_by_outcome(metrics_app):
    from personalize.sites import create_site

    with metrics_app.app_context():
        site, _secret = create_site("Counted shop")
        key = site.public_key
    client = metrics_app.test_client()
    now = int(time.time() * 1000)
    batch = [{"id": f"m-{n}", "type": "page_viewed", "visitor": "v-m", "ts": now} for n in range(2)]
    before = scrape(metrics_app)
    assert client.post("/api/v1/events", json={"key": key, "events": [*batch, {"id": "bad", "type": "nonsense"}]}).status_code == 202
    assert client.post("/api/v1/events", json={"key": key, "events": batch}).status_code == 202  # a beacon sent again
    after = scrape(metrics_app)
    assert [delta(before, after, f'personalize_events_total{{outcome="{o}"}}') for o in ("accepted", "duplicate", "rejected")] == [2, 2, 1]
    # on SQLite, the one writer's turns the batches took (PostgreSQL has no such turn: nothing counted)
    turns = delta(before, after, 'personalize_sqlite_writer_turns_total{writer="events"}')
    held = delta(before, after, 'personalize_sqlite_writer_seconds_total{writer="events"}')
    if metrics_app.config["DATABASE_URL"].startswith("sqlite"):
        assert turns >= 2 and held > 0
    else:
        assert turns == held == 0


def test_recommendation_lists_are_counted_by_strategy(metrics_app, trained):
    key = trained.public_key
    client = metrics_app.test_client()
    before = scrape(metrics_app)
    assert client.get(f"/api/v1/recommendations?key={key}&visitor=runner-1").get_json()["strategy"] == "personal"
    assert client.get(f"/api/v1/recommendations?key={key}&visitor=someone-new").get_json()["strategy"] == "popular"
    after = scrape(metrics_app)
    assert delta(before, after, 'personalize_recommendation_lists_total{strategy="personal"}') == 1
    assert delta(before, after, 'personalize_recommendation_lists_total{strategy="popular"}') == 1


def test_jobs_are_counted_by_outcome(metrics_app):
    from personalize import jobs

    def broken():
        raise RuntimeError("this job fails")

    jobs.register("metrics_ok", lambda: None)
    jobs.register("metrics_broken", broken)
    try:
        before = scrape(metrics_app)
        runner = jobs.runner(metrics_app)
        runner.submit("metrics_ok")
        runner.submit("metrics_ok")
        runner.submit("metrics_broken")
        runner.wait(10)
        after = scrape(metrics_app)
    finally:
        jobs.REGISTRY.pop("metrics_ok", None)
        jobs.REGISTRY.pop("metrics_broken", None)
        metrics_app.extensions.pop("personalize.jobs").shutdown()
    assert delta(before, after, 'personalize_jobs_total{job="metrics_ok",outcome="succeeded"}') == 2
    assert delta(before, after, 'personalize_jobs_total{job="metrics_broken",outcome="failed"}') == 1
    assert after.get('personalize_jobs_waiting{job="metrics_ok"}') == 0  # started: no longer waiting


def test_sync_runs_are_counted_by_connector_kind_and_status(metrics_app):
    from personalize.sites import create_site
    from personalize.sync import engine
    from personalize.sync.connections import save_connection, site_files_root

    with metrics_app.app_context():
        site, _secret = create_site("Synced shop")
        (site_files_root(site.id) / "exports").mkdir(parents=True)
        (site_files_root(site.id) / "exports" / "contacts.csv").write_text("id,email\n1,ann@example.com\n")
        save_connection(site.id, "files", {"folder": "exports"})
        save_connection(site.id, "files", {"folder": "missing"}, name="files-missing")
        before = scrape(metrics_app)
        assert engine.run_sync(site.id, "files")["status"] == "succeeded"
        assert engine.run_sync(site.id, "files-missing")["status"] == "failed"
        after = scrape(metrics_app)
    assert delta(before, after, 'personalize_sync_runs_total{connector="files",kind="pull",status="succeeded"}') == 1
    assert delta(before, after, 'personalize_sync_runs_total{connector="files",kind="pull",status="failed"}') == 1


def test_journey_steps_have_a_counter_any_module_can_use(metrics_app):
    before = scrape(metrics_app)
    metrics.JOURNEY_STEPS.inc(step="email", outcome="sent")
    again = metrics.counter("personalize_journey_steps_total", "Journey steps run.", ["step", "outcome"])
    assert again is metrics.JOURNEY_STEPS, "declaring it again, as the journeys package may, gives the same counter"
    again.inc(step="email", outcome="sent")
    after = scrape(metrics_app)
    assert delta(before, after, 'personalize_journey_steps_total{step="email",outcome="sent"}') == 2


def test_with_metrics_off_requests_are_not_counted(app, client):
    before = metrics.snapshot()["counters"]["personalize_http_requests_total"]
    client.get("/api/v1/health")
    assert metrics.snapshot()["counters"]["personalize_http_requests_total"] == before


# -- the registry ----------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _forget_test_metrics():
    """Metrics these tests declare leave the process's registry afterwards (other tests scrape it)."""
    yield
    for name in [m.name for m in metrics.registered() if m.name.startswith("test_")]:
        metrics._REGISTRY.pop(name, None)


def test_a_metric_takes_exactly_its_labels_and_a_name_has_one_kind():
    c = metrics.counter("test_registry_total", "A test counter.", ["outcome"])
    with pytest.raises(ValueError, match="takes the labels outcome"):
        c.inc(result="ok")
    with pytest.raises(ValueError, match="only goes up"):
        c.inc(-1, outcome="ok")
    with pytest.raises(ValueError, match="already a counter"):
        metrics.gauge("test_registry_total", "Not a gauge.", ["outcome"])
    with pytest.raises(ValueError, match="already a counter"):
        metrics.counter("test_registry_total", "Other labels.", ["kind"])


def test_a_metric_keeps_a_bounded_number_of_series(monkeypatch, caplog):
    monkeypatch.setattr(metrics, "MAX_SERIES", 3)
    c = metrics.counter("test_bounded_total", "A counter given unbounded labels.", ["visitor"])
    for n in range(10):
        c.inc(visitor=f"v{n}")
    series = c.series()
    assert len(series) == 4
    assert series['test_bounded_total{visitor="(other)"}'] == 7
    assert "label sets" in caplog.text


def test_label_values_are_escaped_and_histograms_are_cumulative():
    h = metrics.histogram("test_seconds", "A test histogram.", ["name"], buckets=[0.1, 1])
    for value in (0.05, 0.5, 0.5, 3):
        h.observe(value, name='say "hi"\\\n')
    text = metrics.render({"test_seconds": ["histogram", "A test histogram."]}, {"test_seconds": h.series()})
    samples = parse(text)
    label = 'name="say \\"hi\\"\\\\\\n"'
    assert [samples[f'test_seconds_bucket{{{label},le="{le}"}}'] for le in ("0.1", "1", "+Inf")] == [1, 3, 4]
    assert samples[f"test_seconds_count{{{label}}}"] == 4 and samples[f"test_seconds_sum{{{label}}}"] == 4.05


def test_a_forked_process_starts_counting_from_zero():
    """A gunicorn worker or a Celery pool process is forked: it must not publish its parent's counts again."""
    import os

    c = metrics.counter("test_forked_total", "Counted before and after a fork.", ["kind"])
    c.inc(5, kind="a")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it holds, then leave without running the parent's exit code
        c.inc(kind="a")
        os.write(write, json.dumps(c.series()).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    assert child == {'test_forked_total{kind="a"}': 1}
    assert c.series() == {'test_forked_total{kind="a"}': 5}


# -- several processes, one machine: the instance folder --------------------------------------------

PROCESS = """
import sys, time
from personalize import metrics
c = metrics.counter("test_shared_total", "Counted by several processes.", ["kind"])
g = metrics.gauge("test_shared_busy", "Busy in each live process.")
c.inc(int(sys.argv[2]), kind="a")
g.set(1)
store = metrics.FileStore(sys.argv[1])
store.publish(metrics.snapshot())
if sys.argv[3] == "stay":
    print("published", flush=True)
    time.sleep(60)
"""


def test_processes_add_up_through_the_instance_folder_and_gone_ones_keep_counting(tmp_path):
    folder = tmp_path / "metrics"
    run = [sys.executable, "-c", textwrap.dedent(PROCESS), str(folder)]
    subprocess.run([*run, "3", "exit"], check=True, timeout=60)
    subprocess.run([*run, "4", "exit"], check=True, timeout=60)
    staying = subprocess.Popen([*run, "5", "stay"], stdout=subprocess.PIPE, text=True)
    try:
        assert staying.stdout.readline().strip() == "published"
        store = metrics.FileStore(folder)
        meta, values, live = store.collect()
        assert values["test_shared_total"]['test_shared_total{kind="a"}'] == 12, "gone processes still count"
        assert values["test_shared_busy"]["test_shared_busy"] == 1, "a gauge counts in live processes only"
        assert live == 1 and meta["test_shared_total"][0] == "counter"

        store.compact()  # a starting process folds the gone processes' files into the machine's archive
        assert len(list(folder.glob("*.json"))) == 2  # the archive and the live process's file
        assert store.collect()[1]["test_shared_total"]['test_shared_total{kind="a"}'] == 12
    finally:
        staying.kill()
        staying.wait(10)
        staying.stdout.close()
    assert store.collect()[1]["test_shared_busy"] == {}, "its process gone, its gauge no longer counts"
