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
from personalize.sync.testing import ProviderServer, local_policy, recording_sleep


@pytest.fixture
def server():
    with ProviderServer() as srv:
        srv.on("GET", "/thing", lambda req, m: {"ok": True})
        yield srv


def client(server, **kw):
    sleep = recording_sleep()
    return HttpClient(server.url, sleep=sleep, timeout=(1.0, 0.5), policy=local_policy(), **kw), sleep


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
    with pytest.raises(AuthError, match="401 Unauthorized") as info:
        http.get_json("/thing")
    assert "token expired" not in str(info.value), "the answer's body is not repeated in the message"
    assert "token expired" in info.value.body, "it is kept on the error for the server log"
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
    assert str(info.value) == "GET /thing: 400 Bad Request", "the message carries the status, not the body"


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
    http = HttpClient(server.url, sleep=sleep, clock=lambda: now[0], min_interval=0.2, policy=local_policy())
    http.get_json("/thing")
    http.get_json("/thing")
    assert sleep.calls == [pytest.approx(0.2)]


def test_paging_helpers():
    pages = {None: ([1, 2], "b"), "b": ([3], None)}
    assert [items for items, _ in paginate(lambda c: pages[c])] == [[1, 2], [3]]
    data = list(range(5))
    got = list(paginate_offset(lambda off: (data[off : off + 2], len(data)), 2))
    assert [items for items, _ in got] == [[0, 1], [2, 3], [4]] and got[-1][1] == 5


# --- the guard: where a request may go --------------------------------------------------------------


def test_a_local_server_is_refused_unless_the_operator_trusts_it(server):
    from personalize.sync.outbound import OutboundPolicy, OutboundRefused, parse_allowed_hosts

    port = int(server.url.rsplit(":", 1)[1])
    refused = {
        "trusts nothing": OutboundPolicy(),
        "trusts another port": OutboundPolicy(trusted=parse_allowed_hosts(f"127.0.0.1:{port + 1}")),
        "trusts another host": OutboundPolicy(trusted=parse_allowed_hosts("proxy.internal.example")),
    }
    for why, policy in refused.items():
        with pytest.raises(OutboundRefused):
            HttpClient(server.url, policy=policy, sleep=recording_sleep()).get_json("/thing")
        assert server.requests == [], why
    for setting in ("127.0.0.1", f"127.0.0.1:{port}", "127.0.0.1, crm-proxy.internal:8443"):
        http = HttpClient(server.url, policy=OutboundPolicy(trusted=parse_allowed_hosts(setting)))
        assert http.get_json("/thing") == {"ok": True}, setting
    assert server.hits("GET", "/thing") == 3


def test_a_refusal_is_a_settings_problem_and_never_retried(server):
    from personalize.connectors import ConfigError

    http = HttpClient(server.url, sleep=(sleep := recording_sleep()))
    with pytest.raises(ConfigError, match=r"GET /thing: 127\.0\.0\.1: use https://"):
        http.get_json("/thing")
    assert sleep.calls == [] and server.requests == []


def test_a_name_that_resolves_to_loopback_is_refused_when_the_connection_opens(server):
    """``localhost`` passes no check by name here (the pool is asked directly), so this is the check by
    address: the name is resolved, every address is checked, and nothing is connected to."""
    from personalize.sync.http import GuardedSession
    from personalize.sync.outbound import OutboundPolicy, OutboundRefused

    port = int(server.url.rsplit(":", 1)[1])
    adapter = GuardedSession(OutboundPolicy()).get_adapter("http://localhost/")
    pool = adapter.poolmanager.connection_from_url(f"http://localhost:{port}/")
    with pytest.raises(OutboundRefused, match="localhost resolves to a loopback address"):
        pool.urlopen("GET", "/thing", retries=False)
    assert server.requests == []


def test_dns_rebinding_cannot_slip_a_private_address_past_the_check(server, monkeypatch):
    """A public-looking name whose DNS answer is (or includes) 127.0.0.1 at connect time is refused:
    the addresses are checked where the connection is made, and all of them, not the first."""
    import socket

    from personalize.sync.outbound import OutboundPolicy, OutboundRefused

    port = int(server.url.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    answers = {
        "rebind.example.com": ["127.0.0.1"],
        "mixed.example.com": ["93.184.216.34", "127.0.0.1"],
        "metadata.example.com": ["169.254.169.254"],
        "mapped.example.com": ["::ffff:127.0.0.1"],
    }

    def resolver(host, *args, **kwargs):  # a DNS server that answers what the attacker wants
        if host in answers:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port) if ":" not in a else (a, port, 0, 0))
                    for a in answers[host]]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    for host in answers:
        http = HttpClient(f"https://{host}:{port}", policy=OutboundPolicy(), sleep=recording_sleep())
        with pytest.raises(OutboundRefused, match=f"{host} resolves to a"):
            http.get_json("/thing")
    assert server.requests == []


