"""A noisy neighbour: one site floods a live server from many threads while another site's shop keeps working.

The quiet site's requests during the flood must all succeed (never a 429: limits are per site and per address,
not global); the noisy site must be held at its limit with 429 + Retry-After in the API's error shape, and
every event it was told were accepted must be stored (nothing refused is stored, nothing accepted lost).
No timing is asserted here; bench/bench_noisy.py measures the quiet site's latency with and without a flood.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
from sqlalchemy import func, select

from personalize.app import create_app
from personalize.db import db
from personalize.models import Event
from personalize.testing import app_config, serve_in_thread

NOISY_SITE_LIMIT = 120  # requests a minute for the noisy site's public key
NOISY_IP_LIMIT = 400  # requests a minute from one address
FLOOD_THREADS = 8
QUIET_REQUESTS = 40


@pytest.fixture
def proxied_app(tmp_path, app):
    """The test app's database behind one trusted proxy, so each test client can have an address of its own."""
    served = create_app(app_config(tmp_path / "proxied", app.config["DATABASE_URL"], AUTO_MIGRATE=False, TRUSTED_PROXIES=1))
    served.config.update(RATE_LIMIT_PER_SITE=NOISY_SITE_LIMIT, RATE_LIMIT_PER_IP=NOISY_IP_LIMIT, RATE_LIMIT_PER_SECRET_KEY=1000)
    yield served
    with served.app_context():
        db.session.remove()
        db.engine.dispose()


def test_one_site_flooding_does_not_limit_another(proxied_app, site):
    from personalize.sites import create_site

    with proxied_app.app_context():
        quiet, _secret = create_site("Quiet shop", [])
        quiet_key = quiet.public_key
        quiet_id = quiet.id
    if time.time() % 60 > 40:  # the counters start afresh each minute: run the flood inside one window
        time.sleep(60.5 - time.time() % 60)

    stop = threading.Event()
    lock = threading.Lock()
    noisy = {"2xx": 0, "429": [], "other": [], "accepted": []}

    def flood(n: int) -> None:
        session = requests.Session()
        # two flooding addresses per thread pair: the per-address limit and the per-site limit both get hit
        headers = {"X-Forwarded-For": f"203.0.113.{n % 2 + 1}"}
        i = 0
        deadline = time.monotonic() + 40  # bounded even if the quiet side stalls
        while not stop.is_set() and time.monotonic() < deadline:
            i += 1
            if i % 2:
                r = session.get(f"{server.url}/api/v1/recommendations", params={"key": site.public_key, "visitor": f"n{n}"}, headers=headers, timeout=30)
                ids = []
            else:
                ids = [f"noisy-{n}-{i}-{j}" for j in range(5)]
                events = [{"id": eid, "type": "page_viewed", "visitor": f"n{n}"} for eid in ids]
                r = session.post(f"{server.url}/api/v1/events", json={"key": site.public_key, "events": events}, headers=headers, timeout=30)
            with lock:
                if 200 <= r.status_code < 300:
                    noisy["2xx"] += 1
                    noisy["accepted"].extend(ids)
                elif r.status_code == 429:
                    noisy["429"].append((r.headers.get("Retry-After"), r.json()))
                else:
                    noisy["other"].append((r.status_code, r.text[:200]))
        session.close()

    with serve_in_thread(proxied_app) as server:
        threads = [threading.Thread(target=flood, args=(n,), daemon=True) for n in range(FLOOD_THREADS)]
        for t in threads:
            t.start()
        # the quiet shop's visitors, from their own address, while the flood runs
        quiet_codes = []
        session = requests.Session()
        headers = {"X-Forwarded-For": "198.51.100.20"}
        while len(noisy["429"]) == 0 and any(t.is_alive() for t in threads):
            time.sleep(0.05)  # start measuring once the flood is being refused
        for i in range(QUIET_REQUESTS):
            if i % 2:
                r = session.get(f"{server.url}/api/v1/recommendations", params={"key": quiet_key, "visitor": f"q{i}"}, headers=headers, timeout=30)
            else:
                event = {"id": f"quiet-{i}", "type": "page_viewed", "visitor": f"q{i}"}
                r = session.post(f"{server.url}/api/v1/events", json={"key": quiet_key, "events": [event]}, headers=headers, timeout=30)
            quiet_codes.append(r.status_code)
        flood_alive_during_quiet = any(t.is_alive() for t in threads)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        session.close()

    assert all(200 <= c < 300 for c in quiet_codes), quiet_codes
    assert len(quiet_codes) == QUIET_REQUESTS
    assert flood_alive_during_quiet, "the quiet site's requests ran while the flood went on"
    assert noisy["other"] == [], noisy["other"][:3]
    assert noisy["429"], "the flood was never limited"
    for retry_after, body in noisy["429"]:
        assert retry_after is not None and retry_after.isdigit() and 1 <= int(retry_after) <= 120
        error = body["error"]
        assert error["code"] == "rate_limited" and ("RATE_LIMIT_PER_SITE" in error["message"] or "RATE_LIMIT_PER_IP" in error["message"])
    # the site's limit held: no more answered than allowed in the window
    assert noisy["2xx"] <= NOISY_SITE_LIMIT
    with proxied_app.app_context():
        stored = set(db.session.scalars(select(Event.event_id).where(Event.site_id == site.id, Event.event_id.like("noisy-%"))))
        assert stored == set(noisy["accepted"]), "events answered 2xx are stored, refused ones are not"
        assert db.session.scalar(select(func.count()).select_from(Event).where(Event.site_id == quiet_id, Event.event_id.like("quiet-%"))) == QUIET_REQUESTS // 2
