"""A webhook receiver that answers hugely or slowly cannot hold a journey runner: a huge 2xx
answer is a delivery (acted, with a note, never retried); a slow one ends at
JOURNEY_WEBHOOK_SECONDS and goes the way of a 5xx (tried again later with a growing delay)."""

from __future__ import annotations

import time

from sqlalchemy import select

from personalize.db import db
from personalize.journeys.batches import run_due
from personalize.journeys.models import JourneyStep
from personalize.profiles import ingest_events
from personalize.sites import get_site
from security.hostile import Hostile, drip, endless, sequence, status

from .support import T0, customer, journey


def _hook(site, url):
    customer(site, "ann-v", "ann@example.com")
    journey(site.id, "hook", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                              "steps": [{"id": "s1", "type": "webhook", "url": url}]})
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10}])


def test_a_huge_2xx_answer_is_a_delivery_with_a_note(inline, trained, clock):
    site = get_site(trained.id)
    with Hostile() as server:
        server.on("/hook", endless(200))
        _hook(site, server.url + "/hook")
        started = time.monotonic()
        run_due(now=clock.advance(seconds=1), sleep=lambda s: None)
        assert time.monotonic() - started < 10
        state, outcome, detail = db.session.execute(select(JourneyStep.state, JourneyStep.outcome, JourneyStep.detail)).one()
        assert (state, outcome) == ("done", "acted") and detail["status"] == 200
        assert "longer than 1,000,000 bytes" in detail["note"]
        assert server.hits["/hook"] == 1
        assert run_due(now=clock.advance(hours=2)).claimed == 0, "never tried again"


def test_a_slow_receiver_times_out_and_backs_off_then_delivers(inline, trained, clock):
    site = get_site(trained.id)
    inline.config["JOURNEY_WEBHOOK_SECONDS"] = 1.5
    with Hostile() as server:
        # one byte every 0.3 s: inside every read timeout, never done; then a plain 200
        server.on("/hook", sequence(drip(every=0.3), status(200, b"{}")))
        _hook(site, server.url + "/hook")
        started = time.monotonic()
        run_due(now=clock.advance(seconds=1), sleep=lambda s: None)
        took = time.monotonic() - started
        assert took < 5, took
        state, due, detail = db.session.execute(select(JourneyStep.state, JourneyStep.due_at, JourneyStep.detail)).one()
        assert state == "due" and detail["retries"] == 1 and "1.5 s" in detail["error"]
        assert (due - clock.now).total_seconds() > 30, "tried again later, not at once"
        run_due(now=clock.advance(minutes=2), sleep=lambda s: None)
        assert db.session.scalar(select(JourneyStep.outcome)) == "acted"


def test_a_huge_error_answer_is_cut_and_retried_as_its_status_says(inline, trained, clock):
    site = get_site(trained.id)
    with Hostile() as server:
        server.on("/hook", endless(503))
        _hook(site, server.url + "/hook")
        run_due(now=clock.advance(seconds=1), sleep=lambda s: None)
        state, detail = db.session.execute(select(JourneyStep.state, JourneyStep.detail)).one()
        assert state == "due" and "503" in detail["error"]
