"""The shared HTTP layer: timeouts, retries with backoff, Retry-After, error classes, paging."""

from __future__ import annotations

import pytest

from personalize.connectors import AuthError, TransientError
from personalize.sync.http import (
    HttpClient,
    HttpStatusError,
    RetryLater,
    paginate,
    paginate_offset,
    retry_after_seconds,
)
from personalize.sync.testing import ProviderServer, recording_sleep


@pytest.fixture
def server():
    with ProviderServer() as srv:
        srv.on("GET", "/thing", lambda req, m: {"ok": True})
        yield srv


def client(server, **kw):
    sleep = recording_sleep()
    return HttpClient(server.url, sleep=sleep, timeout=(1.0, 0.5), **kw), sleep


def test_429_honours_retry_after_then_succeeds(server):
    server.fault("GET", "/thing", 429, {"message": "slow down"}, headers={"Retry-After": "7"}, times=2)
    http, sleep = client(server)
    assert http.get_json("/thing") == {"ok": True}
    assert sleep.calls == [7.0, 7.0]
    assert server.hits("GET", "/thing") == 3
    server.verify()


def test_5xx_and_429_without_retry_after_back_off_exponentially(server):
    server.fault("GET", "/thing", 503, times=2)
    server.fault("GET", "/thing", 429, times=1)
    http, sleep = client(server, backoff=1.0)
    assert http.get_json("/thing") == {"ok": True}
    assert len(sleep.calls) == 3
    assert 0.5 <= sleep.calls[0] <= 1.0 and 1.0 <= sleep.calls[1] <= 2.0 and 2.0 <= sleep.calls[2] <= 4.0


def test_gives_up_as_transient_when_the_budget_is_spent(server):
    server.fault("GET", "/thing", 500, times=10)
    http, sleep = client(server, max_retries=3)
    with pytest.raises(TransientError, match="gave up after 4 attempts"):
        http.get_json("/thing")
    assert len(sleep.calls) == 3


def test_retry_after_longer_than_the_wait_budget_is_not_waited(server):
    server.fault("GET", "/thing", 429, headers={"Retry-After": "3600"})
    http, sleep = client(server, max_wait=60)
    with pytest.raises(TransientError):
        http.get_json("/thing")
    assert sleep.calls == []


def test_timeouts_and_dropped_connections_are_retried(server):
    server.fault("GET", "/thing", delay=1.0)
    server.fault("GET", "/thing", drop=True)
    http, sleep = client(server)
    assert http.get_json("/thing") == {"ok": True}
    assert len(sleep.calls) == 2


def test_401_and_403_are_auth_errors_and_never_retried(server):
    server.fault("GET", "/thing", 401, {"message": "token expired"})
    http, sleep = client(server)
    with pytest.raises(AuthError, match="401.*token expired"):
        http.get_json("/thing")
    server.fault("GET", "/thing", 403)
    with pytest.raises(AuthError):
        http.get_json("/thing")
    assert sleep.calls == []


def test_other_4xx_fail_without_retry(server):
    server.fault("GET", "/thing", 400, {"message": "bad filter"})
    http, sleep = client(server)
    with pytest.raises(HttpStatusError) as info:
        http.get_json("/thing")
    assert info.value.status == 400 and "bad filter" in info.value.body and sleep.calls == []


def test_a_200_carrying_an_error_can_ask_for_a_retry(server):
    answers = iter([{"errors": [{"message": "Throttled"}]}, {"data": 1}])
    server.on("POST", "/graphql", lambda req, m: next(answers))

    def check(response):
        if "errors" in response.json():
            raise RetryLater("throttled", 2.5)

    http, sleep = client(server)
    assert http.request("POST", "/graphql", json={}, check=check).json() == {"data": 1}
    assert sleep.calls == [2.5]


def test_unexpected_requests_fail_the_strict_server(server):
    http, _ = client(server)
    with pytest.raises(HttpStatusError):
        http.get_json("/not-declared")
    with pytest.raises(AssertionError, match="unexpected request GET /not-declared"):
        server.verify()


def test_retry_after_parses_seconds_and_http_dates():
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds("Sun, 22 Nov 2026 10:00:30 GMT", now=1795341600.0) == 30.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_min_interval_paces_requests(server):
    now = [100.0]
    sleep = recording_sleep()
    http = HttpClient(server.url, sleep=sleep, clock=lambda: now[0], min_interval=0.2)
    http.get_json("/thing")
    http.get_json("/thing")
    assert sleep.calls == [pytest.approx(0.2)]


def test_paging_helpers():
    pages = {None: ([1, 2], "b"), "b": ([3], None)}
    assert [items for items, _ in paginate(lambda c: pages[c])] == [[1, 2], [3]]
    data = list(range(5))
    got = list(paginate_offset(lambda off: (data[off : off + 2], len(data)), 2))
    assert [items for items, _ in got] == [[0, 1], [2, 3], [4]] and got[-1][1] == 5
