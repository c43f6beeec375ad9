"""The journeys pages without a browser: every template builds a working journey, the builder's
forms change the definition they show, and a viewer reads but changes nothing."""

from __future__ import annotations

import re

from personalize.journeys.store import get_journey
from personalize.journeys.templates import TEMPLATES

from .conftest import make_user, post, sign_in


def test_every_template_makes_a_journey_whose_page_shows_its_flow(as_owner, site, ctx):
    ctx.config["SEGMENT_REBUILD_INLINE"] = True
    base = f"/admin/sites/{site.id}/journeys"
    for t in TEMPLATES:
        r = post(as_owner, base, {"template": t.key, "key": t.key})
        assert r.status_code == 302, r.get_data(as_text=True)
        page = as_owner.get(f"{base}/{t.key}")
        assert page.status_code == 200, (t.key, page.get_data(as_text=True)[:2000])
        html = page.get_data(as_text=True)
        assert t.name in html and 'id="flow"' in html
        for sid in re.findall(r'"id": "(s\d+)"', str(t.definition).replace("'", '"')):
            assert f'id="step-{sid}"' in html, (t.key, sid)
    listing = as_owner.get(base).get_data(as_text=True)
    assert all(t.name in listing for t in TEMPLATES)


def test_the_builder_edits_steps_publishes_and_activates(as_owner, site, ctx):
    base = f"/admin/sites/{site.id}/journeys"
    post(as_owner, base, {"template": "cart-abandonment", "key": "cart"})
    j = get_journey(site.id, "cart")
    assert j.status == "draft" and j.version == 0
    # the trigger: product_added of the running category only, and the control group at 20 %
    r = post(as_owner, f"{base}/cart/settings", {
        "trigger_type": "event", "trigger_event": "product_added", "w0_field": "product.category", "w0_op": "eq", "w0_value": "running",
        "reentry": "cooldown", "reentry_days": "5", "goal": "order", "goal_days": "10", "exit_on_goal": "1", "control": "20",
        "quiet": "1", "quiet_start": "22:00", "quiet_end": "07:30", "recent_hours": "12", "cond_mode": "builder",
    })
    assert r.status_code == 302
    j = get_journey(site.id, "cart")
    assert j.definition["trigger"] == {"type": "event", "event": "product_added", "where": [{"field": "product.category", "op": "eq", "value": "running"}]}
    assert j.definition["control"] == 20 and j.definition["reentry"] == {"mode": "cooldown", "days": 5}
    assert j.definition["limits"] == {"quiet_start": "22:00", "quiet_end": "07:30", "recent_hours": 12}
    # a condition below the first wait: a new step, then its rule
    post(as_owner, f"{base}/cart/steps", {"type": "branch", "position": "after:s1"})
    j = get_journey(site.id, "cart")
    new_id = j.definition["steps"][1]["id"]
    assert new_id == "s5" and j.definition["steps"][1]["type"] == "branch"
    r = post(as_owner, f"{base}/cart/steps/{new_id}", {"rule_mode": "builder", "rule_combine": "and", "rule_c0_field": "orders.count",
                                                      "rule_c0_op": "gte", "rule_c0_value": "2"})
    assert r.status_code == 302
    j = get_journey(site.id, "cart")
    assert j.definition["steps"][1]["rule"] == {"and": [{"field": "orders.count", "op": "gte", "value": 2}]}
    post(as_owner, f"{base}/cart/steps", {"type": "set_attribute", "position": f"branch:{new_id}:yes"})
    j = get_journey(site.id, "cart")
    assert [s["type"] for s in j.definition["steps"][1]["branches"]["yes"]] == ["set_attribute"]
    # a wait in days, an email's subject: each saved from its form
    post(as_owner, f"{base}/cart/steps/s1", {"wait_mode": "duration", "amount": "2", "unit": "hours"})
    post(as_owner, f"{base}/cart/steps/s2", {"subject": "Your cart misses you", "html": "<p>{{ contact.first_name }}</p>", "recommendations": "3"})
    j = get_journey(site.id, "cart")
    assert j.definition["steps"][0] == {"id": "s1", "type": "wait", "seconds": 7200}
    s2 = next(s for s in j.definition["steps"] if s["id"] == "s2")
    assert s2["subject"] == "Your cart misses you" and s2["recommendations"] == 3
    assert "recommendations_at" not in s2
    # the list as it is when the email is opened: the open-time block
    post(as_owner, f"{base}/cart/steps/s2", {"subject": "Your cart misses you", "html": "<p>{{ recommendations_block }}</p>",
                                             "recommendations": "3", "recommendations_at": "open"})
    s2 = next(s for s in get_journey(site.id, "cart").definition["steps"] if s["id"] == "s2")
    assert s2["recommendations_at"] == "open"
    assert 'value="open" selected' in as_owner.get(f"{base}/cart").get_data(as_text=True)
    # a broken template is refused, naming the step; nothing is saved
    r = post(as_owner, f"{base}/cart/steps/s2", {"subject": "{{ oops", "html": "x", "recommendations": "0"}, follow_redirects=True)
    assert "Step s2" in r.get_data(as_text=True) and get_journey(site.id, "cart").definition["steps"][2]["subject"] == "Your cart misses you"
    post(as_owner, f"{base}/cart/status", {"action": "activate"})
    j = get_journey(site.id, "cart")
    assert (j.status, j.version) == ("active", 1)
    post(as_owner, f"{base}/cart/steps/s4/delete")
    page = as_owner.get(f"{base}/cart").get_data(as_text=True)
    assert 'id="unpublished"' in page, "an edit to a live journey waits for publishing"
    post(as_owner, f"{base}/cart/status", {"action": "publish"})
    assert get_journey(site.id, "cart").version == 2
    assert 'id="unpublished"' not in as_owner.get(f"{base}/cart").get_data(as_text=True)


