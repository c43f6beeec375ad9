"""What leaves the server: emails as the SMTP server received them (headers, links, tokens,
unsubscribe) and signed webhooks as the receiver got them, retried with back-off."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from personalize.db import db
from personalize.journeys.batches import run_due
from personalize.journeys.models import JourneyStep
from personalize.journeys.webhooks import verify, webhook_secret
from personalize.profiles import ingest_events
from personalize.profiles.trust import read_token
from personalize.sites import get_site

from .support import EMAIL_STEP, T0, customer, journey, mail_settings


def _html(msg) -> str:
    return msg.get_body(("html",)).get_content()


def test_email_carries_own_recommendations_signed_links_and_one_click_unsubscribe(inline, trained, smtp_server, clock, client):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server, postal_address="1 Shop Street, Town")
    ingest_events(site, [{"id": f"ann-view-{p}", "type": "product_viewed", "visitor": "ann-v", "product_id": p, "ts": T0 + i}
                         for i, p in enumerate(("run-shoe", "run-sock"))])
    ann = customer(site, "ann-v", "ann@example.com", first_name="Ann")
    journey(site.id, "cross-sell", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                                     "steps": [{"id": "s1", **EMAIL_STEP}]})
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10}])
    run_due(now=clock.advance(seconds=1))
    [msg] = smtp_server.mailbox.to("ann@example.com")
    key = db.session.scalar(select(JourneyStep.idempotency_key).where(JourneyStep.profile_id == ann, JourneyStep.step_id == "s1"))
    assert msg["Message-ID"] == f"<{key}@shop.example>", "the Message-ID is the step's idempotency key"
    assert msg["From"] == "The Shop <shop@shop.example>"
    html = _html(msg)
    links = re.findall(r'href="(https://shop\.example/p/[^"]+)"', html)
    assert links, html
    rec_ids = set()
    for link in links:
        query = parse_qs(urlsplit(link.replace("&amp;", "&")).query)
        rec_ids.add(query["pz_rec"][0])
        person = read_token(site.id, query["pz_token"][0])
        assert person is not None and person.email == "ann@example.com", "each link names the person with a token the site accepts"
        assert query["utm_campaign"] == ["cross-sell"]
    detail = db.session.scalar(select(JourneyStep.detail).where(JourneyStep.profile_id == ann, JourneyStep.step_id == "s1"))
    assert rec_ids == {detail["rec_id"]} and detail["rec_id"].startswith("r_")
    assert "run-shoe" not in detail["items"] or len(detail["items"]) <= 3
    assert "1 Shop Street, Town" in html and "Unsubscribe" in html
    assert "Hi Ann!" in msg.get_body(("plain",)).get_content()
    # RFC 8058 one-click: a POST to the List-Unsubscribe address, no cookie, no form token
    url = msg["List-Unsubscribe"].strip("<>")
    path = urlsplit(url).path
    r = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200
    from personalize.profiles import attributes_of

    assert attributes_of(ann)["unsubscribed_email"]["value"] is True
    # the next email of any journey is skipped: consent is checked at every action
    ingest_events(site, [{"id": "ann-add-2", "type": "product_added", "visitor": "ann-v", "product_id": "tea-pot", "ts": T0 + 20}])
    run_due(now=clock.advance(seconds=1))
    assert len(smtp_server.mailbox.to("ann@example.com")) == 1


def test_unsubscribe_page_asks_first_and_refuses_forged_tokens(inline, trained, client):
    from personalize.journeys.email import unsubscribe_token

    site = get_site(trained.id)
    ann = customer(site, "ann-v", "ann@example.com")
    token = unsubscribe_token(site.id, ann)
    page = client.get(f"/email/unsubscribe/{token}")
    assert page.status_code == 200 and b"<form" in page.data, "a GET (a mail scanner following links) changes nothing"
    from personalize.profiles import attributes_of

    assert "unsubscribed_email" not in attributes_of(ann)
    body, mac = token.split(".")
    for forged in (body + "." + mac[:-2] + "AA", "x.y", "a" * 400, token + "x"):
        r = client.post(f"/email/unsubscribe/{forged}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 404, forged
    assert "unsubscribed_email" not in attributes_of(ann)
    r = client.post(f"/email/unsubscribe/{token}")
    assert r.status_code == 200 and b"unsubscribed" in r.data.lower()
    assert attributes_of(ann)["unsubscribed_email"]["value"] is True


def test_template_sandbox_refuses_reaching_into_python(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    customer(site, "ann-v", "ann@example.com")
    journey(site.id, "evil", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                              "steps": [{"id": "s1", "type": "email", "subject": "x",
                                         "html": "{{ contact.__class__.__init__.__globals__ }}", "recommendations": 0}]})
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10}])
    run_due(now=clock.advance(seconds=1))
    assert smtp_server.mailbox.messages == []
    state, detail = db.session.execute(select(JourneyStep.state, JourneyStep.detail)).one()
    assert state == "due" and "unsafe" in detail["error"], "a template error is retried later (a fixed version takes over)"


def test_refused_recipient_fails_the_step_and_the_journey_goes_on(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    ann = customer(site, "ann-v", "ann@example.com")
    smtp_server.mailbox.refuse.add("ann@example.com")
    journey(site.id, "j", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                           "steps": [{"id": "s1", **EMAIL_STEP}, {"id": "s2", "type": "set_attribute", "name": "after", "value": "yes"}]})
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10}])
    run_due(now=clock.advance(seconds=1))
    run_due(now=clock.now)  # the step after an action is due at once; the next batch takes it
    rows = db.session.execute(select(JourneyStep.step_id, JourneyStep.outcome).where(JourneyStep.profile_id == ann).order_by(JourneyStep.id)).all()
    assert [tuple(r) for r in rows] == [("s1", "failed"), ("s2", "acted")]


def test_webhook_is_signed_carries_an_idempotency_key_and_is_retried_with_back_off(inline, trained, receiver, clock):
    site = get_site(trained.id)
    ann = customer(site, "ann-v", "ann@example.com")
    journey(site.id, "hook", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                              "steps": [{"id": "s1", "type": "webhook", "url": receiver.url, "fields": {"campaign": "spring"}}]})
    receiver.answers = [503, 503, 503]  # the quick retries of one attempt are spent: the step waits
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10}])
    sleeps: list[float] = []
    run_due(now=clock.advance(seconds=1), sleep=sleeps.append)
    assert len(receiver.deliveries) == 3 and sleeps, "one attempt: the request and the client's two quick retries"
    state, due, detail = db.session.execute(select(JourneyStep.state, JourneyStep.due_at, JourneyStep.detail)).one()
    assert state == "due" and detail["retries"] == 1 and "503" in detail["error"]
    assert (due - clock.now).total_seconds() > 30, "the step is tried again later, not at once"
    assert run_due(now=clock.now, sleep=sleeps.append).claimed == 0
    run_due(now=clock.advance(minutes=2), sleep=sleeps.append)
    assert db.session.scalar(select(JourneyStep.outcome)) == "acted"
    keys = set(receiver.keys())
    assert len(keys) == 1, "every attempt carries the same Idempotency-Key"
    secret = webhook_secret(site.id, inline.config)
    last = receiver.deliveries[-1]
    assert verify(secret, last["body"], last["headers"]["X-Personalize-Signature"])
    assert not verify(secret, last["body"] + b" ", last["headers"]["X-Personalize-Signature"])
    assert last["json"]["profile"]["id"] == ann and last["json"]["profile"]["identities"]["email"] == "ann@example.com"
    assert last["json"]["fields"] == {"campaign": "spring"} and last["json"]["data"]["product_id"] == "run-shoe"


@pytest.mark.parametrize("status", [400, 404, 410])
def test_webhook_refused_for_good_fails_without_retrying(inline, trained, receiver, clock, status):
    site = get_site(trained.id)
    customer(site, "ann-v", "ann@example.com")
    journey(site.id, "hook", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                              "steps": [{"id": "s1", "type": "webhook", "url": receiver.url}]})
    receiver.answers = [status]
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10}])
    run_due(now=clock.advance(seconds=1))
    assert db.session.execute(select(JourneyStep.state, JourneyStep.outcome)).one() == ("done", "failed")
    assert len(receiver.deliveries) == 1


def test_record_mode_keeps_each_email_on_its_step_and_sends_nothing(inline, trained, smtp_server, clock):
    from personalize.journeys.email import save_settings

    site = get_site(trained.id)
    save_settings(site.id, {"delivery": "record", "timezone": "UTC"}, inline.config)  # no SMTP server at all
    ann = customer(site, "ann-v", "ann@example.com", first_name="Ann")
    journey(site.id, "try", {"trigger": {"type": "event", "event": "product_added"}, "control": 0, "steps": [{"id": "s1", **EMAIL_STEP}]})
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10}])
    run_due(now=clock.advance(seconds=1))
    outcome, detail = db.session.execute(select(JourneyStep.outcome, JourneyStep.detail).where(JourneyStep.profile_id == ann)).one()
    assert outcome == "acted" and detail["recorded"] is True and detail["subject"] == "Hello Ann"
    assert smtp_server.mailbox.messages == []


def test_mail_and_webhooks_follow_the_outbound_address_policy(inline, trained, smtp_server, receiver, clock):
    """An SMTP host or a webhook address on loopback is refused unless the operator trusts it:
    nothing reaches the local server, and the step says why."""
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    ann = customer(site, "ann-v", "ann@example.com")
    journey(site.id, "both", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                              "steps": [{"id": "s1", **EMAIL_STEP}, {"id": "s2", "type": "webhook", "url": receiver.url}]})
    inline.config["OUTBOUND_ALLOWED_HOSTS"] = ""  # the server as shipped: loopback is not trusted
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10}])
    run_due(now=clock.advance(seconds=1))
    run_due(now=clock.now)
    rows = db.session.execute(select(JourneyStep.step_id, JourneyStep.outcome, JourneyStep.detail)
                              .where(JourneyStep.profile_id == ann).order_by(JourneyStep.id)).all()
    assert [(r[0], r[1]) for r in rows] == [("s1", "failed"), ("s2", "failed")]
    assert "loopback" in rows[0][2]["error"] and "OUTBOUND_ALLOWED_HOSTS" in rows[0][2]["error"]
    assert "127.0.0.1" in rows[1][2]["error"] and "OUTBOUND_ALLOWED_HOSTS" in rows[1][2]["error"]
    assert smtp_server.mailbox.messages == [] and receiver.deliveries == []


def test_each_step_run_is_counted_for_metrics_by_kind_and_outcome(inline, trained, receiver, clock):
    from personalize import metrics

    def count(step: str, outcome: str) -> float:
        series = metrics.snapshot()["counters"]["personalize_journey_steps_total"]
        return series.get(f'personalize_journey_steps_total{{step="{step}",outcome="{outcome}"}}', 0)

    site = get_site(trained.id)
    customer(site, "ann-v", "ann@example.com")
    journey(site.id, "counted", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                                 "steps": [{"id": "s1", "type": "webhook", "url": receiver.url},
                                           {"id": "s2", "type": "set_attribute", "name": "after", "value": "yes"}]})
    receiver.answers = [410]
    before = (count("webhook", "failed"), count("set_attribute", "acted"))
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10}])
    run_due(now=clock.advance(seconds=1))
    run_due(now=clock.now)
    assert (count("webhook", "failed"), count("set_attribute", "acted")) == (before[0] + 1, before[1] + 1)
