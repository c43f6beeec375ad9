"""Each person's recommendations pushed after every sync: Mailchimp merge fields and HubSpot contact
properties, against the local servers speaking each provider's protocol."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from personalize_mailchimp import subscriber_hash
from PIL import Image

from personalize.db import db
from personalize.profiles.identity import lookup
from personalize.records import ProductRecord
from personalize.sync.connections import ConnectionSettingsError, save_connection
from personalize.sync.tasks import sync_connection
from personalize.sync.testing import ProviderServer

from .test_hubspot import T0 as HUB_T0
from .test_hubspot import TOKEN, HubSpot, contact
from .test_mailchimp import KEY, LIST, T0, Mailchimp, member, problem

PRODUCTS = [
    ProductRecord("run-shoe", "Trail running shoe", "/p/run-shoe", "/img/run-shoe.png", 120.0, "EUR", "running"),
    ProductRecord("run-sock", "Running socks", "/p/run-sock", "", 12.0, "EUR", "running"),
    ProductRecord("run-gel", "Energy gel", "/p/run-gel", "", 2.5, "EUR", "running"),
    ProductRecord("run-cap", "Running cap", "/p/run-cap", "", 20.0, "EUR", "running"),
    ProductRecord("tea-pot", "Cast iron tea pot", "/p/tea-pot", "", 45.0, "EUR", "tea"),
    ProductRecord("tea-green", "Green tea leaves", "/p/tea-green", "", 9.0, "EUR", "tea"),
    ProductRecord("tea-cup", "Tea cups (set of 2)", "/p/tea-cup", "", 18.0, "EUR", "tea"),
]


def behaviour(people: dict[str, str]) -> list[dict]:
    """Runners and tea drinkers, and the named people (email -> their taste) browsing accordingly."""
    events, t = [], 1_700_000_000_000
    groups = {"run": ["run-shoe", "run-sock", "run-gel", "run-cap"], "tea": ["tea-pot", "tea-green", "tea-cup"]}
    for persona, items in groups.items():
        for n in range(10):
            v = f"{persona}-{n}"
            events += [{"id": f"{v}-{j}", "type": "product_viewed", "visitor": v, "product_id": p, "ts": t + j} for j, p in enumerate(items[: 2 + n % 2])]
            events.append({"id": f"{v}-o", "type": "order_completed", "visitor": v, "order_id": f"o-{v}", "ts": t + 99,
                           "items": [{"product_id": p, "quantity": 1, "price": 10.0} for p in items[:2]]})
    for email, taste in people.items():
        v = "v-" + email.split("@")[0]
        events.append({"id": f"{v}-id", "type": "identify", "visitor": v, "email": email})
        events += [{"id": f"{v}-{p}", "type": "product_viewed", "visitor": v, "product_id": p, "ts": t + 5} for p in groups[taste][:2]]
    return events


@pytest.fixture
def shop_with_people(shop, app):
    from personalize.catalog import upsert_products
    from personalize.profiles import ingest_events
    from personalize.recommend.service import train_site

    app.config["PUBLIC_URL"] = "https://pz.example"
    app.config["EMAIL_IMAGE_FETCH"] = False
    shop.allowed_origins = ["https://shop.example"]
    db.session.commit()
    upsert_products(shop.id, PRODUCTS)
    ingest_events(shop, behaviour({"reader1@example.com": "run", "reader2@example.com": "tea", "lead1@example.com": "run"}))
    train_site(shop.id)
    return shop


class MailchimpWithMergeFields(Mailchimp):
    """The local Mailchimp, also answering the merge-field and member-update calls."""

    def __init__(self, *args):
        super().__init__(*args)
        self.merge_fields: dict[str, dict] = {"FNAME": {"tag": "FNAME", "type": "text"}, "LNAME": {"tag": "LNAME", "type": "text"}}
        self.patches: list[str] = []
        s = self.server
        s.on("GET", f"/3.0/lists/{LIST}/merge-fields", self.list_merge_fields, required=False)
        s.on("POST", f"/3.0/lists/{LIST}/merge-fields", self.add_merge_field, required=False)
        s.on("PATCH", f"/3.0/lists/{LIST}/members/(?P<hash>[0-9a-f]{{32}})", self.update_member, required=False)

    def list_merge_fields(self, request, match):
        assert int(request.args["count"]) <= 1000
        return {"merge_fields": list(self.merge_fields.values()), "list_id": LIST, "total_items": len(self.merge_fields)}

    def add_merge_field(self, request, match):
        body = request.get_json()
        assert 1 <= len(body["tag"]) <= 10 and body["type"] == "text"
        if body["tag"] in self.merge_fields:
            return problem(400, "Invalid Resource", "A Merge Field with the tag already exists for this list.")
        self.merge_fields[body["tag"]] = {**body, "merge_id": len(self.merge_fields) + 1, "list_id": LIST}
        return self.merge_fields[body["tag"]]

    def update_member(self, request, match):
        found = self.members.get(match["hash"])
        if found is None:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        fields = request.get_json()["merge_fields"]
        unknown = [k for k in fields if k not in self.merge_fields]
        if unknown or any(len(v) > 255 for v in fields.values()):
            return problem(400, "Invalid Resource", "Your merge fields were invalid.")
        found["merge_fields"].update(fields)
        self.patches.append(found["email_address"])
        return {"id": found["id"], "email_address": found["email_address"], "merge_fields": found["merge_fields"]}


@pytest.fixture
def chimp(shop_with_people):
    members = [member(i, T0) for i in range(1, 4)]  # reader3 has no behaviour here: a first visit's list
    api = MailchimpWithMergeFields(members, [], {})
    for route in api.server.routes[3:5]:
        route.required = False  # campaign activity is not read in these tests
    with api.server:
        save_connection(shop_with_people.id, "mailchimp", {"api_key": KEY, "list_id": LIST, "api_url": api.server.url + "/3.0",
                                                           "recommendations": 3})
        yield api
    api.server.verify()


def click(client, url: str):
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "pz.example")
    return client.get(parts.path)


def test_each_sync_writes_each_members_top_n_as_merge_fields(chimp, shop_with_people, client):
    shop = shop_with_people
    summary = sync_connection(shop.id, "mailchimp", streams=["members"])
    assert summary["status"] == "succeeded", summary
    pushed = summary["recommendations"]
    assert pushed["status"] == "succeeded" and pushed["records_out"] == 3, pushed
    assert set(chimp.merge_fields) >= {"REC_BLOCK", *(f"REC{n}_{p}" for n in (1, 2, 3) for p in ("TITLE", "URL", "IMAGE", "PRICE"))}
    assert "REC4_TITLE" not in chimp.merge_fields
    runner = chimp.members[subscriber_hash("reader1@example.com")]["merge_fields"]
    tea = chimp.members[subscriber_hash("reader2@example.com")]["merge_fields"]
    titles = {p.title: p for p in PRODUCTS}
    assert titles[runner["REC1_TITLE"]].category == "running" and titles[tea["REC1_TITLE"]].category == "tea"
    assert runner["REC1_PRICE"] == f"{titles[runner['REC1_TITLE']].price:,.2f} EUR"
    assert runner["FNAME"] == "Reader1", "the member's own fields are left alone"
    for n in (1, 2, 3):
        assert runner[f"REC{n}_URL"].startswith(f"https://pz.example/email/recs/{shop.id}/pz1") and runner[f"REC{n}_URL"].endswith(f"/s{n}")
        assert "reader1" not in runner[f"REC{n}_URL"]
    if titles[runner["REC1_TITLE"]].image:
        assert runner["REC1_IMAGE"] == "https://shop.example" + titles[runner["REC1_TITLE"]].image
    assert runner["REC_BLOCK"] == runner["REC1_URL"][: -len("/s1")]
    # the pushed click opens the product pushed there, with the pushed list's rec_id
    r = click(client, runner["REC2_URL"])
    assert r.status_code == 302
    target = urlsplit(r.headers["Location"])
    assert target.netloc == "shop.example" and target.path == titles[runner["REC2_TITLE"]].url
    from personalize.recommend.channels import shown_list

    pid = lookup(shop.id, "email", ["reader1@example.com"])["reader1@example.com"]
    assert parse_qs(target.query)["pz_rec"] == [shown_list(shop.id, pid, "push").rec_id]
    # the block address a template builds from REC_BLOCK draws the member's list
    image = client.get(urlsplit(runner["REC_BLOCK"]).path + ".png")
    assert image.status_code == 200 and Image.open(io.BytesIO(image.data)).format == "PNG"


def test_an_unchanged_list_is_not_pushed_again_and_a_changed_one_is(chimp, shop_with_people, client):
    from personalize.profiles import ingest_events

    shop = shop_with_people
    sync_connection(shop.id, "mailchimp", streams=["members"])
    assert len(chimp.patches) == 3
    again = sync_connection(shop.id, "mailchimp", streams=["members"])
    assert len(chimp.patches) == 3 and again["recommendations"]["records_out"] == 0
    assert again["recommendations"]["streams"]["recommendations"]["unchanged"] == 3
    before = dict(chimp.members[subscriber_hash("reader2@example.com")]["merge_fields"])
    ingest_events(shop, [{"id": f"r2-run-{n}", "type": "product_viewed", "visitor": "v-reader2", "product_id": p}
                         for n, p in enumerate(["run-shoe", "run-cap", "run-gel", "run-shoe", "run-cap"])])
    third = sync_connection(shop.id, "mailchimp", streams=["members"])
    assert chimp.patches[3:] == ["reader2@example.com"] and third["recommendations"]["records_out"] == 1
    after = chimp.members[subscriber_hash("reader2@example.com")]["merge_fields"]
    assert after["REC1_TITLE"] != before["REC1_TITLE"]
    assert after["REC1_URL"] == before["REC1_URL"], "the same person's addresses stay the same until they are renewed"
    assert chimp.server.hits("POST", f"/3.0/lists/{LIST}/merge-fields") == 13, "merge fields are created once"


def test_a_member_gone_from_the_audience_is_skipped(chimp, shop_with_people):
    shop = shop_with_people
    sync_connection(shop.id, "mailchimp", streams=["members"])
    from personalize.profiles import ingest_events

    del chimp.members[subscriber_hash("reader1@example.com")]
    ingest_events(shop, [{"id": f"r1-tea-{n}", "type": "product_viewed", "visitor": "v-reader1", "product_id": p}
                         for n, p in enumerate(["tea-pot", "tea-cup", "tea-green", "tea-pot"])])
    chimp.server.routes[2].required = False
    from personalize.sync.recommendations import push_recommendations

    summary = push_recommendations(shop.id, "mailchimp")
    assert [(r.status, r.message) for r in summary["results"]] == [("skipped", "not a member of the audience")]


def test_the_number_pushed_is_the_connections_choice_within_what_the_connector_can(shop_with_people):
    with pytest.raises(ConnectionSettingsError) as refused:
        save_connection(shop_with_people.id, "mailchimp", {"api_key": KEY, "list_id": LIST, "recommendations": 7})
    assert refused.value.field == "recommendations"
    from personalize.sync.recommendations import push_recommendations

    save_connection(shop_with_people.id, "mailchimp", {"api_key": KEY, "list_id": LIST, "recommendations": 0})
    assert push_recommendations(shop_with_people.id, "mailchimp")["status"] == "skipped"


def test_without_a_public_address_nothing_is_pushed_and_the_log_says_why(chimp, shop_with_people, app):
    app.config["PUBLIC_URL"] = None
    summary = sync_connection(shop_with_people.id, "mailchimp", streams=["members"])
    pushed = summary["recommendations"]
    assert pushed["status"] == "failed" and "public address" in pushed["message"]
    assert chimp.patches == []


class HubSpotWithTextProperties(HubSpot):
    def create_property(self, request, match):
        body = request.get_json()
        if body["type"] == "string":
            assert body["fieldType"] == "text"
            self.properties[body["name"]] = {**body, "hidden": False, "modificationMetadata": {}}
            return 201, self.properties[body["name"]]
        return super().create_property(request, match)


def test_hubspot_contacts_get_their_list_as_properties(shop_with_people, client, sleep):
    people = [contact(i, HUB_T0) for i in range(1, 3)]  # lead1 has run behaviour, lead2 none
    api = HubSpotWithTextProperties(people)
    api.server.routes[0].required = False
    with api.server:
        save_connection(shop_with_people.id, "hubspot", {"access_token": TOKEN, "api_url": api.server.url, "recommendations": 2})
        summary = sync_connection(shop_with_people.id, "hubspot")
        pushed = summary["recommendations"]
        assert pushed["status"] == "succeeded" and pushed["records_out"] == 2, pushed
        props = api.contacts["101"]["properties"]
        titles = {p.title: p for p in PRODUCTS}
        assert titles[props["personalize_rec1_title"]].category == "running"
        assert props["personalize_rec2_url"].startswith(f"https://pz.example/email/recs/{shop_with_people.id}/pz1")
        assert props["personalize_rec_block"] == props["personalize_rec1_url"][: -len("/s1")]
        assert "personalize_rec3_title" not in props
        assert set(api.properties) == {"personalize_rec_block", *(f"personalize_rec{n}_{p}" for n in (1, 2) for p in ("title", "url", "image", "price"))}
        assert api.contacts["102"]["properties"]["personalize_rec1_title"], "someone without behaviour gets the shop's best sellers"
        r = click(client, props["personalize_rec1_url"])
        assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == titles[props["personalize_rec1_title"]].url
    api.server.verify()


def test_pictures_are_fetched_in_the_background_through_the_guarded_client_and_drawn(ctx, shop_with_people):
    from personalize.recommend.channels import card_of, thumbnail_path
    from personalize.recommend.email_image import draw_cards
    from personalize.sync.recommendations import fetch_thumbnails

    red = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 20, 20)).save(red, "JPEG")
    server = ProviderServer()
    server.on("GET", "/img/shoe.jpg", lambda r, m: _raw(red.getvalue(), "image/jpeg"))
    server.on("GET", "/img/huge.jpg", lambda r, m: _raw(b"\xff" * 2_100_000, "image/jpeg"))
    server.on("GET", "/img/text.jpg", lambda r, m: _raw(b"not a picture", "image/jpeg"))
    with server:
        urls = [server.url + p for p in ("/img/shoe.jpg", "/img/huge.jpg", "/img/text.jpg")]
        outcome = fetch_thumbnails(urls)
        assert outcome[urls[0]] == "fetched" and outcome[urls[1]] == "too large" and outcome[urls[2]] != "fetched"
        assert fetch_thumbnails(urls[:1]) == {urls[0]: "kept"}
    server.verify()
    assert thumbnail_path(urls[0]).exists() and not thumbnail_path(urls[1]).exists()
    card = card_of({"title": "Shoe", "image": urls[0], "price": 10.0, "currency": "EUR"})
    png = Image.open(io.BytesIO(draw_cards([card], columns=1))).convert("RGB")
    r, g, b = png.getpixel((12 + 100, 12 + 100))
    assert r > 150 and g < 80 and b < 80, "the card shows the fetched picture"
    # a server that trusts no host refuses the loopback address: nothing is fetched
    assert fetch_thumbnails([server.url + "/img/other.jpg"], config={"OUTBOUND_ALLOWED_HOSTS": ""}) != {server.url + "/img/other.jpg": "fetched"}


def _raw(body: bytes, mimetype: str):
    from werkzeug.wrappers import Response

    return Response(body, 200, mimetype=mimetype)