def test_a_viewer_reads_journeys_and_changes_nothing(client, site, ctx):
    from personalize.journeys.store import create_journey

    create_journey(site.id, "j", "J", {"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "wait", "seconds": 60}]})
    make_user("viewer@shop.example", "viewer", [site.id])
    sign_in(client, "viewer@shop.example")
    base = f"/admin/sites/{site.id}/journeys"
    assert client.get(f"{base}/j").status_code == 200
    assert client.get(f"/admin/sites/{site.id}/email-settings").status_code == 200
    for path, data in ((f"{base}/j/status", {"action": "activate"}), (f"{base}/j/steps", {"type": "exit", "position": "start"}),
                       (f"{base}/j/steps/s1", {"amount": "5", "unit": "days"}), (f"/admin/sites/{site.id}/email-settings", {"smtp_host": "x"})):
        assert post(client, path, data).status_code == 403, path
    j = get_journey(site.id, "j")
    assert j.status == "draft" and j.definition["steps"] == [{"id": "s1", "type": "wait", "seconds": 60}]


def test_email_settings_keep_the_password_encrypted_and_never_show_it(as_owner, site, ctx):
    from personalize.db import db
    from personalize.journeys.models import JourneySettings

    path = f"/admin/sites/{site.id}/email-settings"
    r = post(as_owner, path, {"smtp_host": "smtp.example.com", "smtp_port": "587", "smtp_security": "starttls", "smtp_username": "shop",
                              "smtp_password": "s3cret-smtp-password", "from_email": "shop@example.com", "timezone": "Europe/Paris",
                              "consent": "opt_in"})
    assert r.status_code == 302
    row = db.session.get(JourneySettings, site.id)
    assert row.smtp_password and "s3cret-smtp-password" not in row.smtp_password
    page = as_owner.get(path).get_data(as_text=True)
    assert "s3cret-smtp-password" not in page and "set — leave empty to keep it" in page
    post(as_owner, path, {"smtp_host": "smtp.example.com", "from_email": "shop@example.com", "timezone": "Europe/Paris", "smtp_password": ""})
    from personalize.journeys.email import smtp_password

    db.session.expire_all()
    assert smtp_password(db.session.get(JourneySettings, site.id), ctx.config) == "s3cret-smtp-password", "a blank password keeps the stored one"
    bad = post(as_owner, path, {"smtp_host": "smtp.example.com", "timezone": "Mars/Olympus"})
    assert bad.status_code == 400 and "Timezone" in bad.get_data(as_text=True)
