"""Abuse limits, one by one: body size (413), batch size (413), rate limits per address and per key (429 with
Retry-After), the proxy header only when trusted, counters shared through Redis, and bounded query parameters."""

from __future__ import annotations

import http.client
import json
import math
import os
import secrets
import socket
import time
from urllib.parse import urlsplit

import pytest

from personalize.app import create_app
from personalize.db import db
from personalize.limits import Limiter
from personalize.testing import app_config

REDIS_URL = os.environ.get("PERSONALIZE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_redis() -> None:
    """Skip without Redis on 127.0.0.1:6379, unless PERSONALIZE_REQUIRE_SERVICES=1 (CI), which fails instead."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1.0).close()
    except OSError:
        reason = "Redis is not reachable at 127.0.0.1:6379"
        if os.environ.get("PERSONALIZE_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + "; PERSONALIZE_REQUIRE_SERVICES=1 makes this an error")
        pytest.skip(reason)


def recs(client, key, **headers):
    return client.get("/api/v1/recommendations", query_string={"key": key, "visitor": "v1"}, headers=headers)


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert error.get("field") == field, error
    return error


def limits(app, **values):
    """Set the rate limits for this test (every one off unless given), early enough in a window to finish in it."""
    app.config.update({"RATE_LIMIT_PER_IP": 0, "RATE_LIMIT_PER_SITE": 0, "RATE_LIMIT_PER_SECRET_KEY": 0, **values})
    if time.time() % 60 > 45:  # counters start afresh each minute: do not straddle two windows
        time.sleep(60.5 - time.time() % 60)


# -- 413: bodies and batches -------------------------------------------------------------------------------------


def test_a_body_over_max_content_length_is_413_naming_the_limit(app, client, site):
    app.config["MAX_CONTENT_LENGTH"] = 4096
    event = {"id": "big", "type": "page_viewed", "visitor": "v", "url": "/" + "x" * 1900}
    body = json.dumps({"key": site.public_key, "events": [dict(event, id=f"big-{i}") for i in range(3)]})
    assert len(body) > 4096
    error = assert_error(client.post("/api/v1/events", data=body, content_type="application/json"), 413, "too_large", "body")
    assert "MAX_CONTENT_LENGTH" in error["message"] and "4096" in error["message"]
    # just under the limit is accepted
    small = json.dumps({"key": site.public_key, "events": [dict(event, id="small")]})
    assert client.post("/api/v1/events", data=small, content_type="application/json").status_code == 202


def test_a_chunked_body_without_content_length_is_cut_off_at_the_limit(app, site):
    """No Content-Length to check up front: the server must stop reading at the limit and answer 413, not store."""
    from personalize.testing import serve_in_thread

    app.config["MAX_CONTENT_LENGTH"] = 4096
    events = [{"id": f"chunk-{i}", "type": "page_viewed", "visitor": "v", "url": "/" + "y" * 500} for i in range(20)]
    payload = json.dumps({"key": site.public_key, "events": events}).encode()
    with serve_in_thread(app) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        conn.putrequest("POST", "/api/v1/events")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for start in range(0, len(payload), 1000):
            piece = payload[start : start + 1000]
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        body = json.loads(response.read())
        conn.close()
    assert response.status == 413, body
    assert body["error"]["code"] == "too_large" and "MAX_CONTENT_LENGTH" in body["error"]["message"]
    with app.app_context():
        from sqlalchemy import func, select

        from personalize.models import Event

        assert db.session.scalar(select(func.count()).select_from(Event).where(Event.event_id.like("chunk-%"))) == 0


def test_a_batch_over_max_events_per_batch_is_413_naming_the_limit(app, client, site):
    app.config["MAX_EVENTS_PER_BATCH"] = 5
    events = [{"id": f"b{i}", "type": "page_viewed", "visitor": "v"} for i in range(6)]
    error = assert_error(client.post("/api/v1/events", json={"key": site.public_key, "events": events}), 413, "too_many_events", "events")
    assert "MAX_EVENTS_PER_BATCH" in error["message"] and "5" in error["message"]
    assert client.post("/api/v1/events", json={"key": site.public_key, "events": events[:5]}).status_code == 202


def test_deeply_nested_json_is_400_not_a_crash(client, site):
    deep = "[" * 50_000 + "]" * 50_000
    body = '{"key": "' + site.public_key + '", "events": ' + deep + "}"
    assert_error(client.post("/api/v1/events", data=body, content_type="application/json"), 400, "invalid_json", "body")
    # where nesting is allowed (segment rules), its depth is bounded too
    rule = '{"rule": ' + '{"not": ' * 40 + '{"field": "orders.total", "op": "gt", "value": 500}' + "}" * 40 + "}"
    response = client.post("/api/v1/segments/preview", data=rule, content_type="application/json", headers={"Authorization": f"Bearer {site.secret_key}"})
    error = assert_error(response, 400, "invalid")
    assert error["field"].startswith("rule") and "nests at most" in error["message"]


# -- 429: the windows ----------------------------------------------------------------------------------------------


def test_retry_after_is_the_wait_until_a_request_fits_the_sliding_minute():
    limiter = Limiter(None, window=60)
    start = 1_700_000_040.0  # 0 s into a window (1_700_000_040 is a multiple of 60)
    assert [limiter.hit("b", 2, now=start + 44.2) for _ in range(2)] == [None, None]
    # the third is refused (and not counted): one more fits once half of this minute's 2 hits
    # have slid out of the sliding minute, 30 s into the next: 15.8 + 30 s from now, rounded up
    assert limiter.hit("b", 2, now=start + 44.2) == 46
    assert limiter.hit("other", 2, now=start + 59.9) is None  # buckets are separate
    # the next minute does not start from zero: last minute's 2 hits still weigh 2 x (1 - 0.1/60)
    assert limiter.hit("b", 2, now=start + 60.1) is not None
    assert limiter.hit("b", 2, now=start + 120.0 + 55) is None  # the minute before let nothing through
    # a client that waits as long as Retry-After says is let through
    fresh = Limiter(None, window=60)
    now = start + 59.0
    for _ in range(5):
        fresh.hit("c", 5, now=now)
    wait = fresh.hit("c", 5, now=now)
    assert wait is not None
    assert fresh.hit("c", 5, now=now + wait) is None


def test_a_limit_cannot_be_spent_twice_across_the_turn_of_a_minute():
    """Fixed windows let a client spend a limit at :59 and again at :00; the sliding minute does not."""
    limiter = Limiter(None, window=60)
    start = 1_700_000_040.0
    late = [limiter.hit("b", 10, now=start + 59.5) for _ in range(10)]
    early = [limiter.hit("b", 10, now=start + 60.5) for _ in range(10)]
    assert late == [None] * 10 and all(w is not None for w in early)
    # across any 60 s, no more than the limit is let through
    limiter = Limiter(None, window=60)
    let_through = [t / 10 for t in range(0, 3000) if limiter.hit("d", 30, now=start + t / 10) is None]
    assert max(sum(1 for t in let_through if s <= t < s + 60) for s in let_through) <= 30 + 1


def test_per_address_limit_answers_429_with_retry_after(app, client, site):
    limits(app, RATE_LIMIT_PER_IP=3)
    codes = [recs(client, site.public_key).status_code for _ in range(3)]
    before = time.time()
    limited = client.get("/api/v1/health")
    assert codes == [200, 200, 200]
    error = assert_error(limited, 429, "rate_limited")
    assert "RATE_LIMIT_PER_IP" in error["message"] and "127.0.0.1" in error["message"]
    retry = int(limited.headers["Retry-After"])
    # 3 hits, all in this minute: one more fits 20 s into the next (sooner if some fell in the last one)
    assert 1 <= retry <= math.ceil(60 - before % 60 + 20) + 1
    assert str(retry) in error["message"]
    # pages outside the API are not counted by this limit
    assert client.get("/static/widget.js").status_code == 200


def test_per_site_limit_holds_one_site_and_not_another(app, client, site):
    from personalize.sites import create_site

    with app.app_context():
        other, _secret = create_site("Other shop", [])
        other_key = other.public_key
    limits(app, RATE_LIMIT_PER_SITE=3)
    assert [recs(client, site.public_key).status_code for _ in range(3)] == [200, 200, 200]
    limited = recs(client, site.public_key)
    error = assert_error(limited, 429, "rate_limited", "key")
    assert "RATE_LIMIT_PER_SITE" in error["message"] and 1 <= int(limited.headers["Retry-After"]) <= 120
    # events of the same site count against the same limit; the key travels in the body here
    event = {"id": "limited", "type": "page_viewed", "visitor": "v"}
    assert_error(client.post("/api/v1/events", json={"key": site.public_key, "events": [event]}), 429, "rate_limited", "key")
    assert [recs(client, other_key).status_code for _ in range(3)] == [200, 200, 200]
    # an unknown key is not counted against anyone (it is refused before)
    assert recs(client, "pk_" + "x" * 30).status_code == 401


def test_per_secret_key_limit(app, client, site):
    limits(app, RATE_LIMIT_PER_SECRET_KEY=2)
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    assert [client.get("/api/v1/site", headers=auth).status_code for _ in range(2)] == [200, 200]
    limited = client.get("/api/v1/products", headers=auth)
    error = assert_error(limited, 429, "rate_limited", "Authorization")
    assert "RATE_LIMIT_PER_SECRET_KEY" in error["message"] and limited.headers["Retry-After"].isdigit()
    # the widget's public key has its own budget
    assert recs(client, site.public_key).status_code == 200


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(app, client, site):
    limits(app, RATE_LIMIT_PER_IP=2)
    spoofed = [client.get("/api/v1/health", headers={"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(3)]
    assert [r.status_code for r in spoofed] == [200, 200, 429]
    assert "127.0.0.1" in spoofed[-1].get_json()["error"]["message"]


def test_forwarded_for_names_the_client_behind_a_trusted_proxy(tmp_path, app, site):
    trusting = create_app(app_config(tmp_path / "proxied", app.config["DATABASE_URL"], AUTO_MIGRATE=False, TRUSTED_PROXIES=1))
    limits(trusting, RATE_LIMIT_PER_IP=2)
    client = trusting.test_client()
    try:
        one = [client.get("/api/v1/health", headers={"X-Forwarded-For": "198.51.100.7"}).status_code for _ in range(3)]
        assert one == [200, 200, 429]
        # another client behind the same proxy has a budget of its own; the proxy appends the real address last
        two = client.get("/api/v1/health", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.8"})
        assert two.status_code == 200
        again = client.get("/api/v1/health", headers={"X-Forwarded-For": "198.51.100.7"})
        assert "198.51.100.7" in again.get_json()["error"]["message"]
    finally:
        with trusting.app_context():
            db.engine.dispose()


@pytest.fixture
def redis_prefix():
    require_redis()
    prefix = f"ltest-{secrets.token_hex(4)}:"
    yield prefix
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(prefix + "*"))
    if keys:
        r.delete(*keys)
    r.close()


def test_two_processes_share_the_limit_through_redis(tmp_path, app, site, redis_prefix):
    """Two app instances (two web processes) on one Redis: together they allow the limit, not twice it."""
    apps = [create_app(app_config(tmp_path / name, app.config["DATABASE_URL"], AUTO_MIGRATE=False, REDIS_URL=REDIS_URL)) for name in ("one", "two")]
    for a in apps:
        limits(a, RATE_LIMIT_PER_SITE=4)
        a.extensions["personalize.limits"].prefix = redis_prefix
    clients = [a.test_client() for a in apps]
    try:
        codes = []
        for i in range(6):
            codes.append(recs(clients[i % 2], site.public_key).status_code)
            for _ in range(2):  # what the processes' background threads do every 0.2 s: share, then learn
                for a in apps:
                    assert a.extensions["personalize.limits"].flush()
        assert codes == [200, 200, 200, 200, 429, 429]
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        # the 4 let through, not the 2 refused; one counter a minute (two if the minute turned meanwhile)
        keys = list(r.scan_iter(redis_prefix + "*"))
        assert sum(int(r.get(key)) for key in keys) == 4 and all(0 < r.ttl(key) <= 61 for key in keys)  # never a leak
        r.close()
    finally:
        for a in apps:
            a.extensions["personalize.limits"].close()
            a.extensions["personalize.cache"].close()
            with a.app_context():
                db.engine.dispose()


def test_redis_down_the_limits_fall_back_to_this_process(app, client, site):
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    limits(app, RATE_LIMIT_PER_IP=3)
    codes = [recs(client, site.public_key).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # never a 500, and still a limit


def test_the_background_thread_shares_the_counts_without_being_asked(tmp_path, app, site, redis_prefix):
    served = create_app(app_config(tmp_path / "one", app.config["DATABASE_URL"], AUTO_MIGRATE=False, REDIS_URL=REDIS_URL))
    limits(served, RATE_LIMIT_PER_SITE=100)
    served.extensions["personalize.limits"].prefix = redis_prefix
    client = served.test_client()
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    try:
        assert [recs(client, site.public_key).status_code for _ in range(3)] == [200, 200, 200]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(int(r.get(k)) for k in r.scan_iter(redis_prefix + "*")) != 3:
            time.sleep(0.05)
        assert sum(int(r.get(k)) for k in r.scan_iter(redis_prefix + "*")) == 3
    finally:
        r.close()
        served.extensions["personalize.limits"].close()
        served.extensions["personalize.cache"].close()
        with served.app_context():
            db.engine.dispose()


# -- bounded input: every endpoint ----------------------------------------------------------------------------------


def api_requests(app):
    """(method, path) for every API route and method, with sample values in the path."""
    from werkzeug.routing import IntegerConverter

    adapter = app.url_map.bind("localhost")
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        values = {name: "1" if isinstance(rule._converters[name], IntegerConverter) else "x" for name in rule.arguments}
        path = adapter.build(rule.endpoint, values)
        out.extend((method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return out


def test_every_endpoint_refuses_overlong_and_too_many_query_parameters(app, client, site):
    from personalize.limits import QUERY_PARAMS_MAX, QUERY_VALUE_MAX

    auth = {"Authorization": f"Bearer {site.secret_key}"}
    routes = api_requests(app)
    assert len(routes) >= 25  # every endpoint of docs/api.md, public and secret
    for method, path in routes:
        response = client.open(path, method=method, query_string={"zz": "a" * (QUERY_VALUE_MAX + 1)}, headers=auth)
        assert_error(response, 400, "too_long", "zz")
        many = {f"p{i}": "1" for i in range(QUERY_PARAMS_MAX + 1)}
        assert_error(client.open(path, method=method, query_string=many, headers=auth), 400, "invalid", "query")
        # just within the bound, the endpoint itself decides (never a 500)
        fine = client.open(path, method=method, query_string={"zz": "a" * QUERY_VALUE_MAX}, headers=auth)
        assert fine.status_code < 500, (method, path, fine.status_code)


def test_each_known_query_parameter_has_its_own_bound(client, site):
    from personalize.limits import QUERY_MAX

    auth = {"Authorization": f"Bearer {site.secret_key}"}
    where = {"key": "/api/v1/recommendations", "visitor": "/api/v1/recommendations", "slot": "/api/v1/recommendations",
             "product": "/api/v1/recommendations", "email": "/api/v1/profiles", "customer_id": "/api/v1/profiles",
             "segment": "/api/v1/segments/changes", "limit": "/api/v1/products", "offset": "/api/v1/products", "after": "/api/v1/segments/changes",
             "strategy": "/api/v1/recommendations", "cart": "/api/v1/recommendations", "lang": "/api/v1/recommendations"}
    assert set(where) == set(QUERY_MAX)
    for name, path in where.items():
        too_long = {"key": site.public_key, name: "1" * (QUERY_MAX[name] + 1)}
        error = assert_error(client.get(path, query_string=too_long, headers=auth), 400, "too_long", name)
        assert str(QUERY_MAX[name]) in error["message"]


def test_every_query_parameter_the_api_reads_is_bounded():
    """Kept in step with the code: a new ``request.args`` name in the API needs its entry in QUERY_MAX."""
    import re
    from pathlib import Path

    import personalize.api
    from personalize.limits import QUERY_MAX

    read = set()
    for source in Path(personalize.api.__file__).parent.glob("*.py"):
        text = source.read_text()
        read |= set(re.findall(r"request\.args\.get\(\s*\"(\w+)\"", text))
        read |= set(re.findall(r"\b_(?:param|int_arg)\(\s*\"(\w+)\"", text))
        read |= set(re.findall(r"\(\s*\w+\s*,\s*\"(\w+)\"\s*\)", text)) & {"email", "customer_id", "visitor"}
    assert read, "the API reads query parameters"
    assert read <= set(QUERY_MAX), sorted(read - set(QUERY_MAX))


@pytest.mark.parametrize("path,param,bad", [
    ("/api/v1/products", "limit", "1001"), ("/api/v1/products", "limit", "0"), ("/api/v1/products", "limit", "-1"),
    ("/api/v1/products", "offset", "99999999999"), ("/api/v1/products", "offset", "x"),
    ("/api/v1/segments/changes", "limit", "5001"), ("/api/v1/segments/changes", "after", "-3"),
    ("/api/v1/segments/changes", "after", "9" * 19), ("/api/v1/segments/big/members", "limit", "1001"),
    ("/api/v1/segments/big/members", "after", "1e9"), ("/api/v1/recommendations", "limit", "51"),
    ("/api/v1/recommendations", "limit", "2.5"),
])
def test_page_sizes_and_offsets_are_bounded(app, client, site, path, param, bad):
    app.config["SEGMENT_REBUILD_INLINE"] = True
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    if "/segments/big/" in path:
        rule = {"key": "big", "name": "Big", "rule": {"field": "orders.total", "op": "gt", "value": 500}}
        assert client.post("/api/v1/segments", json=rule, headers=auth).status_code == 201
    assert_error(client.get(path, query_string={"key": site.public_key, param: bad}, headers=auth), 400, "invalid", param)


def test_a_site_has_a_bounded_number_of_contact_channels(client, site):
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    channels = {f"c{i}": {"per_day": 1} for i in range(15)}
    assert client.put("/api/v1/contact-policy", json={"channels": channels}, headers=auth).status_code == 200
    more = {f"d{i}": {"per_day": 1} for i in range(6)}
    assert_error(client.put("/api/v1/contact-policy", json={"channels": more}, headers=auth), 400, "invalid", "channels")
    assert len(client.get("/api/v1/contact-policy", headers=auth).get_json()["channels"]) == 15


def test_event_properties_are_bounded_in_keys_and_size(client, site):
    def post(props):
        event = {"id": "props", "type": "page_viewed", "visitor": "v", "properties": props}
        return client.post("/api/v1/events", json={"key": site.public_key, "events": [event]})

    assert_error(post({f"k{i}": 1 for i in range(51)}), 400, "invalid", "events[0].properties")
    assert_error(post({"note": "x" * 2001}), 400, "invalid", "events[0].properties.note")
    assert_error(post({"nested": {"a": 1}}), 400, "invalid", "events[0].properties.nested")
    assert post({f"k{i}": "x" * 2000 for i in range(50)}).status_code == 202


# -- timeouts on what waits ----------------------------------------------------------------------------------------


def test_the_database_waits_are_bounded(tmp_path, app, site):
    """SQLite: a writer waits DATABASE_LOCK_TIMEOUT for another's lock, then the API answers 503 + Retry-After and
    recovers once the lock is gone. PostgreSQL: a statement longer than DATABASE_STATEMENT_TIMEOUT is cancelled."""
    from sqlalchemy import text

    url = app.config["DATABASE_URL"]
    served = create_app(app_config(tmp_path / "timeouts", url, AUTO_MIGRATE=False, DATABASE_LOCK_TIMEOUT=0.3, DATABASE_STATEMENT_TIMEOUT=1))
    limits(served)
    client = served.test_client()
    event = {"id": "while-locked", "type": "page_viewed", "visitor": "v"}
    try:
        if url.startswith("sqlite"):
            import sqlite3

            with served.app_context():
                assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 300
            holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
            try:
                locked = client.post("/api/v1/events", json={"key": site.public_key, "events": [event]})
                assert_error(locked, 503, "unavailable")
                assert locked.headers["Retry-After"].isdigit()
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            again = client.post("/api/v1/events", json={"key": site.public_key, "events": [event]})
            assert again.status_code == 202 and again.get_json()["accepted"] == 1  # the retry is stored, once
        else:
            from sqlalchemy.exc import OperationalError

            with served.app_context():
                assert db.session.execute(text("SHOW statement_timeout")).scalar() == "1s"
                with pytest.raises(OperationalError, match="statement timeout"):
                    db.session.execute(text("SELECT pg_sleep(3)"))
                db.session.rollback()
                assert db.session.execute(text("SELECT 1")).scalar() == 1
            assert client.post("/api/v1/events", json={"key": site.public_key, "events": [event]}).status_code == 202
    finally:
        with served.app_context():
            db.session.remove()
            db.engine.dispose()


def test_worker_timeout_reaches_gunicorn():
    from personalize.serve import gunicorn_options

    assert gunicorn_options("127.0.0.1", 8000, 2, 4, timeout=17)["timeout"] == 17


def test_ids_too_large_for_the_database_are_404_on_every_route(app, client, site):
    """Every ``<int:…>`` in the API and the admin: a 30-digit id names nothing (404), it never reaches the database."""
    import re

    from werkzeug.routing import IntegerConverter

    from personalize.admin.users import create_admin_user

    with app.app_context():
        create_admin_user("owner@shop.example", "correct horse battery", "owner")
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    signed_in = client.post("/admin/login", data={"email": "owner@shop.example", "password": "correct horse battery", "csrf_token": token})
    assert signed_in.status_code == 302
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    tried = 0
    for rule in app.url_map.iter_rules():
        ints = [name for name in rule.arguments if isinstance(rule._converters[name], IntegerConverter)]
        if not ints or "GET" not in rule.methods:
            continue
        path = rule.rule
        for name in rule.arguments:
            path = re.sub(r"<(?:[^>:]*:)?" + name + ">", str(10**30) if name in ints else "x", path)
        response = client.get(path, headers=auth)
        assert response.status_code == 404, (path, response.status_code)
        # the largest id a table can hold still reaches the page, which answers for itself
        response = client.get(path.replace(str(10**30), str(2**31 - 1)), headers=auth)
        assert response.status_code < 500, (path, response.status_code)
        tried += 1
    assert tried >= 10


def test_admin_pages_take_an_out_of_range_page_start(app, client, site):
    import re

    from personalize.admin.users import create_admin_user

    app.config["SEGMENT_REBUILD_INLINE"] = True
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    rule = {"key": "big", "name": "Big", "rule": {"field": "orders.total", "op": "gt", "value": 5}}
    assert client.post("/api/v1/segments", json=rule, headers=auth).status_code == 201
    with app.app_context():
        create_admin_user("owner@shop.example", "correct horse battery", "owner")
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/admin/login", data={"email": "owner@shop.example", "password": "correct horse battery", "csrf_token": token})
    for after in (str(10**30), "-5", "x"):
        assert client.get(f"/admin/sites/{site.id}/segments/big", query_string={"after": after}).status_code == 200


# ---------------------------------------------------------------- whole numbers and JSON bodies (outside review, new surfaces)

ODD_NUMBERS = ["²", "١٢", "9" * 5000, "-1", "1e3", " 3"]


def test_a_number_in_a_query_is_ascii_digits_or_a_400_naming_it(client, trained):
    """``str.isdigit`` says yes to "²" (which ``int`` refuses: it was a 500) and to Arabic-Indic digits;
    ``int`` refuses more than 4,300 digits. Every number read from a URL or form goes through one helper."""
    from personalize.recommend.channels import block_urls
    from personalize.sites import get_site

    block = block_urls("", trained.id, _a_profile(trained), None)
    image = urlsplit(block.image).path
    secret = {"Authorization": f"Bearer {trained.secret_key}"}
    asks = [
        (f"/api/v1/recommendations?key={trained.public_key}&limit={{}}", {}, "limit"),
        ("/api/v1/products?limit={}", secret, "limit"),
        ("/api/v1/products?offset={}", secret, "offset"),
        (image + "?n={}", {}, "n"),
        (image + "?columns={}", {}, "columns"),
    ]
    assert get_site(trained.id) is not None
    for template, headers, field in asks:
        for odd in ODD_NUMBERS:
            r = client.get(template.format(odd), headers=headers)
            assert r.status_code == 400, (template, odd, r.status_code)
            assert r.get_json()["error"]["field"] == field, (template, odd)


def _a_profile(site) -> int:
    from personalize.models import Profile

    return db.session.scalar(db.select(Profile.id).where(Profile.site_id == site.id).limit(1))


def test_no_isdigit_in_the_source():
    """The class, not the instance: nothing under src/ reads a number with ``isdigit``."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "src"
    found = [f"{p}:{n}" for p in root.rglob("*.py") for n, line in enumerate(p.read_text().splitlines(), 1)
             if ".isdigit()" in line or ".isnumeric()" in line or ".isdecimal()" in line]
    assert not found, "use personalize.validation.whole_number: " + ", ".join(found)


def test_a_body_that_is_not_a_json_object_names_the_body(client, trained):
    for body in (b"[1]", b'"x"', b"{", b'{"a": NaN}'):
        r = client.post("/api/v1/rank", data=body, content_type="application/json")
        assert r.status_code == 400 and r.get_json()["error"]["field"] == "body", body
