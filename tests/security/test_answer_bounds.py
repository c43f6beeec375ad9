"""Every answer the server reads is bounded in time and size, whatever the remote side does:
a body dripped one byte at a time, a body that never ends, a gzip bomb, a huge error page.
The hostile servers are in tests/security/hostile.py."""

from __future__ import annotations

import threading
import time
import tracemalloc

import pytest

from personalize.connectors import HttpAuthError, HttpStatusError, TransientError
from personalize.sync.http import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BYTES,
    DeadlineExceeded,
    HttpClient,
    ResponseTooLarge,
)
from personalize.sync.testing import local_policy

from .hostile import MB, Hostile, declared, drip, drip_headers, endless, gzip_bomb, status


def client(**options) -> HttpClient:
    options = {"timeout": (2.0, 2.0), "max_retries": 1, "backoff": 0.01, **options}
    return HttpClient(policy=local_policy(), **options)


@pytest.fixture
def hostile():
    with Hostile() as server:
        yield server


def test_defaults_bound_every_client():
    http = HttpClient()
    assert http.deadline == DEFAULT_DEADLINE == 300 and http.max_bytes == DEFAULT_MAX_BYTES == 32 * MB
    assert http.with_options(base_url="https://x.example").max_bytes == 32 * MB
    with pytest.raises(ValueError, match="deadline"):
        HttpClient(deadline=0)
    with pytest.raises(ValueError, match="max_bytes"):
        HttpClient(max_bytes=-1)


@pytest.mark.parametrize("behaviour", ["no length", "with length", "headers"])
def test_a_dripping_answer_ends_at_the_deadline(hostile, behaviour):
    # each byte comes well inside the 2 s read timeout: only the deadline stops it
    hostile.on("/drip", {"no length": drip(every=0.3), "with length": drip(every=0.3, length=10_000),
                         "headers": drip_headers(every=0.3)}[behaviour])
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"/drip: no complete answer within 1.5 s") as caught:
        client(deadline=1.5).request("GET", hostile.url + "/drip")
    took = time.monotonic() - started
    assert 1.4 < took < 3.0, took
    assert isinstance(caught.value, TransientError)  # a sync checkpoints and tries later; a webhook step backs off


def test_the_deadline_covers_retries_and_their_waits(hostile):
    hostile.on("/busy", status(503, b"{}", {"Retry-After": "1"}))
    started = time.monotonic()
    with pytest.raises(TransientError, match="deadline"):
        client(deadline=2.5, max_retries=10, max_wait=100).request("GET", hostile.url + "/busy")
    assert time.monotonic() - started < 3.0
    assert 2 <= hostile.hits["/busy"] <= 3


def test_many_calls_share_one_watchdog_thread(hostile):
    hostile.on("/drip", drip(every=0.2))
    errors = []

    def call():
        try:
            client(deadline=1.0).request("GET", hostile.url + "/drip")
        except DeadlineExceeded as exc:
            errors.append(exc)

    before = threading.active_count()
    workers = [threading.Thread(target=call) for _ in range(20)]
    for w in workers:
        w.start()
    time.sleep(0.5)
    watchdogs = [t for t in threading.enumerate() if t.name == "http-deadlines"]
    during = threading.active_count()
    for w in workers:
        w.join(10)
    assert len(errors) == 20 and len(watchdogs) == 1
    assert during <= before + 20 + 20 + 1  # the callers, the server's handlers and at most one watchdog


def test_an_endless_body_is_cut_at_max_bytes_with_bounded_memory(hostile):
    hostile.on("/page", endless())
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge) as caught:
            client(max_bytes=2 * MB).request("GET", hostile.url + "/page?api_key=secret1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert "/page" in message and "2,097,152 bytes" in message and "secret1" not in message
    assert caught.value.limit == 2 * MB and caught.value.status == 200
    assert peak < 8 * MB, peak


def test_a_gzip_bomb_is_cut_after_decompression_with_bounded_memory(hostile):
    # 4 GB of zeros in about 4 MB of gzip: the limit counts unpacked bytes, read 64 KB at a time
    hostile.on("/bomb", gzip_bomb(unpacked=4096 * MB))
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge, match="1,048,576 bytes"):
            client(max_bytes=1 * MB).request("GET", hostile.url + "/bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # urllib3 2.5 unpacked a whole read's worth at once (hundreds of MB); >= 2.6 stays near the limit
    assert peak < 8 * MB, peak


def test_a_declared_length_over_the_limit_is_refused_before_reading(hostile):
    hostile.on("/big", declared(200, 10 * 1024 * MB))
    started = time.monotonic()
    with pytest.raises(ResponseTooLarge):
        client(max_bytes=MB).request("GET", hostile.url + "/big")
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(("code", "error"), [(404, HttpStatusError), (401, HttpAuthError), (500, TransientError), (429, TransientError)])
def test_an_oversize_error_answer_is_cut_and_handled_by_its_status(hostile, code, error):
    hostile.on("/err", endless(code))
    with pytest.raises(error) as caught:
        client(max_bytes=MB, max_retries=1).request("GET", hostile.url + "/err")
    assert not isinstance(caught.value, ResponseTooLarge)
    assert hostile.hits["/err"] == (2 if code in (500, 429) else 1)  # retried as any 5xx/429 is


def test_a_connector_may_ask_for_more_for_one_request(hostile):
    body = b"x" * (3 * MB)
    hostile.on("/export.jsonl", status(200, body))
    http = client(max_bytes=MB)
    with pytest.raises(ResponseTooLarge):
        http.request("GET", hostile.url + "/export.jsonl")
    assert len(http.request("GET", hostile.url + "/export.jsonl", max_bytes=4 * MB).content) == len(body)
    assert len(http.with_options(max_bytes=4 * MB).request("GET", hostile.url + "/export.jsonl").content) == len(body)


def test_an_ordinary_answer_is_whole(hostile):
    hostile.on("/ok", status(200, b'{"ok": true}'))
    assert client().get_json(hostile.url + "/ok") == {"ok": True}


def test_a_dripping_product_picture_is_given_up_after_ten_seconds(ctx, hostile, monkeypatch):
    from personalize.sync import recommendations
    from personalize.sync.recommendations import fetch_thumbnails

    assert recommendations.PICTURE_SECONDS == 10
    monkeypatch.setattr(recommendations, "PICTURE_SECONDS", 1.5)  # the same path, without waiting ten seconds
    hostile.on("/img/drip.jpg", drip(every=0.3)).on("/img/bomb.jpg", gzip_bomb(unpacked=1024 * MB))
    started = time.monotonic()
    outcome = fetch_thumbnails([hostile.url + "/img/drip.jpg", hostile.url + "/img/bomb.jpg"])
    assert outcome == {hostile.url + "/img/drip.jpg": "DeadlineExceeded", hostile.url + "/img/bomb.jpg": "too large"}
    assert time.monotonic() - started < 4
