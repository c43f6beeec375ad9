"""A journey email can carry the open-time block: pictures of the person's list drawn when the email is opened."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from personalize.journeys.batches import run_due
from personalize.journeys.definition import validate_definition
from personalize.profiles import ingest_events
from personalize.profiles.trust import read_token
from personalize.sites import get_site
from personalize.validation import InvalidInput

from .support import EMAIL_STEP, T0, customer, journey, mail_settings


def test_the_email_step_can_show_the_list_as_it_is_when_opened(inline, trained, smtp_server, clock, client):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    ingest_events(site, [{"id": f"ann-view-{p}", "type": "product_viewed", "visitor": "ann-v", "product_id": p, "ts": T0 + i}
                         for i, p in enumerate(("run-shoe", "run-sock"))])
    customer(site, "ann-v", "ann@example.com", first_name="Ann")
    journey(site.id, "open-block", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                                     "steps": [{"id": "s1", **EMAIL_STEP, "recommendations": 4, "recommendations_at": "open"}]})
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0 + 10}])
    run_due(now=clock.advance(seconds=1))
    [msg] = smtp_server.mailbox.to("ann@example.com")
    html = msg.get_body(("html",)).get_content().replace("&amp;", "&")
    images = re.findall(rf'src="(https://reco\.shop\.example/email/recs/{site.id}/pz1[^"]+)"', html)
    clicks = re.findall(rf'href="(https://reco\.shop\.example/email/recs/{site.id}/pz1[^"]+)"', html)
    assert len(images) == 4 and len(clicks) == 4, html
    assert "ann" not in " ".join(images + clicks)
    # opened: each picture is a card of Ann's list, all from one list
    for n, src in enumerate(images, start=1):
        parts = urlsplit(src)
        r = client.get(parts.path, query_string=parts.query)
        assert r.status_code == 200 and Image.open(io.BytesIO(r.data)).size == (224, 288), n
    # clicked: the product shown at that position, with the shown list's rec_id and a token naming Ann
    from personalize.profiles.identity import lookup
    from personalize.recommend.channels import shown_list

    ann = lookup(site.id, "email", ["ann@example.com"])["ann@example.com"]
    row = shown_list(site.id, ann, "block")
    assert len(row.items) == 4 and row.items[0].startswith("run-")
    r = client.get(urlsplit(clicks[1]).path)
    target = urlsplit(r.headers["Location"])
    assert r.status_code == 302 and target.path == f"/p/{row.items[1]}"
    query = parse_qs(target.query)
    assert query["pz_rec"] == [row.rec_id] and read_token(site.id, query["pz_token"][0]).email == "ann@example.com"


def test_recommendations_at_is_send_or_open():
    step = {"id": "s1", **EMAIL_STEP}
    definition = {"trigger": {"type": "event", "event": "product_added"}, "steps": [{**step, "recommendations_at": "open"}]}
    assert validate_definition(definition)["steps"][0]["recommendations_at"] == "open"
    assert "recommendations_at" not in validate_definition({**definition, "steps": [{**step, "recommendations_at": "send"}]})["steps"][0]
    with pytest.raises(InvalidInput) as refused:
        validate_definition({**definition, "steps": [{**step, "recommendations_at": "later"}]})
    assert refused.value.field.endswith("recommendations_at")
