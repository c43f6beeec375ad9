"""Mailchimp against a local server speaking the Marketing API 3.0 (members, campaigns, reports, tags)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from personalize_mailchimp import subscriber_hash
from sqlalchemy import func, select

from personalize.db import db
from personalize.models import Profile
from personalize.profiles.attributes import attributes_of
from personalize.profiles.identity import lookup, profiles_for
from personalize.records import SegmentChange
from personalize.sync import engine
from personalize.sync.connections import save_connection
from personalize.sync.models import Engagement
from personalize.sync.push import push_changes
from personalize.sync.testing import ProviderServer

KEY = "0123456789abcdef0123456789abcdef-us20"
LIST = "a1b2c3d4e5"
T0 = datetime(2026, 11, 1, 12, 0)


def stamp(when: datetime) -> str:
    return when.isoformat() + "+00:00"


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=None)


def problem(status, title, detail):
    return status, {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title, "status": status,
                    "detail": detail, "instance": "f00d"}


class Mailchimp:
    def __init__(self, members, campaigns, activity):
        self.members = {m["id"]: m for m in members}
        self.campaigns = campaigns
        self.activity = activity
        self.member_pages: list[dict] = []
        self.on_member_page = None
        s = self.server = ProviderServer(check=self.check)
        s.on("GET", "/3.0/ping", lambda r, m: {"health_status": "Everything's Chimpy!"})
        s.on("GET", "/3.0/lists/(?P<list>[a-z0-9]+)", self.audience)
        s.on("GET", f"/3.0/lists/{LIST}/members", self.list_members)
        s.on("GET", "/3.0/campaigns", self.list_campaigns)
        s.on("GET", "/3.0/reports/(?P<cid>[a-z0-9]+)/email-activity", self.email_activity)
        s.on("POST", f"/3.0/lists/{LIST}/members/(?P<hash>[0-9a-f]{{32}})/tags", self.tags, required=False)
        s.on("POST", "/3.0/customer-journeys/journeys/(?P<journey>[0-9]+)/steps/(?P<step>[0-9]+)/actions/trigger", self.journey_trigger, required=False)
        self.journey_steps = {("44", "7")}
        self.triggered: list[tuple[str, str, str]] = []

    def check(self, request):
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        assert scheme == "Basic"
        assert ":" in base64.b64decode(value).decode()

    def authorised(self, request):
        return base64.b64decode(request.headers["Authorization"].split()[1]).decode().split(":", 1)[1] == KEY

    def audience(self, request, match):
        if not self.authorised(request):
            return problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
        if match["list"] != LIST:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        return {"id": LIST, "name": "Newsletter", "stats": {"member_count": len(self.members)}}

    def list_members(self, request, match):
        if not self.authorised(request):
            return problem(401, "API Key Invalid", "Your API key may be invalid.")
        args = request.args
        assert args["sort_field"] == "last_changed" and args["sort_dir"] == "ASC" and "before_last_changed" in args
        self.member_pages.append(dict(args))
        if self.on_member_page:
            self.on_member_page(len(self.member_pages))
        before = parse(args["before_last_changed"])
        since = parse(args["since_last_changed"]) if "since_last_changed" in args else None
        # archived members are listed only when asked for by status, as Mailchimp does
        status = args.get("status")
        assert status in (None, "archived")
        rows = sorted((m for m in self.members.values() if parse(m["last_changed"]) < before and (since is None or parse(m["last_changed"]) >= since)
                       and (m.get("status") == "archived") == (status == "archived")),
                      key=lambda m: (m["last_changed"], m["id"]))
        offset, count = int(args.get("offset", 0)), int(args["count"])
        return {"members": rows[offset : offset + count], "total_items": len(rows), "list_id": LIST}

    def archive(self, email: str, when: datetime) -> None:
        """What deleting a contact in Mailchimp does: it stays in the audience, archived."""
        self.members[subscriber_hash(email)].update(status="archived", last_changed=stamp(when))

    def list_campaigns(self, request, match):
        assert request.args["status"] == "sent" and request.args["list_id"] == LIST
        return {"campaigns": self.campaigns, "total_items": len(self.campaigns)}

    def email_activity(self, request, match):
        since = parse(request.args["since"]) if "since" in request.args else None
        emails = []
        for entry in self.activity.get(match["cid"], []):
            acts = [a for a in entry["activity"] if since is None or parse(a["timestamp"]) > since]
            if acts:
                emails.append({**entry, "activity": acts})
        offset, count = int(request.args.get("offset", 0)), int(request.args["count"])
        return {"emails": emails[offset : offset + count], "campaign_id": match["cid"], "total_items": len(emails)}

    def tags(self, request, match):
        member = self.members.get(match["hash"])
        if member is None:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        for tag in request.get_json()["tags"]:
            assert tag["status"] in ("active", "inactive")
            names = [t for t in member["tags"] if t["name"].lower() != tag["name"].lower()]
            if tag["status"] == "active":
                names.append({"id": 1, "name": tag["name"]})
            member["tags"] = names
        return 204, None


    def journey_trigger(self, request, match):
        if (match["journey"], match["step"]) not in self.journey_steps:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        email = request.get_json()["email_address"]
        found = self.members.get(subscriber_hash(email))
        if found is None or found.get("status") != "subscribed":
            return problem(400, "Bad Request", "The contact is not subscribed to the journey's audience.")
        self.triggered.append((match["journey"], match["step"], email))
        return 204, None


def member(i, when, **extra):
    email = f"reader{i}@example.com"
    return {"id": subscriber_hash(email), "email_address": email, "status": "subscribed",
            "merge_fields": {"FNAME": f"Reader{i}", "LNAME": "Lee"}, "tags": [{"id": 7, "name": "Customers"}] if i % 2 else [],
            "last_changed": stamp(when), "member_rating": 3, "language": "en", "vip": False,
            "stats": {"avg_open_rate": 0.5, "avg_click_rate": 0.1}, **extra}


def members_only(chimp):
    """This test reads members only: the activity endpoints are not expected."""
    chimp.server.routes[3].required = chimp.server.routes[4].required = False


@pytest.fixture
def chimp(shop, monkeypatch):
    import personalize_mailchimp

    monkeypatch.setattr(personalize_mailchimp, "PAGE_SIZE", 5)
    members = [member(i, T0 + timedelta(minutes=i // 2)) for i in range(12)]  # two members a minute: ties across pages
    members.append({"id": "0" * 32, "email_address": "", "last_changed": stamp(T0 + timedelta(minutes=30)), "tags": []})
    sent = (datetime.now(UTC).replace(tzinfo=None) - timedelta(days=2)).replace(microsecond=0)
    campaigns = [{"id": "c1", "send_time": stamp(sent), "settings": {"subject_line": "November news"}}]
    activity = {"c1": [
        {"campaign_id": "c1", "list_id": LIST, "email_id": members[0]["id"], "email_address": members[0]["email_address"],
         "activity": [{"action": "open", "timestamp": stamp(sent + timedelta(hours=1)), "ip": "1.2.3.4"},
                      {"action": "click", "timestamp": stamp(sent + timedelta(hours=2)), "url": "https://shop.example/sale"}]},
        {"campaign_id": "c1", "list_id": LIST, "email_id": members[1]["id"], "email_address": members[1]["email_address"],
         "activity": [{"action": "open", "timestamp": stamp(sent + timedelta(hours=3))}, {"action": "teleport", "timestamp": stamp(sent)}]},
    ]}
    api = Mailchimp(members, campaigns, activity)
    with api.server:
        save_connection(shop.id, "mailchimp", {"api_key": KEY, "list_id": LIST, "api_url": api.server.url + "/3.0"})
        yield api
    api.server.verify()


def test_members_tags_and_campaign_activity_into_profiles(chimp, shop, sleep):
    summary = engine.run_sync(shop.id, "mailchimp", sleep=sleep)
    assert summary["status"] == "succeeded", summary
    assert summary["streams"]["members"]["stored"] == 12 and summary["streams"]["members"]["skipped"] == 1
    assert summary["streams"]["activity"]["stored"] == 3 and summary["streams"]["activity"]["skipped"] == 1
    pid = lookup(shop.id, "email", ["reader1@example.com"])["reader1@example.com"]
    assert lookup(shop.id, "mailchimp_id", [subscriber_hash("reader1@example.com")]) == {subscriber_hash("reader1@example.com"): pid}
    attrs = {k: v["value"] for k, v in attributes_of(pid).items()}
    assert attrs["mailchimp_tags"] == ["Customers"] and attrs["first_name"] == "Reader1" and attrs["email_status"] == "subscribed"
    assert attrs["email_open_rate"] == 0.5
    reader0 = lookup(shop.id, "email", ["reader0@example.com"])["reader0@example.com"]
    kinds = sorted(db.session.scalars(select(Engagement.type).where(Engagement.profile_id == reader0)))
    assert kinds == ["email_click", "email_open"]


def test_members_changing_while_we_page_cannot_hide_anyone(chimp, shop, sleep):
    members_only(chimp)
    def touch(page_number):
        if page_number == 2:  # someone on page one changes: with plain offsets, everybody after would shift left by one
            chimp.members[subscriber_hash("reader0@example.com")]["last_changed"] = stamp(datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1))

    chimp.on_member_page = touch
    summary = engine.run_sync(shop.id, "mailchimp", sleep=sleep, streams=["members"])
    assert summary["streams"]["members"]["stored"] == 12
    assert all(p.get("offset") == "0" for p in chimp.member_pages)


def test_an_interrupted_sync_resumes_without_duplicates(chimp, shop, sleep):
    members_only(chimp)
    answer = chimp.list_members
    pages = []

    def down_on_page_two(request, match):
        pages.append(1)
        if len(pages) == 2:
            return problem(503, "Service Unavailable", "Try again later.")
        return answer(request, match)

    chimp.server.routes[2].handler = down_on_page_two
    failed = engine.run_sync(shop.id, "mailchimp", sleep=sleep, streams=["members"], http_options={"max_retries": 0})
    assert failed["status"] == "failed" and failed["records_out"] == 5
    resumed = engine.run_sync(shop.id, "mailchimp", sleep=sleep, streams=["members"])
    assert resumed["status"] == "succeeded" and resumed["streams"]["members"]["stored"] == 7
    assert db.session.scalar(select(func.count()).select_from(Profile)) == 12


def test_activity_is_stored_once_however_often_it_is_read(chimp, shop, sleep):
    chimp.server.routes[2].required = False
    engine.run_sync(shop.id, "mailchimp", sleep=sleep, streams=["activity"])
    engine.run_sync(shop.id, "mailchimp", sleep=sleep, streams=["activity"], full=True)
    assert db.session.scalar(select(func.count()).select_from(Engagement)) == 3


def test_an_invalid_key_fails_clearly(chimp, shop, sleep):
    save_connection(shop.id, "mailchimp", {"api_key": "ffffffffffffffffffffffffffffffff-us20"})
    for route in chimp.server.routes:
        route.required = False
    summary = engine.run_sync(shop.id, "mailchimp", sleep=sleep)
    assert summary["status"] == "failed" and "credentials refused" in summary["message"] and "401 Unauthorized" in summary["message"]
    assert "API Key Invalid" not in summary["message"], "the provider's answer is not repeated to the admin"
    assert db.session.scalar(select(func.count()).select_from(Profile)) == 0


def test_a_wrong_audience_or_a_key_without_data_centre_is_a_settings_problem(chimp, shop, sleep):
    for route in chimp.server.routes:
        route.required = False
    save_connection(shop.id, "mailchimp", {"list_id": "nosuchlist"})
    summary = engine.run_sync(shop.id, "mailchimp", sleep=sleep)
    assert summary["message"].startswith("settings problem: no audience 'nosuchlist'")
    save_connection(shop.id, "mailchimp", {"api_key": "0123456789abcdef", "api_url": None})
    summary = engine.run_sync(shop.id, "mailchimp", sleep=sleep)
    assert summary["status"] == "failed" and "data centre" in summary["message"]


def test_push_segments_as_tags(chimp, shop, sleep):
    members_only(chimp)
    engine.run_sync(shop.id, "mailchimp", sleep=sleep, streams=["members"])
    reader = lookup(shop.id, "email", ["reader2@example.com"])["reader2@example.com"]
    outsider = profiles_for(shop.id, "email", ["outsider@example.com"])["outsider@example.com"]
    nameless = profiles_for(shop.id, "visitor", ["v-1"])["v-1"]
    db.session.commit()
    result = push_changes(shop.id, "mailchimp", "tags", [SegmentChange("Loyal", reader, True), SegmentChange("Loyal", outsider, True),
                                                         SegmentChange("Loyal", nameless, True)], sleep=sleep)
    assert [(r.status, r.message) for r in result["results"]] == [("ok", ""), ("skipped", "not a member of the audience"), ("skipped", "no email address")]
    tags = chimp.members[hashlib.md5(b"reader2@example.com").hexdigest()]["tags"]
    assert [t["name"] for t in tags] == ["Loyal"]
    push_changes(shop.id, "mailchimp", "tags", [SegmentChange("Loyal", reader, True)], sleep=sleep)
    assert len(chimp.members[subscriber_hash("reader2@example.com")]["tags"]) == 1, "pushing twice changes nothing"
    push_changes(shop.id, "mailchimp", "tags", [SegmentChange("Loyal", reader, False)], sleep=sleep)
    assert chimp.members[subscriber_hash("reader2@example.com")]["tags"] == []


def test_members_archived_in_mailchimp_lose_their_link_and_mailchimps_attributes(chimp, shop, sleep):
    members_only(chimp)
    first = engine.run_sync(shop.id, "mailchimp", sleep=sleep, streams=["members", "archived_members"])
    assert first["status"] == "succeeded", first
    assert first["streams"]["archived_members"]["in"] == 0
    hashes = {i: subscriber_hash(f"reader{i}@example.com") for i in (3, 4, 5)}
    gone, before, kept = (lookup(shop.id, "mailchimp_id", [hashes[i]])[hashes[i]] for i in (3, 4, 5))
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    chimp.archive("reader3@example.com", now - timedelta(minutes=1))
    chimp.archive("reader4@example.com", T0 - timedelta(days=30))  # changed last before the first sync: read then, not now
    second = engine.run_sync(shop.id, "mailchimp", sleep=sleep, streams=["members", "archived_members"])
    assert second["status"] == "succeeded", second
    assert second["streams"]["archived_members"]["in"] == 1
    assert second["streams"]["members"]["in"] == 0, "an archived member is no contact to store"
    db.session.expire_all()
    assert lookup(shop.id, "mailchimp_id", [hashes[3]]) == {}
    assert not any(a["source"] == "mailchimp" for a in attributes_of(gone).values())
    assert lookup(shop.id, "email", ["reader3@example.com"]) == {"reader3@example.com": gone}, "still known by email"
    assert lookup(shop.id, "mailchimp_id", [hashes[4]]) == {hashes[4]: before}
    assert attributes_of(kept)["email_status"]["source"] == "mailchimp"
    assert all(page.get("status") == "archived" for page in chimp.member_pages[-1:])


def test_resume_states_conform(chimp):
    from personalize_mailchimp import MailchimpConnector

    from personalize.connectors import ConnectorContext
    from personalize.sync.http import HttpClient
    from personalize.sync.testing import check_resume, local_policy, recording_sleep

    chimp.server.routes[0].required = chimp.server.routes[1].required = False  # no check() here: pulls only
    settings = {"api_key": KEY, "list_id": LIST, "api_url": chimp.server.url + "/3.0", "activity_days": 30}

    def make():
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        return MailchimpConnector(ConnectorContext(settings=settings, http=HttpClient(sleep=recording_sleep(), policy=local_policy()), started_at=now))

    assert check_resume(make, "members") == []
    assert check_resume(make, "activity") == []
    for i in range(12):  # more than a page of archived members, two at each minute
        chimp.archive(f"reader{i}@example.com", T0 + timedelta(hours=1, minutes=i // 2))
    assert check_resume(make, "archived_members") == []


def test_a_slow_answer_times_out_and_is_retried(chimp, shop, sleep):
    members_only(chimp)
    chimp.server.fault("GET", f"/3.0/lists/{LIST}/members", delay=0.6)
    summary = engine.run_sync(shop.id, "mailchimp", sleep=sleep, streams=["members"], http_options={"timeout": (2.0, 0.3)})
    assert summary["status"] == "succeeded" and summary["streams"]["members"]["stored"] == 12
    assert len(sleep.calls) == 1, "one retry after the timeout"


def test_journey_actions_tag_members_and_start_a_customer_journey_step(chimp, shop, sleep, app):
    from personalize.journeys.email import save_settings
    from personalize.profiles import set_attributes

    from .journeys import run_action_step

    members_only(chimp)
    engine.run_sync(shop.id, "mailchimp", sleep=sleep, streams=["members"])
    reader = lookup(shop.id, "email", ["reader2@example.com"])["reader2@example.com"]
    outsider = profiles_for(shop.id, "email", ["outsider@example.com"])["outsider@example.com"]
    db.session.commit()
    got = run_action_step(shop.id, "mailchimp", "tag", {"tag": "cart-abandoner"}, [reader, outsider], key="tag", sleep=sleep)
    assert {pid: v[0] for pid, v in got.items()} == {reader: "acted", outsider: "skipped_remote"}
    assert [t["name"] for t in chimp.members[subscriber_hash("reader2@example.com")]["tags"]] == ["cart-abandoner"]
    # starting a Mailchimp journey sends email: it counts as a contact, so consent applies (the member's status is synced)
    save_settings(shop.id, {"consent": "opt_in"}, app.config)
    unsubscribed = lookup(shop.id, "email", ["reader3@example.com"])["reader3@example.com"]
    set_attributes(shop.id, unsubscribed, {"email_status": "unsubscribed"}, "mailchimp")
    got = run_action_step(shop.id, "mailchimp", "journey_step", {"journey_id": "44", "step_id": "7"}, [reader, unsubscribed, outsider],
                          key="start", sleep=sleep)
    assert {pid: v[0] for pid, v in got.items()} == {reader: "acted", unsubscribed: "skipped_consent", outsider: "skipped_consent"}
    assert chimp.triggered == [("44", "7", "reader2@example.com")]
    wrong = run_action_step(shop.id, "mailchimp", "journey_step", {"journey_id": "45", "step_id": "7"}, [reader], key="wrong", sleep=sleep)
    assert wrong[reader][0] == "skipped_remote"


def test_hook_register_journey_actions(app):
    from personalize.connectors import JourneyAction
    from personalize.journeys.connectors import connector_actions

    with app.app_context():
        actions = connector_actions()
    assert set(actions) >= {("mailchimp", "tag"), ("mailchimp", "journey_step"), ("hubspot", "set_property"), ("shopify", "tag_customer")}
    assert all(isinstance(a, JourneyAction) and callable(a.run) and a.title for a in actions.values())
    assert actions[("mailchimp", "journey_step")].channel == "email", "it has Mailchimp send email: a contact"
    assert actions[("hubspot", "set_property")].channel == "", "setting a property reaches nobody"
