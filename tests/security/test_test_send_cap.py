"""Test emails of journey steps go out at once to any address an editor types: at most
JOURNEY_TEST_SENDS_PER_DAY a site a day (UTC), counted in the database so every process
counts together; past it the answer is 429 naming the limit (JSON when asked for, a message
on the journey page otherwise), and nothing is sent."""

from __future__ import annotations

import re

from journeys.conftest import smtp_server  # noqa: F401  (a real SMTP server on loopback)
from journeys.support import mail_settings


def test_test_sends_are_capped_per_site_per_day(client, site, ctx, smtp_server):  # noqa: F811
    from admin.conftest import make_user, post, sign_in
    from personalize.journeys import actions
    from personalize.journeys.store import get_journey
    from personalize.sites import create_site

    sent = smtp_server.mailbox.messages
    ctx.config["JOURNEY_TEST_SENDS_PER_DAY"] = 3
    other, _secret = create_site("Other shop")
    make_user("ed@shop.example", "editor", [site.id, other.id])
    sign_in(client, "ed@shop.example")
    steps = {}
    for s in (site, other):
        post(client, f"/admin/sites/{s.id}/journeys", {"template": "welcome", "key": "w"})
        mail_settings(ctx, s.id, smtp_server)
        steps[s.id] = next(x for x in get_journey(s.id, "w").definition["steps"] if x["type"] == "email")["id"]

    url = f"/admin/sites/{site.id}/journeys/w/steps/{steps[site.id]}/test"
    for _ in range(3):
        r = post(client, url, {"to": "me@shop.example"}, follow_redirects=True)
        assert r.status_code == 200 and "Test email sent" in r.get_data(as_text=True)
    assert len(sent) == 3

    r = post(client, url, {"to": "me@shop.example"}, headers={"Accept": "application/json"})
    assert r.status_code == 429
    error = r.get_json()["error"]
    assert error["field"] == "JOURNEY_TEST_SENDS_PER_DAY" and "at most 3 test emails a day" in error["message"]
    page = post(client, url, {"to": "me@shop.example"}, follow_redirects=True).get_data(as_text=True)
    assert "sent its 3 test emails today" in page, re.findall(r"class=\"flash[^>]*>[^<]*", page)
    assert len(sent) == 3, "nothing more went out"

    # another site has its own count
    r = post(client, f"/admin/sites/{other.id}/journeys/w/steps/{steps[other.id]}/test", {"to": "me@shop.example"}, follow_redirects=True)
    assert "Test email sent" in r.get_data(as_text=True) and len(sent) == 4

    # a new day (UTC) starts afresh
    assert actions.count_test_send(site.id, 3, today="2999-01-01") is True
