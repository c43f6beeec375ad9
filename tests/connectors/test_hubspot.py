"""HubSpot against a local server speaking CRM v3; every request is checked against HubSpot's OpenAPI."""

from __future__ import annotations

import functools
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from personalize.db import db
from personalize.models import Profile
from personalize.profiles.attributes import attributes_of
from personalize.profiles.identity import lookup, profiles_for
from personalize.records import SegmentChange
from personalize.sync import engine
from personalize.sync.connections import save_connection
from personalize.sync.push import push_changes
from personalize.sync.testing import ProviderServer

SPECS = Path(__file__).resolve().parents[3] / "shared/api-specs/hubspot"  # ../shared beside the checkout
TOKEN = "pat-eu1-test"
T0 = datetime(2026, 11, 1, 12, 0)


def ms(when: datetime) -> int:
    return int(when.replace(tzinfo=UTC).timestamp() * 1000)


@functools.cache
def openapi_check():
    """A request checker validating against the published descriptions (skipped when they are not at hand)."""
    if not SPECS.is_dir():
        return None
    import yaml
    from openapi_core import OpenAPI
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest

    specs = []
    for path in sorted(SPECS.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        # the server below checks the bearer token itself; the descriptions' OAuth schemes are not what a private app uses
        spec.pop("security", None)
        for item in spec["paths"].values():
            for operation in item.values():
                if isinstance(operation, dict):
                    operation.pop("security", None)
        specs.append(OpenAPI.from_dict(spec))

    class AtHubSpot(WerkzeugOpenAPIRequest):
        @property
        def host_url(self):  # the descriptions name https://api.hubapi.com as the server
            return "https://api.hubapi.com"

    def check(request):
        spec = specs[0] if request.path.startswith("/crm/v3/objects/") else specs[1]
        spec.validate_request(AtHubSpot(request))

    return check


def error(status, message, category):
    return status, {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}


class HubSpot:
    def __init__(self, contacts, search_cap=10_000):
        self.contacts = {c["id"]: c for c in contacts}
        self.archived: dict[str, dict] = {}  # id -> the contact, with its archivedAt
        self.search_cap = search_cap
        self.searches: list[dict] = []
        self.properties: dict[str, dict] = {}
        self.updates: list[dict] = []
        self.refuse_update: set[str] = set()
        s = self.server = ProviderServer(check=openapi_check())
        s.on("GET", "/crm/v3/objects/contacts", self.list_contacts)
        s.on("POST", "/crm/v3/objects/contacts/search", self.search)
        s.on("GET", "/crm/v3/properties/contacts/(?P<name>[a-z0-9_]+)", self.get_property, required=False)
        s.on("POST", "/crm/v3/properties/contacts", self.create_property, required=False)
        s.on("POST", "/crm/v3/objects/contacts/batch/read", self.batch_read, required=False)
        s.on("POST", "/crm/v3/objects/contacts/batch/update", self.batch_update, required=False)

    def authorised(self, request):
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    def denied(self):
        return error(401, "Authentication credentials not found. This API supports OAuth 2.0 authentication.", "INVALID_AUTHENTICATION")

    def list_contacts(self, request, match):
        if not self.authorised(request):
            return self.denied()
        limit = int(request.args.get("limit", 10))
        if request.args.get("archived") != "true":
            return {"results": [self.public(c) for c in list(self.contacts.values())[:limit]]}
        rows = sorted(self.archived.values(), key=lambda c: int(c["id"]))  # archived ones: listed in id order, paged with after
        start = int(request.args.get("after") or 0)
        page = rows[start : start + limit]
        out = {"results": [{**self.public(c), "archived": True, "archivedAt": c["archivedAt"]} for c in page]}
        if start + len(page) < len(rows):
            out["paging"] = {"next": {"after": str(start + len(page)), "link": f"?after={start + len(page)}"}}
        return out

    def archive(self, cid: str, when: datetime) -> None:
        """What deleting a contact in HubSpot does: it leaves the search and joins the archived list."""
        self.archived[cid] = {**self.contacts.pop(cid), "archivedAt": when.isoformat() + "Z"}

    @staticmethod
    def public(c):
        return {"id": c["id"], "properties": c["properties"], "createdAt": "2025-01-01T00:00:00Z",
                "updatedAt": c["updatedAt"], "archived": False}

    def search(self, request, match):
        if not self.authorised(request):
            return self.denied()
        body = request.get_json()
        self.searches.append(body)
        if body["after"] + body["limit"] > self.search_cap:
            return error(400, f"There was a problem with the request. Search results are limited to {self.search_cap}.", "VALIDATION_ERROR")
        assert body["sorts"] == ["hs_object_id"]
        rows = [c for c in self.contacts.values() if all(self.matches(c, f) for g in body["filterGroups"] for f in g["filters"])]
        rows.sort(key=lambda c: int(c["id"]))
        page = rows[body["after"] : body["after"] + body["limit"]]
        out = {"total": len(rows), "results": [{**self.public(c), "properties": {k: v for k, v in c["properties"].items() if k in body["properties"] or k == "hs_object_id"} if isinstance(c["properties"], dict) else c["properties"]} for c in page]}
        if body["after"] + len(page) < len(rows):
            nxt = str(body["after"] + len(page))
            out["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return out

    @staticmethod
    def matches(contact, flt):
        if flt["propertyName"] == "hs_object_id":
            value = int(contact["id"])
        else:
            value = int(contact["lastmodified_ms"])
        target = int(flt["value"])
        return {"GT": value > target, "GTE": value >= target, "LT": value < target, "LTE": value <= target, "EQ": value == target}[flt["operator"]]

    def get_property(self, request, match):
        name = match["name"]
        if name not in self.properties:
            return error(404, f"Unable to find property {name}", "OBJECT_NOT_FOUND")
        return self.properties[name]

    def create_property(self, request, match):
        body = request.get_json()
        assert body["type"] == "enumeration" and body["fieldType"] == "booleancheckbox"
        self.properties[body["name"]] = {**body, "hidden": False, "modificationMetadata": {}}
        return 201, self.properties[body["name"]]

    def batch_read(self, request, match):
        body = request.get_json()
        assert body["idProperty"] == "email"
        by_email = {c["properties"].get("email"): c for c in self.contacts.values() if isinstance(c["properties"], dict)}
        found = [self.public(by_email[i["id"]]) for i in body["inputs"] if i["id"] in by_email]
        now = "2026-11-22T00:00:00Z"
        return {"status": "COMPLETE", "results": found, "startedAt": now, "completedAt": now}

    def batch_update(self, request, match):
        body = request.get_json()
        self.updates.extend(body["inputs"])
        now = "2026-11-22T00:00:00Z"
        done, refused = [], []
        for item in body["inputs"]:
            (refused if item["id"] in self.refuse_update else done).append(item)
            if item["id"] not in self.refuse_update:
                self.contacts[item["id"]]["properties"].update(item["properties"])
        answer = {"status": "COMPLETE", "results": [self.public(self.contacts[i["id"]]) for i in done], "startedAt": now, "completedAt": now}
        if refused:
            answer["errors"] = [{"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid",
                                 "context": {"ids": [i["id"] for i in refused]}}]
            answer["numErrors"] = len(refused)
            return 207, answer
        return answer


def contact(i, when, **props):
    return {"id": str(100 + i), "updatedAt": when.isoformat() + "Z", "lastmodified_ms": ms(when),
            "properties": {"email": f"lead{i}@example.com", "firstname": f"Lead{i}", "lastname": "Smith",
                           "lifecyclestage": "opportunity" if i % 3 == 0 else "lead", "hs_object_id": str(100 + i),
                           "lastmodifieddate": when.isoformat() + "Z", **props}}


@pytest.fixture
def hubspot(shop, monkeypatch):
    import personalize_hubspot

    monkeypatch.setattr(personalize_hubspot, "PAGE_SIZE", 10)  # pages of 10 rather than 100: the same paths, faster
    people = [contact(i, T0 + timedelta(minutes=i)) for i in range(25)]
    people.append({"id": "999", "updatedAt": T0.isoformat() + "Z", "lastmodified_ms": ms(T0), "properties": None})
    api = HubSpot(people, search_cap=15)  # the 10,000 result limit, scaled down
    with api.server:
        save_connection(shop.id, "hubspot", {"access_token": TOKEN, "api_url": api.server.url})
        yield api
    api.server.verify()


def test_contacts_with_lifecycle_stage_into_profiles(hubspot, shop, sleep):
    summary = engine.run_sync(shop.id, "hubspot", sleep=sleep)
    assert summary["status"] == "succeeded", summary
    assert summary["records_out"] == 25 and summary["skipped"] == 1
    pid = lookup(shop.id, "hubspot_id", ["100"])["100"]
    assert lookup(shop.id, "email", ["lead0@example.com"])["lead0@example.com"] == pid
    attrs = {k: v["value"] for k, v in attributes_of(pid).items()}
    assert attrs["lifecycle_stage"] == "opportunity" and attrs["first_name"] == "Lead0" and attrs["last_name"] == "Smith"
    assert attributes_of(pid)["lifecycle_stage"]["source"] == "hubspot"
    assert "email" not in attrs and "hs_object_id" not in attrs


def test_paging_by_id_never_meets_the_search_result_limit(hubspot, shop, sleep):
    engine.run_sync(shop.id, "hubspot", sleep=sleep)
    assert all(s["after"] == 0 for s in hubspot.searches)
    ids = [next(f["value"] for f in s["filterGroups"][0]["filters"] if f["propertyName"] == "hs_object_id") for s in hubspot.searches]
    assert ids == ["0", "109", "119"]  # pages of 10, 10, and 5 plus the malformed one


def test_search_requests_are_paced_to_five_a_second(hubspot, shop, sleep):
    engine.run_sync(shop.id, "hubspot", sleep=sleep, http_options={"clock": lambda: 1000.0})  # time stands still
    assert sleep.calls == [pytest.approx(0.2)] * 2, "the second and third searches wait their turn"


def test_interrupted_sync_resumes_without_duplicates_or_gaps(hubspot, shop, sleep):
    answer = hubspot.search
    calls = []

    def fails_on_the_third_page(request, match):
        calls.append(1)
        if len(calls) == 3:
            return 502, {"status": "error", "message": "Bad gateway"}
        return answer(request, match)

    hubspot.server.routes[1].handler = fails_on_the_third_page
    failed = engine.run_sync(shop.id, "hubspot", sleep=sleep, http_options={"max_retries": 0})
    assert failed["status"] == "failed" and failed["records_out"] == 20
    state = failed["cursor"]["contacts"]
    assert state["last_id"] == 119 and state["until"]
    resumed = engine.run_sync(shop.id, "hubspot", sleep=sleep)
    assert resumed["status"] == "succeeded" and resumed["records_in"] == 5
    assert db.session.scalar(select(func.count()).select_from(Profile)) == 25


def test_incremental_runs_filter_on_lastmodifieddate_with_a_lookback(hubspot, shop, sleep):
    first = engine.run_sync(shop.id, "hubspot", sleep=sleep)
    until = first["cursor"]["contacts"]["since"]
    hubspot.searches.clear()
    engine.run_sync(shop.id, "hubspot", sleep=sleep)
    filters = {(f["propertyName"], f["operator"]): f["value"] for f in hubspot.searches[0]["filterGroups"][0]["filters"]}
    assert int(filters[("lastmodifieddate", "GTE")]) == until - 5 * 60 * 1000


def test_429_without_retry_after_backs_off_and_with_it_waits_as_told(hubspot, shop, sleep):
    limit = {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "policyName": "SECONDLY"}
    hubspot.server.fault("POST", "/crm/v3/objects/contacts/search", 429, limit)
    hubspot.server.fault("POST", "/crm/v3/objects/contacts/search", 429, limit, headers={"Retry-After": "3"})
    summary = engine.run_sync(shop.id, "hubspot", sleep=sleep)
    assert summary["status"] == "succeeded"
    assert 3.0 in sleep.calls and any(0.5 <= s <= 1.0 for s in sleep.calls)


def test_a_bad_token_fails_clearly_and_writes_nothing(hubspot, shop, sleep):
    save_connection(shop.id, "hubspot", {"access_token": "pat-revoked"})
    hubspot.server.routes[1].required = False
    summary = engine.run_sync(shop.id, "hubspot", sleep=sleep)
    assert summary["status"] == "failed" and "credentials refused" in summary["message"] and "401" in summary["message"]
    assert db.session.scalar(select(func.count()).select_from(Profile)) == 0


def test_push_segment_membership_as_a_contact_property(hubspot, shop, sleep):
    engine.run_sync(shop.id, "hubspot", sleep=sleep)
    known = lookup(shop.id, "hubspot_id", ["101"])["101"]
    by_email = profiles_for(shop.id, "email", ["lead5@example.com"])["lead5@example.com"]
    stranger = profiles_for(shop.id, "email", ["stranger@example.com"])["stranger@example.com"]
    db.session.commit()
    hubspot.refuse_update.add("102")
    refused = lookup(shop.id, "hubspot_id", ["102"])["102"]
    changes = [SegmentChange("Big spenders", known, True), SegmentChange("Big spenders", by_email, True),
               SegmentChange("Big spenders", stranger, True), SegmentChange("Big spenders", refused, False)]
    result = push_changes(shop.id, "hubspot", "property", changes, sleep=sleep)
    assert [r.status for r in result["results"]] == ["ok", "ok", "skipped", "failed"]
    assert result["status"] == "partial"
    assert "personalize_big_spenders" in hubspot.properties
    assert hubspot.contacts["101"]["properties"]["personalize_big_spenders"] == "true"
    assert hubspot.contacts["105"]["properties"]["personalize_big_spenders"] == "true"
    again = push_changes(shop.id, "hubspot", "property", [SegmentChange("Big spenders", known, False)], sleep=sleep)
    assert again["status"] == "succeeded" and hubspot.contacts["101"]["properties"]["personalize_big_spenders"] == "false"
    assert hubspot.server.hits("POST", "/crm/v3/properties/contacts") == 1, "the property is created once"
    assert re.match(r"^[a-z0-9_]+$", next(iter(hubspot.properties)))


def test_contacts_archived_in_hubspot_lose_their_link_and_hubspots_attributes(hubspot, shop, sleep):
    first = engine.run_sync(shop.id, "hubspot", sleep=sleep)
    assert first["streams"]["archived_contacts"]["status"] == "succeeded" and first["streams"]["archived_contacts"]["in"] == 0
    gone, old, kept = (lookup(shop.id, "hubspot_id", [i])[i] for i in ("101", "102", "103"))
    hubspot.archive("101", datetime.utcnow())
    hubspot.archive("102", T0 - timedelta(days=30))  # archived before the last sync: that one has seen it already
    second = engine.run_sync(shop.id, "hubspot", sleep=sleep)
    assert second["status"] == "succeeded", second
    assert second["streams"]["archived_contacts"]["in"] == 1
    db.session.expire_all()
    assert lookup(shop.id, "hubspot_id", ["101"]) == {}
    assert not any(a["source"] == "hubspot" for a in attributes_of(gone).values())
    assert lookup(shop.id, "email", ["lead1@example.com"]) == {"lead1@example.com": gone}, "still a shopper, known by email"
    assert lookup(shop.id, "hubspot_id", ["102"]) == {"102": old}
    assert attributes_of(kept)["lifecycle_stage"]["source"] == "hubspot"


def test_resume_states_conform(hubspot):
    from personalize_hubspot import HubSpotConnector

    from personalize.connectors import ConnectorContext
    from personalize.sync.http import HttpClient
    from personalize.sync.testing import check_resume, local_policy, recording_sleep

    hubspot.server.routes[0].required = False  # no check() here: pulls only

    def make():
        http = HttpClient(sleep=recording_sleep(), policy=local_policy())
        return HubSpotConnector(ConnectorContext(settings={"access_token": TOKEN, "api_url": hubspot.server.url}, http=http, started_at=datetime(2026, 11, 22)))

    assert check_resume(make, "contacts") == []
    for i in range(10, 23):  # more than a page of archived contacts
        hubspot.archive(str(100 + i), datetime(2026, 11, 20) + timedelta(minutes=i))
    assert check_resume(make, "archived_contacts") == []


def test_journey_action_sets_a_contact_property(hubspot, shop, sleep):
    from .journeys import run_action_step

    engine.run_sync(shop.id, "hubspot", sleep=sleep)
    known = lookup(shop.id, "hubspot_id", ["101"])["101"]
    by_email = profiles_for(shop.id, "email", ["lead5@example.com"])["lead5@example.com"]
    stranger = profiles_for(shop.id, "email", ["stranger@example.com"])["stranger@example.com"]
    db.session.commit()
    hubspot.refuse_update.add("102")
    refused = lookup(shop.id, "hubspot_id", ["102"])["102"]
    got = run_action_step(shop.id, "hubspot", "set_property", {"property": "lifecyclestage", "value": "customer"},
                          [known, by_email, stranger, refused], sleep=sleep)
    assert {pid: v[0] for pid, v in got.items()} == {known: "acted", by_email: "acted", stranger: "skipped_remote", refused: "failed"}
    assert got[stranger][1] == {"reason": "not a HubSpot contact"}
    assert hubspot.contacts["101"]["properties"]["lifecyclestage"] == "customer"
    assert hubspot.contacts["105"]["properties"]["lifecyclestage"] == "customer"
    assert hubspot.server.hits("POST", "/crm/v3/objects/contacts/batch/update") == 1, "one request for the batch"
