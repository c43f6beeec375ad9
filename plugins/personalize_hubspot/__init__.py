"""HubSpot: contacts with lifecycle stage and properties, through the CRM v3 API with a
private-app token; segment membership pushed back as a contact property.

- Auth: a private app's access token as ``Authorization: Bearer …`` (scopes
  ``crm.objects.contacts.read``, ``crm.objects.contacts.write``,
  ``crm.schemas.contacts.read`` and ``crm.schemas.contacts.write`` for the property).
- Pull: ``POST /crm/v3/objects/contacts/search`` filtered on ``lastmodifieddate``
  (epoch milliseconds) between the last sync and this one, sorted by
  ``hs_object_id`` and paged by id (``hs_object_id > last id``) rather than by
  ``after``: search stops at 10,000 results per query, and keyset paging never
  reaches that limit. Search allows about five requests a second, so requests are
  paced at 0.2 s.
- Deletions: contacts archived (deleted) in HubSpot are listed with
  ``GET /crm/v3/objects/contacts?archived=true``, paged with ``after``; those archived
  since the last sync (with the same look-back) are yielded as deletions, so the
  profile loses its HubSpot id and HubSpot's attributes. The list has no filter on
  ``archivedAt``: each run reads it whole, and only its end moves the cursor.
- Push: each segment is a contact property ``<prefix><segment>`` (a checkbox,
  ``true``/``false``) created through the Properties API when missing; values are
  written with ``POST /crm/v3/objects/contacts/batch/update`` (≤ 100 a request),
  contacts found by their HubSpot id, or by email through ``batch/read``.
- Recommendations (the connection's ``recommendations`` setting, 1-10): after each sync, each
  contact's top N as single-line text properties ``<prefix>rec1_title``, ``…rec1_url``,
  ``…rec1_image``, ``…rec1_price`` … and ``<prefix>rec_block`` (the start of the contact's
  open-time email block addresses), created once through the Properties API and written
  with ``batch/update`` like segments; positions the list no longer fills are emptied.
  In a HubSpot email: ``{{ contact.personalize_rec1_title }}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from personalize import hookimpl
from personalize.records import (
    ActionResult,
    ActionTarget,
    Checkpoint,
    CheckResult,
    Connector,
    ContactRecommendations,
    ContactRecord,
    DeletedRecord,
    HttpStatusError,
    JourneyAction,
    PushResult,
    PushTarget,
    SegmentChange,
    Setting,
    SkippedRecord,
    Stream,
    StreamError,
    parse_time,
    recommendations_setting,
)

__version__ = "1.0.0"

API_VERSION = "crm/v3"
PAGE_SIZE = 100  # search allows up to 200
BATCH = 100
LOOKBACK = timedelta(minutes=5)  # lastmodifieddate settles a little after the change
STATE_VERSION = 1
SEARCH_INTERVAL = 0.2
DEFAULT_PROPERTIES = ("email", "firstname", "lastname", "lifecyclestage", "hs_lead_status", "company", "jobtitle", "lastmodifieddate")
BOOKKEEPING = {"email", "hs_object_id", "lastmodifieddate", "createdate"}
PROPERTY_GROUP = "contactinformation"
RECOMMENDATION_SLOTS = 10
REC_PARTS = (("title", "title"), ("url", "url"), ("image", "image"), ("price", "price_text"))


def epoch_ms(when: datetime) -> int:
    return int(when.replace(tzinfo=UTC).timestamp() * 1000)



def property_name(prefix: str, segment: str) -> str:
    """A HubSpot property name for a segment: lower case letters, digits and underscores."""
    slug = re.sub(r"[^a-z0-9]+", "_", segment.lower()).strip("_") or "segment"
    return (prefix + slug)[:100]


class HubSpotConnector(Connector):
    name = "hubspot"
    title = "HubSpot"
    kind = "crm"
    version = __version__
    api_version = API_VERSION
    identity_kind = "hubspot_id"
    default_mapping = {
        "*": "*", "firstname": "first_name", "lastname": "last_name", "lifecyclestage": "lifecycle_stage",
        "hs_lead_status": "lead_status", "jobtitle": "job_title",
    }
    settings = (
        Setting("access_token", "Private app access token", secret=True, help="HubSpot → Settings → Integrations → Private apps (pat-…)."),
        Setting("properties", "Extra contact properties", required=False, help="Comma-separated internal names to read besides the usual ones."),
        Setting("property_prefix", "Segment property prefix", required=False, default="personalize_", help="Segments become checkbox properties named prefix + segment."),
        Setting("api_url", "API address", type="url", required=False, default="https://api.hubapi.com",
                help="Leave as is. Another address (a proxy, a test server) works only when the server operator trusts it (OUTBOUND_ALLOWED_HOSTS)."),
        recommendations_setting(RECOMMENDATION_SLOTS, "How many of each contact's recommendations to write as contact properties "
                                "(prefix + rec1_title, rec1_url, rec1_image, rec1_price…) after every sync, 0 to 10 (0: none)."),
    )
    recommendation_slots = RECOMMENDATION_SLOTS
    allowed_hosts = ("api.hubapi.com",)
    streams = (
        Stream("contacts", "contact", primary_key="id", cursor_field="lastmodifieddate", sorted=False, lookback_seconds=300),
        Stream("archived_contacts", "contact", primary_key="id", cursor_field="archivedAt", sorted=False, lookback_seconds=300),
    )
    push_targets = (PushTarget("property", help="A checkbox contact property per segment."),)
    push_batch_size = 500

    def __init__(self, context):
        super().__init__(context)
        self.api = self.http.with_options(
            base_url=str(self.config.get("api_url") or "https://api.hubapi.com"),
            headers={"Authorization": f"Bearer {self.config.get('access_token') or ''}"},
        )
        self.search_api = self.api.with_options(
            base_url=self.api.base_url, headers={"Authorization": f"Bearer {self.config.get('access_token') or ''}"},
            min_interval=SEARCH_INTERVAL,
        )
        self._properties_ready: set[str] = set()

    def properties(self) -> list[str]:
        extra = [p.strip() for p in str(self.config.get("properties") or "").split(",") if p.strip()]
        return list(dict.fromkeys([*DEFAULT_PROPERTIES, *extra]))

    def check(self) -> CheckResult:
        _results(self.api.get_json("/crm/v3/objects/contacts", params={"limit": 1, "archived": "false"}), "contacts")
        return CheckResult(True, "HubSpot contacts readable", API_VERSION)

    def pull(self, stream: str, state: dict[str, Any] | None) -> Iterator[Any]:
        if stream == "archived_contacts":
            yield from self.pull_archived(state or {})
            return
        state = state or {}
        if state.get("until") is not None:  # finish an interrupted window as it was
            since, until, last_id = state.get("since"), state["until"], int(state.get("last_id") or 0)
        else:
            since = state.get("since")
            since = since - int(LOOKBACK.total_seconds() * 1000) if since is not None else None
            until, last_id = epoch_ms(self.context.started_at), 0
        while True:
            filters = [
                {"propertyName": "lastmodifieddate", "operator": "LTE", "value": str(until)},
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
            ]
            if since is not None:
                filters.append({"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since)})
            body = {
                "filterGroups": [{"filters": filters}], "sorts": ["hs_object_id"], "properties": self.properties(),
                "limit": PAGE_SIZE, "after": 0,
            }
            page = self.search_api.post_json("/crm/v3/objects/contacts/search", body)
            results = _results(page, "search")
            for obj in results:
                yield self.contact(obj)
                if str(obj.get("id") or "").isdigit():
                    last_id = max(last_id, int(obj["id"]))
            if not results or not (page.get("paging") or {}).get("next"):
                break
            yield Checkpoint({"v": STATE_VERSION, "since": since, "until": until, "last_id": last_id})
        yield Checkpoint({"v": STATE_VERSION, "since": until})

    def pull_archived(self, state: dict[str, Any]) -> Iterator[Any]:
        """Contacts archived since the last run (a look-back before it), as deletions."""
        if state.get("until") is not None:  # finish an interrupted listing as it was
            since, until, after = state.get("since"), state["until"], state.get("after")
        else:
            since = state.get("since")
            since = since - int(LOOKBACK.total_seconds() * 1000) if since is not None else None
            until, after = epoch_ms(self.context.started_at), None
        while True:
            params: dict[str, Any] = {"archived": "true", "limit": PAGE_SIZE, "properties": "email"}
            if after:
                params["after"] = after
            page = self.api.get_json("/crm/v3/objects/contacts", params=params)
            for obj in _results(page, "archived contacts"):
                when = parse_time(obj.get("archivedAt"))
                if not str(obj.get("id") or "").strip():
                    yield SkippedRecord("archived contact without id")
                elif since is None or when is None or epoch_ms(when) >= since:
                    yield DeletedRecord("contact", str(obj["id"]))
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
            yield Checkpoint({"v": STATE_VERSION, "since": since, "until": until, "after": after})
        yield Checkpoint({"v": STATE_VERSION, "since": until})

    def contact(self, obj: dict[str, Any]) -> ContactRecord | SkippedRecord:
        props = obj.get("properties")
        if not obj.get("id") or not isinstance(props, dict):
            return SkippedRecord("contact without id or properties", str(obj.get("id") or ""))
        attrs = {k: v for k, v in props.items() if k not in BOOKKEEPING and v not in (None, "")}
        return ContactRecord(external_id=str(obj["id"]), email=props.get("email") or "", attributes=attrs,
                             updated_at=parse_time(obj.get("updatedAt") or props.get("lastmodifieddate")))

    # -- push --

    def ensure_property(self, name: str, segment: str) -> None:
        if name in self._properties_ready:
            return
        response = self.api.request("GET", f"/crm/v3/properties/contacts/{name}", allow=(404,))
        if response.status_code == 404:
            self.api.post_json("/crm/v3/properties/contacts", {
                "name": name, "label": f"Segment: {segment}"[:100], "type": "enumeration", "fieldType": "booleancheckbox",
                "groupName": PROPERTY_GROUP, "description": "Set by personalize: the contact is in this segment.",
                "options": [
                    {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                    {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
                ],
            })
        self._properties_ready.add(name)

    def push(self, target: str, changes: list[SegmentChange]) -> list[PushResult]:
        prefix = str(self.config.get("property_prefix") or "personalize_")
        results: list[PushResult] = []
        ids = self._ids_by_email([c.email for c in changes if not c.identities.get("hubspot_id") and c.email])
        updates: list[tuple[SegmentChange, str, str]] = []
        for change in changes:
            contact = change.identities.get("hubspot_id") or ids.get(change.email.lower())
            if not contact:
                results.append(PushResult(change.profile_id, change.segment, "skipped", "not a HubSpot contact"))
                continue
            prop = property_name(prefix, change.segment)
            self.ensure_property(prop, change.segment)
            updates.append((change, contact, prop))
        for start in range(0, len(updates), BATCH):
            batch = updates[start : start + BATCH]
            merged: dict[str, dict[str, str]] = {}
            for change, contact, prop in batch:
                merged.setdefault(contact, {})[prop] = "true" if change.added else "false"
            response = self.api.request(
                "POST", "/crm/v3/objects/contacts/batch/update",
                json={"inputs": [{"id": cid, "properties": props} for cid, props in merged.items()]}, allow=(207,),
            )
            answer = response.json()
            _results(answer, "batch update")  # a 200 without results is an error, not a success
            failed = _failed_ids(answer) if response.status_code == 207 else {}
            for change, contact, _prop in batch:
                if contact in failed:
                    results.append(PushResult(change.profile_id, change.segment, "failed", failed[contact]))
                else:
                    results.append(PushResult(change.profile_id, change.segment, "ok"))
        return results

    # -- recommendations --

    def recommendation_properties(self, positions: int) -> dict[str, str]:
        """Property name -> label of the properties recommendations use."""
        prefix = str(self.config.get("property_prefix") or "personalize_")
        out = {f"{prefix}rec_block"[:100]: "Recommendations: email block address"}
        for n in range(1, positions + 1):
            for part, _attr in REC_PARTS:
                out[f"{prefix}rec{n}_{part}"[:100]] = f"Recommendation {n}: {part}"
        return out

    def ensure_text_property(self, name: str, label: str) -> None:
        if name in self._properties_ready:
            return
        response = self.api.request("GET", f"/crm/v3/properties/contacts/{name}", allow=(404,))
        if response.status_code == 404:
            self.api.post_json("/crm/v3/properties/contacts", {
                "name": name, "label": label[:100], "type": "string", "fieldType": "text", "groupName": PROPERTY_GROUP,
                "description": "Set by personalize after every sync: the contact's current recommendations.",
            })
        self._properties_ready.add(name)

    def push_recommendations(self, lists: list[ContactRecommendations]) -> list[PushResult]:
        positions = max(1, min(RECOMMENDATION_SLOTS, int(self.config.get("recommendations") or 0)))
        wanted = self.recommendation_properties(positions)
        names = list(wanted)
        results: list[PushResult] = []
        ids = self._ids_by_email([c.email for c in lists if not c.identities.get("hubspot_id") and c.email])
        updates: list[tuple[ContactRecommendations, str]] = []
        for contact in lists:
            cid = contact.identities.get("hubspot_id") or ids.get(contact.email.lower())
            if not cid:
                results.append(PushResult(contact.profile_id, "recommendations", "skipped", "not a HubSpot contact"))
            else:
                updates.append((contact, cid))
        if updates:
            for name, label in wanted.items():
                self.ensure_text_property(name, label)
        for start in range(0, len(updates), BATCH):
            batch = updates[start : start + BATCH]
            inputs = []
            for contact, cid in batch:
                props = {name: "" for name in names}
                props[names[0]] = contact.block_url
                prefix = names[0][: -len("rec_block")]
                for item in contact.items[:positions]:
                    for part, attr in REC_PARTS:
                        props[f"{prefix}rec{item.position}_{part}"[:100]] = str(getattr(item, attr) or "")
                inputs.append({"id": cid, "properties": props})
            response = self.api.request("POST", "/crm/v3/objects/contacts/batch/update", json={"inputs": inputs}, allow=(207,))
            answer = response.json()
            _results(answer, "batch update")
            failed = _failed_ids(answer) if response.status_code == 207 else {}
            for contact, cid in batch:
                if cid in failed:
                    results.append(PushResult(contact.profile_id, "recommendations", "failed", failed[cid]))
                else:
                    results.append(PushResult(contact.profile_id, "recommendations", "ok"))
        return results

    def _ids_by_email(self, emails: list[str]) -> dict[str, str]:
        emails = list(dict.fromkeys(e.lower() for e in emails))
        found: dict[str, str] = {}
        for start in range(0, len(emails), BATCH):
            chunk = emails[start : start + BATCH]
            try:
                response = self.api.request(
                    "POST", "/crm/v3/objects/contacts/batch/read",
                    json={"properties": ["email"], "idProperty": "email", "inputs": [{"id": e} for e in chunk]}, allow=(207,),
                )
            except HttpStatusError as exc:
                if exc.status == 404:
                    continue
                raise
            for obj in _results(response.json(), "batch read"):
                email = ((obj.get("properties") or {}).get("email") or "").lower()
                if email:
                    found[email] = str(obj["id"])
        return found


def _results(page: Any, what: str) -> list[Any]:
    """The ``results`` list of a page. A 200 without one carries an error (or is not HubSpot's answer):
    taking it for an empty page would end the window and move the cursor past unread contacts."""
    results = page.get("results") if isinstance(page, dict) else None
    if not isinstance(results, list):
        said = page.get("message") if isinstance(page, dict) else None
        raise StreamError(f"HubSpot's {what} answer has no list of results" + (f": {str(said)[:200]}" if said else ""))
    return results


def _failed_ids(body: dict[str, Any]) -> dict[str, str]:
    out = {}
    for error in body.get("errors") or []:
        for cid in ((error.get("context") or {}).get("ids") or []):
            out[str(cid)] = error.get("message") or "refused"
    return out


# -- journey actions (the register_journey_actions hook) --


def set_contact_property(connector: HubSpotConnector, params: dict[str, Any], targets: list[ActionTarget]) -> list[ActionResult]:
    """Set one contact property (the lifecycle stage, a lead status…) on each person's HubSpot contact,
    100 contacts a request; setting a value twice changes nothing."""
    prop, value = str(params.get("property") or "").strip(), params.get("value")
    value = "" if value is None else str(value)
    results: dict[str, ActionResult] = {}
    ids = connector._ids_by_email([t.email for t in targets if not t.identities.get("hubspot_id") and t.email])
    addressed: list[tuple[ActionTarget, str]] = []
    for t in targets:
        contact = t.identities.get("hubspot_id") or ids.get(t.email.lower())
        if contact:
            addressed.append((t, contact))
        else:
            results[t.key] = ActionResult(t.key, "skipped", "not a HubSpot contact")
    for start in range(0, len(addressed), BATCH):
        batch = addressed[start : start + BATCH]
        unique = list(dict.fromkeys(contact for _t, contact in batch))
        try:
            response = connector.api.request(
                "POST", "/crm/v3/objects/contacts/batch/update",
                json={"inputs": [{"id": cid, "properties": {prop: value}} for cid in unique]}, allow=(207,),
            )
        except HttpStatusError as exc:  # 400: no such property, or a value it does not take
            for t, _contact in batch:
                results[t.key] = ActionResult(t.key, "failed", f"HubSpot refused the update: {exc.body[:200] or exc.status}")
            continue
        answer = response.json()
        _results(answer, "batch update")
        failed = _failed_ids(answer) if response.status_code == 207 else {}
        for t, contact in batch:
            results[t.key] = ActionResult(t.key, "failed", failed[contact]) if contact in failed else ActionResult(t.key, "ok")
    return [results[t.key] for t in targets]


@hookimpl
def register_journey_actions():
    return [
        JourneyAction("hubspot", "set_property", "Set a contact property", set_contact_property,
                      params=(Setting("property", "Property", help="Internal name, e.g. lifecyclestage or hs_lead_status."),
                              Setting("value", "Value", help="e.g. customer, marketingqualifiedlead, opportunity.")),
                      help="Sets a property of the person's HubSpot contact (found by HubSpot id, else by email).", batch_size=500),
    ]


@hookimpl
def register_connectors():
    return [HubSpotConnector]
