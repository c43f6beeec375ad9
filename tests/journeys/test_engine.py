"""The engine end to end: people enter on events and segments, wait, branch, get an email
through a real SMTP server, reach the goal, and the control group gets nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from personalize.db import db
from personalize.journeys.batches import run_due
from personalize.journeys.models import JourneyEnrollment, JourneyStep
from personalize.profiles import ingest_events
from personalize.segments.store import create_segment
from personalize.sites import get_site

from .support import EMAIL_STEP, T0, customer, journey, mail_settings


def steps_of(pid: int) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in db.session.execute(
        select(JourneyStep.step_id, JourneyStep.state, JourneyStep.outcome).where(JourneyStep.profile_id == pid).order_by(JourneyStep.id)
    )]


def test_cart_abandonment_waits_branches_and_emails(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    ann = customer(site, "ann-v", "ann@example.com", first_name="Ann")
    bob = customer(site, "bob-v", "bob@example.com", first_name="Bob")
    definition = {
        "trigger": {"type": "event", "event": "product_added"},
        "reentry": {"mode": "every_time"},
        "control": 0,
        "steps": [
            {"id": "s1", "type": "wait", "seconds": 3600},
            {"id": "s2", "type": "branch", "rule": {"field": "attributes.vip", "op": "eq", "value": True},
             "branches": {"yes": [{"id": "s3", "type": "exit"}], "no": [{"id": "s4", **EMAIL_STEP}]}},
        ],
    }
    journey(site.id, "cart", definition)
    ingest_events(site, [
        {"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10},
        {"id": "bob-add", "type": "product_added", "visitor": "bob-v", "product_id": "tea-pot", "ts": T0 + 10},
    ])
    assert steps_of(ann) == [("s1", "due", "")], "the first step is stored at once, due in an hour"
    assert run_due(now=clock.now).claimed == 0, "nothing is due before the hour"
    from personalize.profiles import set_attributes

    set_attributes(site.id, bob, {"vip": True}, "test")
    summary = run_due(now=clock.advance(hours=1, seconds=1))
    assert summary.claimed == 2 and summary.acted == 1, summary
    assert steps_of(ann) == [("s1", "done", "waited"), ("s2", "done", "no"), ("s4", "done", "acted")]
    assert steps_of(bob) == [("s1", "done", "waited"), ("s2", "done", "yes"), ("s3", "done", "exited")]
    [msg] = smtp_server.mailbox.to("ann@example.com")
    assert msg["Subject"] == "Hello Ann"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<https://reco.shop.example/email/unsubscribe/")
    assert not smtp_server.mailbox.to("bob@example.com")
    statuses = dict(db.session.execute(select(JourneyEnrollment.profile_id, JourneyEnrollment.status)).all())
    assert statuses == {ann: "completed", bob: "exited"}
    assert run_due(now=clock.advance(hours=5)).claimed == 0
    assert len(smtp_server.mailbox.messages) == 1, "a step acts once"


def test_goal_reached_while_waiting_ends_the_entry_without_an_email(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    ann = customer(site, "ann-v", "ann@example.com")
    cat = customer(site, "cat-v", "cat@example.com", customer_id="cust-cat")
    journey(site.id, "cart", {
        "trigger": {"type": "event", "event": "product_added"}, "control": 0,
        "steps": [{"id": "s1", "type": "wait", "seconds": 3600}, {"id": "s2", **EMAIL_STEP}],
    })
    ingest_events(site, [
        {"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10},
        {"id": "cat-add", "type": "product_added", "visitor": "cat-v", "product_id": "run-shoe", "ts": T0 + 10},
    ])
    # Ann orders from the widget: the notification ends her entry at once
    ingest_events(site, [{"id": "ann-buy", "type": "order_completed", "visitor": "ann-v", "order_id": "A1", "ts": T0 + 20,
                          "items": [{"product_id": "run-shoe", "quantity": 1, "price": 120.0}]}])
    assert steps_of(ann) == [("s1", "done", "goal")]
    # Cat's order comes from a connector (no event, no notification): the runner checks before the next step
    from datetime import timedelta

    from personalize.profiles import import_orders
    from personalize.records import OrderLine, OrderRecord

    import_orders(site.id, [OrderRecord("C1", clock.now + timedelta(minutes=30), (OrderLine("run-shoe", 1, 120.0),), customer_id="cust-cat")])
    run_due(now=clock.advance(hours=2))
    assert steps_of(cat) == [("s1", "done", "goal")]
    assert smtp_server.mailbox.messages == []
    rows = dict(db.session.execute(select(JourneyEnrollment.profile_id, JourneyEnrollment.status)).all())
    assert rows == {ann: "goal", cat: "goal"}


def test_control_group_enters_but_gets_no_action(inline, trained, smtp_server, clock):
    from personalize.journeys.triggers import in_control

    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    people = {customer(site, f"p{i}-v", f"p{i}@example.com"): f"p{i}@example.com" for i in range(40)}
    j = journey(site.id, "welcome", {"trigger": {"type": "event", "event": "page_viewed"}, "control": 30, "reentry": {"mode": "once"},
                                     "steps": [{"id": "s1", **EMAIL_STEP}]})
    ingest_events(site, [{"id": f"pv{i}", "type": "page_viewed", "visitor": f"p{i}-v", "ts": T0 + 50} for i in range(40)])
    run_due(now=clock.now)
    control = {pid for pid in people if in_control(j.id, pid, 30)}
    assert 0 < len(control) < 40
    stored = dict(db.session.execute(select(JourneyEnrollment.profile_id, JourneyEnrollment.control)).all())
    assert {pid for pid, c in stored.items() if c} == control, "the control group is the hashed share, the same every time"
    mailed = {m["to"][0] for m in smtp_server.mailbox.messages}
    assert mailed == {people[p] for p in people if p not in control}
    outcomes = dict(db.session.execute(select(JourneyStep.profile_id, JourneyStep.outcome)).all())
    assert {outcomes[p] for p in control} == {"control"}


def test_segment_trigger_and_leaving_the_segment(inline, trained, smtp_server, clock):
    from personalize.profiles import set_attributes

    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    create_segment(site.id, {"key": "gold", "name": "Gold", "rule": {"field": "attributes.tier", "op": "eq", "value": "gold"}})
    ann = customer(site, "ann-v", "ann@example.com")
    bob = customer(site, "bob-v", "bob@example.com")
    journey(site.id, "gold-welcome", {
        "trigger": {"type": "segment_entered", "segment": "gold"}, "control": 0,
        "steps": [{"id": "s1", "type": "wait", "seconds": 86400}, {"id": "s2", **EMAIL_STEP}],
    })
    set_attributes(site.id, ann, {"tier": "gold"}, "crm")
    set_attributes(site.id, bob, {"tier": "gold"}, "crm")
    assert steps_of(ann) == [("s1", "due", "")] and steps_of(bob) == [("s1", "due", "")]
    set_attributes(site.id, bob, {"tier": "silver"}, "crm")  # Bob leaves the segment: on_segment_exit is the default
    assert steps_of(bob) == [("s1", "done", "exited")]
    run_due(now=clock.advance(days=1, seconds=1))
    assert [m["to"] for m in smtp_server.mailbox.messages] == [["ann@example.com"]]


def test_wait_for_an_event_with_a_time_out(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    ann = customer(site, "ann-v", "ann@example.com")
    bob = customer(site, "bob-v", "bob@example.com")
    journey(site.id, "viewers", {
        "trigger": {"type": "event", "event": "product_viewed"}, "control": 0, "goal": {"type": "none"},
        "steps": [{"id": "s1", "type": "wait_event", "event": "product_added", "seconds": 3 * 86400,
                   "branches": {"received": [{"id": "s2", "type": "set_attribute", "name": "added_after_view", "value": True}],
                                "timeout": [{"id": "s3", **EMAIL_STEP}]}}],
    })
    ingest_events(site, [{"id": f"{v}-view", "type": "product_viewed", "visitor": f"{v}-v", "product_id": "tea-pot", "ts": T0 + 10}
                         for v in ("ann", "bob")])
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "tea-pot", "ts": T0 + 20}])
    run_due(now=clock.advance(seconds=1))  # Ann's wait was answered: she moves on now
    assert steps_of(ann)[:2] == [("s1", "done", "received"), ("s2", "done", "acted")]
    from personalize.profiles import attributes_of

    assert attributes_of(ann)["added_after_view"]["value"] is True
    assert steps_of(bob) == [("s1", "due", "")]
    run_due(now=clock.advance(days=3))
    assert steps_of(bob) == [("s1", "done", "timed_out"), ("s3", "done", "acted")]
    assert [m["to"] for m in smtp_server.mailbox.messages] == [["bob@example.com"]]


def test_reentry_once_every_time_and_cooldown(inline, trained, clock):
    site = get_site(trained.id)
    ann = customer(site, "ann-v", "ann@example.com")
    for key, reentry in (("once", {"mode": "once"}), ("every", {"mode": "every_time"}), ("cool", {"mode": "cooldown", "days": 7})):
        journey(site.id, key, {"trigger": {"type": "event", "event": "product_viewed"}, "reentry": reentry, "control": 0,
                               "steps": [{"id": "s1", "type": "set_attribute", "name": f"seen_{key}", "value": 1}]})
    for n in range(3):
        ingest_events(site, [{"id": f"view-{n}", "type": "product_viewed", "visitor": "ann-v", "product_id": "tea-pot", "ts": T0 + n}])
        run_due(now=clock.advance(seconds=1))
    from personalize.journeys.models import Journey

    counts = dict(db.session.execute(
        select(Journey.key, func.count()).join(JourneyEnrollment, JourneyEnrollment.journey_id == Journey.id)
        .where(JourneyEnrollment.profile_id == ann).group_by(Journey.key)
    ).all())
    assert counts == {"once": 1, "every": 3, "cool": 1}
