"""Group commit: concurrent event requests share transactions, and each still gets its own answer."""

from __future__ import annotations

import json
import threading
import urllib.request

from sqlalchemy import func, select

from personalize.db import db
from personalize.models import Event, Interaction
from personalize.recommend.data import VIEW


def post(url: str, key: str, events: list[dict]) -> dict:
    request = urllib.request.Request(
        f"{url}/api/v1/events", data=json.dumps({"key": key, "events": events}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return json.loads(response.read())


def test_concurrent_batches_are_stored_once_each_with_their_own_answers(app, site, live_server):
    def batch(n: int) -> list[dict]:
        return [
            {"id": f"gc-{n}-{i}", "type": "product_viewed", "visitor": f"gc-visitor-{n % 5}", "product_id": "run-shoe"}
            for i in range(5)
        ]

    def shoe_views() -> int:
        with app.app_context():
            db.session.remove()
            return db.session.scalar(select(func.count()).select_from(Interaction).where(Interaction.product_id == "run-shoe", Interaction.kind == VIEW))

    views_before = shoe_views()
    answers: dict[tuple[int, int], dict] = {}

    def client(n: int) -> None:
        answers[(n, 0)] = post(live_server.url, site.public_key, batch(n))
        answers[(n, 1)] = post(live_server.url, site.public_key, batch(n) + batch(n + 100))  # a retry plus new events

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    for n in range(12):
        assert answers[(n, 0)] == {"accepted": 5, "duplicates": 0}
        assert answers[(n, 1)] == {"accepted": 5, "duplicates": 5}
    with app.app_context():
        db.session.remove()
        stored = db.session.scalar(select(func.count()).select_from(Event).where(Event.event_id.like("gc-%")))
    assert stored == 12 * 10
    assert shoe_views() - views_before == 12 * 10  # each stored view became exactly one interaction


def test_a_batch_repeating_an_id_counts_it_once(client, site):
    event = {"id": "twice", "type": "product_viewed", "visitor": "v-twice", "product_id": "run-sock"}
    response = client.post("/api/v1/events", json={"key": site.public_key, "events": [event, event]})
    assert response.status_code == 202
    assert response.json == {"accepted": 1, "duplicates": 1}


def test_a_group_records_each_requests_own_device_facts(app, site, live_server):
    """Requests held until they form one group: each visitor's profile gets the facts of its own request."""
    import time

    from personalize.profiles import attributes_of, profile_for_visitor

    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"
    desktop = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"

    def send(n: int) -> None:
        body = {"key": site.public_key, "events": [{"id": f"df-{n}", "type": "page_viewed", "visitor": f"df-{n}"}]}
        headers = {"Content-Type": "application/json", "User-Agent": phone if n % 2 else desktop, "Accept-Language": "de-DE" if n % 2 else "en-GB"}
        request = urllib.request.Request(f"{live_server.url}/api/v1/events", data=json.dumps(body).encode(), headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202

    send(100)  # the process's batcher exists now
    batcher = app.extensions["personalize.event_batcher"]
    writer = batcher._writer[site.id]
    with writer:  # a write in progress: the next requests queue behind it
        threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(len(w.events) for w in batcher._queued.get(site.id, [])) < 6:
            time.sleep(0.01)
        assert sum(len(w.events) for w in batcher._queued.get(site.id, [])) == 6  # one group of six requests
    for t in threads:
        t.join()
    with app.app_context():
        db.session.remove()
        for n in range(6):
            attrs = {k: v["value"] for k, v in attributes_of(profile_for_visitor(site.id, f"df-{n}")).items()}
            expected = ("mobile", "ios", "de") if n % 2 else ("desktop", "windows", "en")
            assert (attrs.get("device"), attrs.get("os"), attrs.get("language")) == expected, (n, attrs)


PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def device_of(app, site, visitor: str) -> dict:
    from personalize.profiles import attributes_of, profile_for_visitor

    with app.app_context():
        db.session.remove()
        attrs = attributes_of(profile_for_visitor(site.id, visitor))
        return {k: (v["value"], v["source"]) for k, v in attrs.items() if k in ("device", "os", "browser", "language")}


def test_a_returning_visitor_who_changes_device_gets_the_new_facts(app, client, site):
    """The process remembers which facts a profile holds, but a different device is written at once."""
    for n, (agent, language, expected) in enumerate([
        (DESKTOP, "en-GB", {"device": ("desktop", "events"), "os": ("windows", "events"), "browser": ("chrome", "events"), "language": ("en", "events")}),
        (DESKTOP, "en-GB", None),  # the same again: nothing changes
        (PHONE, "fr-FR", {"device": ("mobile", "events"), "os": ("ios", "events"), "browser": ("safari", "events"), "language": ("fr", "events")}),
        (DESKTOP, "en-GB", {"device": ("desktop", "events"), "os": ("windows", "events"), "browser": ("chrome", "events"), "language": ("en", "events")}),
    ]):
        event = {"id": f"switch-{n}", "type": "page_viewed", "visitor": "v-switch"}
        response = client.post(
            "/api/v1/events", json={"key": site.public_key, "events": [event]}, headers={"User-Agent": agent, "Accept-Language": language}
        )
        assert response.status_code == 202 and response.json["accepted"] == 1
        if expected is not None:
            assert device_of(app, site, "v-switch") == expected, n
    assert device_of(app, site, "v-switch")["device"] == ("desktop", "events")


def test_a_new_visitor_seen_from_two_devices_in_one_group_keeps_the_later_facts(app, site, live_server):
    """Two requests of one group create the same visitor's profile: the facts written with the
    events are the first request's, and the second request's facts then replace them."""
    import time

    def send(n: int, agent: str, language: str, visitor: str = "v-two-devices") -> None:
        body = {"key": site.public_key, "events": [{"id": f"two-{n}", "type": "page_viewed", "visitor": visitor, "ts": int(time.time() * 1000)}]}
        headers = {"Content-Type": "application/json", "User-Agent": agent, "Accept-Language": language}
        request = urllib.request.Request(f"{live_server.url}/api/v1/events", data=json.dumps(body).encode(), headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202

    send(0, DESKTOP, "en-GB", "v-warm-up")  # the process's batcher exists now
    batcher = app.extensions["personalize.event_batcher"]
    with batcher._writer[site.id]:  # hold the writer: the next two requests form one group
        first = threading.Thread(target=send, args=(1, DESKTOP, "en-GB"))
        first.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(batcher._queued.get(site.id, [])) < 1:
            time.sleep(0.01)
        second = threading.Thread(target=send, args=(2, PHONE, "de-DE"))
        second.start()
        while time.monotonic() < deadline and len(batcher._queued.get(site.id, [])) < 2:
            time.sleep(0.01)
        assert len(batcher._queued.get(site.id, [])) == 2
    first.join()
    second.join()
    # one transaction created the profile and wrote the first request's facts; the later request's replace them
    facts = device_of(app, site, "v-two-devices")
    assert facts["device"] == ("mobile", "events") and facts["language"] == ("de", "events")
