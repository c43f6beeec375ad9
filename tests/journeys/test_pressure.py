"""Pressure and consent: no email without consent, the contact policy's caps, "not if
contacted lately", and quiet hours in the person's own time zone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from personalize.db import db
from personalize.journeys.batches import run_due
from personalize.journeys.email import Contact, email_consent
from personalize.journeys.models import JourneyStep
from personalize.journeys.pressure import next_local_time, quiet_until, zone
from personalize.profiles import ingest_events
from personalize.segments.policy import set_policy
from personalize.sites import get_site

from .support import EMAIL_STEP, T0, customer, journey, mail_settings

SIMPLE_EMAIL = {**EMAIL_STEP, "recommendations": 0}


def outcomes(step: str = "s1") -> dict[int, tuple[str, str, dict]]:
    return {pid: (state, outcome, detail) for pid, state, outcome, detail in db.session.execute(
        select(JourneyStep.profile_id, JourneyStep.state, JourneyStep.outcome, JourneyStep.detail).where(JourneyStep.step_id == step))}


def test_the_consent_rule():
    def c(email="a@b.example", orders=0, **attrs):
        return Contact(1, email, attrs, orders)

    assert email_consent(c(email=None), "opt_in") == "no email address"
    assert email_consent(c(email_consent=True), "opt_in") is None
    assert email_consent(c(email_status="subscribed"), "opt_in") is None, "Mailchimp's subscribed counts"
    assert email_consent(c(email_marketing="SUBSCRIBED"), "opt_in") is None, "Shopify's SUBSCRIBED counts"
    assert email_consent(c(), "opt_in") == "no consent to marketing email"
    assert email_consent(c(orders=2), "opt_in") is not None, "a customer has not opted in by ordering"
    assert email_consent(c(orders=2), "customers") is None, "unless the site chose the customers rule"
    assert email_consent(c(orders=2, email_marketing="UNSUBSCRIBED"), "customers").startswith("no consent")
    assert email_consent(c(email_consent=True, unsubscribed_email=True), "opt_in") == "unsubscribed"
    assert email_consent(c(email_consent=True, email_status="cleaned"), "opt_in").startswith("no consent")


def test_no_email_without_consent_and_the_cap_of_the_contact_policy(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    yes = customer(site, "yes-v", "yes@example.com")
    no = customer(site, "no-v", "no@example.com", consent=None)
    anonymous = customer(site, "anon-v", None, consent=True)
    capped = customer(site, "cap-v", "cap@example.com")
    set_policy(site.id, "email", {"per_day": 1, "per_week": None})
    from personalize.segments.policy import record

    record(site.id, capped, "email", clock.now)  # a connector's campaign reached them today
    journey(site.id, "j", {"trigger": {"type": "event", "event": "product_added"}, "control": 0, "steps": [{"id": "s1", **SIMPLE_EMAIL}]})
    ingest_events(site, [{"id": f"add-{v}", "type": "product_added", "visitor": f"{v}-v", "product_id": "tea-pot", "ts": T0}
                         for v in ("yes", "no", "anon", "cap")])
    run_due(now=clock.advance(seconds=1))
    got = outcomes()
    assert got[yes][1] == "acted"
    assert got[no][1:] == ("skipped_consent", {"reason": "no consent to marketing email"})
    assert got[anonymous][1:] == ("skipped_consent", {"reason": "no email address"})
    assert got[capped][1] == "skipped_cap" and "1 a day" in got[capped][2]["reason"]
    assert [m["to"] for m in smtp_server.mailbox.messages] == [["yes@example.com"]]
    # the email is counted: a second journey's email the same day is capped too
    journey(site.id, "k", {"trigger": {"type": "event", "event": "page_viewed"}, "control": 0, "steps": [{"id": "t1", **SIMPLE_EMAIL}]})
    ingest_events(site, [{"id": "yes-pv", "type": "page_viewed", "visitor": "yes-v", "ts": T0 + 5}])
    run_due(now=clock.advance(seconds=1))
    assert outcomes("t1")[yes][1] == "skipped_cap"
    assert len(smtp_server.mailbox.messages) == 1


def test_skip_if_contacted_in_the_last_hours(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    ann = customer(site, "ann-v", "ann@example.com")
    bob = customer(site, "bob-v", "bob@example.com")
    from personalize.segments.policy import record

    record(site.id, ann, "sms", clock.now)  # contacted on any channel counts
    journey(site.id, "j", {"trigger": {"type": "event", "event": "product_added"}, "control": 0, "limits": {"recent_hours": 24},
                           "steps": [{"id": "s1", **SIMPLE_EMAIL}]})
    ingest_events(site, [{"id": f"add-{v}", "type": "product_added", "visitor": f"{v}-v", "product_id": "tea-pot", "ts": T0} for v in ("ann", "bob")])
    run_due(now=clock.advance(seconds=1))
    got = outcomes()
    assert got[ann][1] == "skipped_recent" and got[bob][1] == "acted"


def test_quiet_hours_delay_the_action_to_their_end_in_the_persons_time_zone(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server, timezone="UTC")
    # the time of day it is now in UTC decides who is inside quiet hours: pick zones around it
    now = clock.now
    hour = now.hour
    start, end = f"{hour:02d}:00", f"{(hour + 2) % 24:02d}:00"  # quiet now in UTC
    tokyo = customer(site, "far-v", "far@example.com", timezone="Pacific/Kiritimati")  # UTC+14: outside
    local = customer(site, "utc-v", "utc@example.com")
    journey(site.id, "j", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                           "limits": {"quiet_start": start, "quiet_end": end}, "steps": [{"id": "s1", **SIMPLE_EMAIL}]})
    ingest_events(site, [{"id": f"add-{v}", "type": "product_added", "visitor": f"{v}-v", "product_id": "tea-pot", "ts": T0} for v in ("far", "utc")])
    run_due(now=clock.advance(seconds=1))
    got = outcomes()
    assert got[tokyo][1] == "acted"
    state, outcome, detail = got[local]
    assert (state, outcome, detail["delayed"]) == ("due", "", "quiet hours")
    due = db.session.scalar(select(JourneyStep.due_at).where(JourneyStep.profile_id == local))
    assert due.hour == (hour + 2) % 24 and due.minute == 0
    run_due(now=due)
    assert outcomes()[local][1] == "acted"


def test_local_times_and_quiet_windows_across_midnight_and_daylight_saving():
    paris = zone("Europe/Paris")
    # 2026-03-29: clocks go from 02:00 to 03:00 in Paris; 02:30 does not exist that day
    assert next_local_time(datetime(2026, 3, 28, 23, 0), "02:30", paris) == datetime(2026, 3, 29, 1, 30)
    assert next_local_time(datetime(2026, 7, 1, 6, 0), "09:00", paris) == datetime(2026, 7, 1, 7, 0)
    assert next_local_time(datetime(2026, 7, 1, 8, 0), "09:00", paris) == datetime(2026, 7, 2, 7, 0)
    window = {"quiet_start": "21:00", "quiet_end": "08:00"}
    assert quiet_until(datetime(2026, 7, 1, 20, 30), window, paris) == datetime(2026, 7, 2, 6, 0)  # 22:30 in Paris
    assert quiet_until(datetime(2026, 7, 1, 12, 0), window, paris) is None
    assert zone("Not/AZone") is None and zone("../../etc/passwd") is None