@pytest.fixture
def elsewhere():
    """Another server: whatever reaches it was sent somewhere the request was not meant to go."""
    with ProviderServer() as srv:
        srv.on("GET", "/steal", lambda req, m: {"stolen": req.headers.get("Authorization")}, required=False)
        srv.on("POST", "/steal", lambda req, m: {"stolen": req.headers.get("Authorization")}, required=False)
        yield srv


def test_a_redirect_to_another_host_is_not_followed_and_the_token_never_reaches_it(server, elsewhere):
    from werkzeug.wrappers import Response

    from personalize.sync.http import RedirectRefused

    for status in (301, 302, 303, 307, 308):
        server.on("GET", f"/moved{status}", lambda req, m, s=status: Response("", s, headers={"Location": f"{elsewhere.url}/steal"}))
    server.on("POST", "/moved", lambda req, m: Response("", 307, headers={"Location": f"{elsewhere.url}/steal"}))
    # elsewhere is trusted too (same host, another port): the redirect is refused for leaving the origin
    http = HttpClient(server.url, headers={"Authorization": "Bearer pat-secret-token"}, policy=local_policy(), sleep=recording_sleep())
    for status in (301, 302, 303, 307, 308):
        with pytest.raises(RedirectRefused, match=f"{status} .* to another address"):
            http.get_json(f"/moved{status}")
    with pytest.raises(RedirectRefused):
        http.post_json("/moved", {"a": 1})
    answer = http.session.get(f"{server.url}/moved302")  # the session itself does not follow either
    assert answer.status_code == 302
    assert elsewhere.requests == [], "nothing, and so no token, reached the other host"


def test_a_redirect_within_the_same_host_is_followed_for_reads_only(server):
    from werkzeug.wrappers import Response

    from personalize.sync.http import RedirectRefused

    server.on("GET", "/old", lambda req, m: Response("", 301, headers={"Location": "/thing"}))
    server.on("GET", "/loop", lambda req, m: Response("", 302, headers={"Location": "/loop"}))
    server.on("POST", "/old-write", lambda req, m: Response("", 307, headers={"Location": "/thing"}))
    http, _ = client(server)
    assert http.get_json("/old") == {"ok": True}
    with pytest.raises(RedirectRefused, match="more than 3 redirects"):
        http.get_json("/loop")
    assert server.hits("GET", "/loop") == 4
    with pytest.raises(RedirectRefused, match="a redirect of a write is not followed"):
        http.post_json("/old-write", {})


def test_no_error_message_carries_the_remote_body(server):
    """An internal page's content must not come back to the admin through an error message."""
    from personalize.connectors import ConnectorError

    marker = "INTERNAL-ONLY db_password=hunter2"
    server.on("GET", "/e401", lambda req, m: (401, {"message": marker}))
    server.on("GET", "/e404", lambda req, m: (404, marker))
    server.on("GET", "/e500", lambda req, m: (500, f"<html>{marker}</html>"))
    server.on("GET", "/html", lambda req, m: (200, f"<html>{marker}</html>", {"Content-Type": f"text/html; x={marker}"}))
    http, _ = client(server, max_retries=1)
    messages = []
    for path in ("/e401", "/e404", "/e500", "/html"):
        with pytest.raises(ConnectorError) as info:
            http.get_json(path)
        messages.append(str(info.value))
    assert not [m for m in messages if "INTERNAL-ONLY" in m or "hunter2" in m], messages
    assert messages[0].endswith("401 Unauthorized") and messages[1].endswith("404 Not Found")
    assert "500 Internal Server Error" in messages[2] and "not JSON (content type text/html)" in messages[3]


def test_a_connector_cannot_loosen_its_clients_policy():
    from personalize.sync.outbound import OutboundPolicy

    http = HttpClient(policy=OutboundPolicy(provider_hosts=("api.hubapi.com",)))
    assert http.with_options(base_url="https://api.hubapi.com").policy is http.policy
    with pytest.raises(TypeError, match="set by the server"):
        http.with_options(policy=OutboundPolicy())
    assert http.session.trust_env is False, "no .netrc credentials or proxy variables are picked up"
