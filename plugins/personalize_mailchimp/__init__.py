"""Mailchimp: audience members with their tags, campaign activity (opens, clicks, bounces),
and segments pushed back as member tags — through the Marketing API 3.0.

- Base URL ``https://<dc>.api.mailchimp.com/3.0``, the data centre being the API
  key's suffix (``…-us20``); HTTP Basic auth with any user name and the key.
- Members: ``GET /lists/{list_id}/members`` sorted by ``last_changed`` ascending,
  bounded by ``since_last_changed`` and a fixed ``before_last_changed`` (the sync's
  start). Paging is by time rather than by a growing ``offset``: each page starts at
  the newest ``last_changed`` read so far, skipping the members already read at that
  second, so members that change while we page cannot shift a page and hide someone.
- Deletions: archiving a member (what deleting one in Mailchimp's app or with
  ``DELETE /lists/{list_id}/members/{hash}`` does) sets its status to ``archived``,
  and archived members leave the default member listing. The ``archived_members``
  stream lists them with ``status=archived``, paged the same way, and yields each one
  archived since the last run (and the hour before it) as a deletion; the members
  stream never stores one.
  Members deleted for good leave no trace in the API and cannot be read.
- Activity: ``GET /campaigns`` (sent in the last ``activity_days`` days, of this
  audience), then ``GET /reports/{campaign_id}/email-activity?since=…`` per campaign.
- Tags: ``POST /lists/{list_id}/members/{md5 of the lower-cased email}/tags`` with
  ``{"name", "status": "active" | "inactive"}``; Mailchimp compares tag names
  without regard to case. A member who is not in the audience is skipped.
- Recommendations (the connection's ``recommendations`` setting, 1-6): after each sync, each
  member's top N as audience merge fields ``REC1_TITLE``, ``REC1_URL``, ``REC1_IMAGE``,
  ``REC1_PRICE``… and ``REC_BLOCK`` (the start of the member's open-time email block
  addresses), written with ``PATCH /lists/{list_id}/members/{hash}`` (``merge_fields``);
  the merge fields are created once (``POST /lists/{list_id}/merge-fields``, text, not
  required, hidden from the signup form). Positions the list no longer fills are emptied.
  Values are cut to 255 characters (Mailchimp's text field limit).
- At most 10 simultaneous connections per key: the sync engine uses one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from personalize import hookimpl
from personalize.records import (
    ActionResult,
    ActionTarget,
    Checkpoint,
    CheckResult,
    ConfigError,
    Connector,
    ContactRecommendations,
    ContactRecord,
    DeletedRecord,
    EngagementRecord,
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

API_VERSION = "3.0"
PAGE_SIZE = 1000
ARCHIVED_LOOKBACK = timedelta(hours=1)
STATE_VERSION = 1
ACTIONS = {"open": "email_open", "click": "email_click", "bounce": "email_bounce"}
RECOMMENDATION_SLOTS = 6  # merge tags are at most 10 characters: REC1_TITLE … REC9_TITLE
REC_PARTS = (("TITLE", "title"), ("URL", "url"), ("IMAGE", "image"), ("PRICE", "price_text"))
TEXT_LIMIT = 255
MEMBER_FIELDS = ",".join(
    f"members.{f}" for f in ("id", "email_address", "status", "merge_fields", "tags", "last_changed", "member_rating", "stats", "language", "vip")
) + ",total_items"


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased email address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def _iso(when: datetime) -> str:
    return when.replace(microsecond=0).isoformat() + "+00:00"



class MailchimpConnector(Connector):
    name = "mailchimp"
    title = "Mailchimp"
    kind = "email"
    version = __version__
    api_version = API_VERSION
    identity_kind = "mailchimp_id"
    max_concurrency = 10
    default_mapping = {
        "FNAME": "first_name", "LNAME": "last_name", "status": "email_status", "tags": "mailchimp_tags",
        "member_rating": "email_rating", "avg_open_rate": "email_open_rate", "avg_click_rate": "email_click_rate",
        "language": "language", "vip": "email_vip",
    }
    settings = (
        Setting("api_key", "API key", secret=True, help="Mailchimp → Profile → Extras → API keys; it ends with your data centre, e.g. -us20."),
        Setting("list_id", "Audience id", help="Audience → Settings → Audience name and defaults → Audience ID."),
        Setting("tag_prefix", "Tag prefix", required=False, default="", help="Segments become tags named prefix + segment name."),
        Setting("activity_days", "Days of campaign activity", type="integer", required=False, default=30,
                help="Campaigns sent within this many days are read for opens and clicks."),
        Setting("api_url", "API address", type="url", required=False,
                help="Leave empty: https://<dc>.api.mailchimp.com/3.0, the data centre taken from the key. Another address works only when the server operator trusts it (OUTBOUND_ALLOWED_HOSTS)."),
        recommendations_setting(RECOMMENDATION_SLOTS, "How many of each member's recommendations to write as merge fields "
                                "(REC1_TITLE, REC1_URL, REC1_IMAGE, REC1_PRICE…) after every sync, 0 to 6 (0: none)."),
    )
    recommendation_slots = RECOMMENDATION_SLOTS
    #: https://<dc>.api.mailchimp.com: one data centre label, like us20
    allowed_hosts = ("*.api.mailchimp.com",)
    streams = (
        Stream("members", "contact", primary_key="id", cursor_field="last_changed", sorted=True),
        Stream("archived_members", "contact", primary_key="id", cursor_field="last_changed", sorted=True, lookback_seconds=3600),
        Stream("activity", "engagement", primary_key="id", cursor_field="timestamp", sorted=False, lookback_seconds=3600),
    )
    push_targets = (PushTarget("tags", help="Adds (active) or removes (inactive) a member tag per segment."),)

    def __init__(self, context):
        super().__init__(context)
        key = str(self.config.get("api_key") or "")
        base = self.config.get("api_url")
        if not base:
            dc = key.rpartition("-")[2] if "-" in key else ""
            if not dc.isalnum():
                raise ConfigError("the API key has no data centre suffix (like -us20); copy the whole key")
            base = f"https://{dc}.api.mailchimp.com/{API_VERSION}"
        self.api = self.http.with_options(base_url=str(base), auth=("personalize", key))
        self.list_id = str(self.config.get("list_id") or "")

    def check(self) -> CheckResult:
        self.api.get_json("/ping")
        try:
            audience = self.api.get_json(f"/lists/{self.list_id}", params={"fields": "id,name,stats.member_count"})
        except HttpStatusError as exc:
            if exc.status == 404:
                raise ConfigError(f"no audience {self.list_id!r} in this Mailchimp account") from None
            raise
        if not isinstance(audience, dict) or audience.get("id") is None:
            raise StreamError("Mailchimp's audience answer has no id")
        return CheckResult(True, f"audience {audience.get('name')!r}", API_VERSION)

    # -- members --

    def pull(self, stream: str, state: dict[str, Any] | None) -> Iterator[Any]:
        if stream == "members":
            yield from self.pull_members(state or {})
        elif stream == "archived_members":
            yield from self.pull_members(state or {}, archived=True)
        else:
            yield from self.pull_activity(state or {})

    def pull_members(self, state: dict[str, Any], archived: bool = False) -> Iterator[Any]:
        """Members changed since the last run as contacts; with ``archived``, members archived
        since then as deletions."""
        until = state.get("until") or _iso(self.context.started_at)
        cursor = state.get("since")  # newest last_changed read
        seen = set(state.get("seen") or [])  # member ids read at exactly that second
        if archived and cursor and not state.get("until"):
            # a new window starts an hour early: when Mailchimp stamps an archive is not documented
            # closely enough to trust to the second, and deleting twice changes nothing
            cursor, seen = _iso(parse_time(cursor) - ARCHIVED_LOOKBACK), set()
        offset = 0
        while True:
            params = {"count": PAGE_SIZE, "offset": offset, "before_last_changed": until, "sort_field": "last_changed",
                      "sort_dir": "ASC", "fields": MEMBER_FIELDS}
            if archived:
                params["status"] = "archived"
            if cursor:  # a second early, whether Mailchimp's bound is inclusive or not; re-read members are skipped
                params["since_last_changed"] = _iso(parse_time(cursor) - timedelta(seconds=1))
            page = self.api.get_json(f"/lists/{self.list_id}/members", params=params)
            members = _items(page, "members")
            progressed = False
            for member in members:
                changed = member.get("last_changed") or ""
                when = parse_time(changed)
                if cursor and when is not None and (when < parse_time(cursor) or (when == parse_time(cursor) and member.get("id") in seen)):
                    continue  # read on an earlier page
                if archived:
                    if member.get("id"):
                        yield DeletedRecord("contact", str(member["id"]))
                    else:
                        yield SkippedRecord("archived member without id")
                elif member.get("status") != "archived":  # not listed by default; should one come, it is no contact
                    yield self.member(member)
                progressed = True
                if when is not None:
                    if cursor is None or when > parse_time(cursor):
                        cursor, seen = _iso(when), set()
                    seen.add(member.get("id"))
            if len(members) < PAGE_SIZE:
                break
            # a full page made of members read before (many at one second): step over it
            offset = 0 if progressed else offset + PAGE_SIZE
            yield Checkpoint({"v": STATE_VERSION, "since": cursor, "seen": sorted(seen), "until": until})
        yield Checkpoint({"v": STATE_VERSION, "since": cursor or until, "seen": sorted(seen) if cursor else []})

    def member(self, member: dict[str, Any]) -> ContactRecord | SkippedRecord:
        email = member.get("email_address") or ""
        if not email or not member.get("id"):
            return SkippedRecord("member without email address", str(member.get("id") or ""))
        attrs: dict[str, Any] = {}
        merge = member.get("merge_fields") if isinstance(member.get("merge_fields"), dict) else {}
        for key in ("FNAME", "LNAME"):
            if merge.get(key):
                attrs[key] = merge[key]
        for key in ("status", "member_rating", "language", "vip"):
            if member.get(key) not in (None, ""):
                attrs[key] = member[key]
        attrs["tags"] = sorted(t.get("name", "") for t in member.get("tags") or [] if isinstance(t, dict) and t.get("name"))
        stats = member.get("stats") if isinstance(member.get("stats"), dict) else {}
        for key in ("avg_open_rate", "avg_click_rate"):
            if isinstance(stats.get(key), int | float):
                attrs[key] = stats[key]
        return ContactRecord(external_id=str(member["id"]), email=email, attributes=attrs, updated_at=parse_time(member.get("last_changed")))

    # -- campaign activity --

    def pull_activity(self, state: dict[str, Any]) -> Iterator[Any]:
        until = state.get("until") or _iso(self.context.started_at)
        since = state.get("since")
        done = set(state.get("done") or [])
        if since and not state.get("until"):
            since = _iso(parse_time(since) - timedelta(hours=1))  # reports settle late
        days = int(self.config.get("activity_days") or 30)
        first_send = _iso(parse_time(until) - timedelta(days=days))
        campaigns = []
        offset = 0
        while True:
            page = self.api.get_json("/campaigns", params={
                "status": "sent", "list_id": self.list_id, "since_send_time": first_send, "before_send_time": until,
                "sort_field": "send_time", "sort_dir": "ASC", "count": PAGE_SIZE, "offset": offset,
                "fields": "campaigns.id,campaigns.send_time,campaigns.settings.subject_line,total_items",
            })
            batch = _items(page, "campaigns")
            campaigns.extend(batch)
            offset += len(batch)
            if len(batch) < PAGE_SIZE or offset >= int(page.get("total_items") or 0):
                break
        for campaign in campaigns:
            cid = campaign.get("id")
            if not cid or cid in done:
                continue
            subject = ((campaign.get("settings") or {}).get("subject_line")) or ""
            offset = 0
            while True:
                params = {"count": PAGE_SIZE, "offset": offset}
                if since:
                    params["since"] = since
                page = self.api.get_json(f"/reports/{cid}/email-activity", params=params)
                emails = _items(page, "emails")
                for entry in emails:
                    yield from self.activity(cid, subject, entry, until)
                offset += len(emails)
                if len(emails) < PAGE_SIZE or offset >= int(page.get("total_items") or 0):
                    break
            done.add(cid)
            yield Checkpoint({"v": STATE_VERSION, "since": since, "until": until, "done": sorted(done)})
        yield Checkpoint({"v": STATE_VERSION, "since": until})

    def activity(self, campaign_id: str, subject: str, entry: dict[str, Any], until: str) -> Iterator[Any]:
        email = entry.get("email_address") or ""
        if not email:
            yield SkippedRecord("activity without email address", campaign_id)
            return
        bound = parse_time(until)
        for act in entry.get("activity") or []:
            kind = ACTIONS.get(act.get("action"))
            when = parse_time(act.get("timestamp"))
            if kind is None or when is None:
                yield SkippedRecord(f"unreadable activity {act.get('action')!r}", f"{campaign_id}/{email}")
                continue
            if when >= bound:
                continue  # the next sync's window
            props = {"campaign_id": campaign_id, "subject": subject}
            if act.get("url"):
                props["url"] = act["url"]
            yield EngagementRecord(
                id=f"{campaign_id}:{entry.get('email_id') or subscriber_hash(email)}:{act.get('action')}:{act.get('timestamp')}:{act.get('url') or ''}"[:200],
                type=kind, occurred_at=when, email=email, external_id=entry.get("email_id") or "", properties=props,
            )

    # -- push --

    def push(self, target: str, changes: list[SegmentChange]) -> list[PushResult]:
        prefix = str(self.config.get("tag_prefix") or "")
        results = []
        for change in changes:
            if not change.email:
                results.append(PushResult(change.profile_id, change.segment, "skipped", "no email address"))
                continue
            body = {"tags": [{"name": f"{prefix}{change.segment}"[:100], "status": "active" if change.added else "inactive"}]}
            response = self.api.request("POST", f"/lists/{self.list_id}/members/{subscriber_hash(change.email)}/tags", json=body, allow=(404,))
            if response.status_code == 404:
                results.append(PushResult(change.profile_id, change.segment, "skipped", "not a member of the audience"))
            elif response.content:  # Mailchimp answers a tag change with 204 and no body; anything else is not it
                results.append(PushResult(change.profile_id, change.segment, "failed",
                                          f"unexpected answer to the tag change ({response.status_code} with a body)"))
            else:
                results.append(PushResult(change.profile_id, change.segment, "ok"))
        return results


    # -- recommendations --

    def merge_fields_for(self, positions: int) -> dict[str, str]:
        """The merge tags recommendations use, with the names shown in Mailchimp."""
        out = {"REC_BLOCK": "Recommendations: email block address"}
        for n in range(1, positions + 1):
            for tag, _attr in REC_PARTS:
                out[f"REC{n}_{tag}"] = f"Recommendation {n}: {tag.lower()}"
        return out

    def ensure_merge_fields(self, wanted: dict[str, str]) -> None:
        if getattr(self, "_merge_fields_ready", None) is not None and set(wanted) <= self._merge_fields_ready:
            return
        page = self.api.get_json(f"/lists/{self.list_id}/merge-fields", params={"count": 1000, "fields": "merge_fields.tag,total_items"})
        present = {str(f.get("tag") or "").upper() for f in _items(page, "merge_fields") if isinstance(f, dict)}
        for tag, label in wanted.items():
            if tag not in present:
                self.api.post_json(f"/lists/{self.list_id}/merge-fields", {"tag": tag, "name": label, "type": "text", "required": False, "public": False})
                present.add(tag)
        self._merge_fields_ready = present

    def push_recommendations(self, lists: list[ContactRecommendations]) -> list[PushResult]:
        positions = max(1, min(RECOMMENDATION_SLOTS, int(self.config.get("recommendations") or 0)))
        results: list[PushResult] = []
        wanted = self.merge_fields_for(positions)
        if any(c.email for c in lists):
            self.ensure_merge_fields(wanted)
        for contact in lists:
            if not contact.email:
                results.append(PushResult(contact.profile_id, "recommendations", "skipped", "no email address"))
                continue
            fields = {tag: "" for tag in wanted}
            fields["REC_BLOCK"] = contact.block_url
            for item in contact.items[:positions]:
                for tag, attr in REC_PARTS:
                    fields[f"REC{item.position}_{tag}"] = str(getattr(item, attr) or "")
            fields = {k: v[:TEXT_LIMIT] for k, v in fields.items()}
            try:
                response = self.api.request("PATCH", f"/lists/{self.list_id}/members/{subscriber_hash(contact.email)}",
                                            json={"merge_fields": fields}, params={"fields": "id"}, allow=(404,))
            except HttpStatusError as exc:  # 400: a value Mailchimp refuses for this member
                results.append(PushResult(contact.profile_id, "recommendations", "failed", f"Mailchimp refused the merge fields ({exc.status})"))
                continue
            if response.status_code == 404:
                results.append(PushResult(contact.profile_id, "recommendations", "skipped", "not a member of the audience"))
            elif not isinstance(_json_or_none(response), dict) or not _json_or_none(response).get("id"):
                results.append(PushResult(contact.profile_id, "recommendations", "failed", "unexpected answer to the member update"))
            else:
                results.append(PushResult(contact.profile_id, "recommendations", "ok"))
        return results


def _json_or_none(response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _items(page: Any, key: str) -> list[Any]:
    """The list ``key`` of a page. A 200 without it carries an error (or is not Mailchimp's answer):
    read as an empty page, it would end the window and move the cursor past unread records."""
    items = page.get(key) if isinstance(page, dict) else None
    if not isinstance(items, list):
        said = page.get("detail") or page.get("title") if isinstance(page, dict) else None
        raise StreamError(f"Mailchimp's answer has no list of {key}" + (f": {str(said)[:200]}" if said else ""))
    return items


# -- journey actions (the register_journey_actions hook) --


def _member_request(connector: MailchimpConnector, target: ActionTarget, method: str, path: str, body: dict, what: str) -> ActionResult:
    if not target.email:
        return ActionResult(target.key, "skipped", "no email address")
    try:
        response = connector.api.request(method, path, json=body, allow=(404,))
    except HttpStatusError as exc:  # 400: e.g. not subscribed, or a step that is not an API entry point
        return ActionResult(target.key, "failed", f"Mailchimp refused {what}: {exc.body[:200] or exc.status}")
    if response.status_code == 404:
        return ActionResult(target.key, "skipped", f"not found in Mailchimp ({what})")
    return ActionResult(target.key, "ok")


def tag_member(connector: MailchimpConnector, params: dict[str, Any], targets: list[ActionTarget]) -> list[ActionResult]:
    """Add a tag to each person's audience member (adding a tag twice changes nothing)."""
    tag = str(params.get("tag") or "").strip()[:100]
    body = {"tags": [{"name": tag, "status": "active"}]}
    return [
        _member_request(connector, t, "POST", f"/lists/{connector.list_id}/members/{subscriber_hash(t.email)}/tags", body, "the member")
        for t in targets
    ]


def trigger_journey_step(connector: MailchimpConnector, params: dict[str, Any], targets: list[ActionTarget]) -> list[ActionResult]:
    """Start each person at a step of a Mailchimp Customer Journey (an "API trigger" starting point)."""
    journey, step = str(params.get("journey_id") or "").strip(), str(params.get("step_id") or "").strip()
    if not journey.isdigit() or not step.isdigit():
        return [ActionResult(t.key, "failed", "the journey id and step id are numbers (from the journey's API trigger URL)") for t in targets]
    path = f"/customer-journeys/journeys/{journey}/steps/{step}/actions/trigger"
    return [_member_request(connector, t, "POST", path, {"email_address": t.email}, "the journey step or the member") for t in targets]


@hookimpl
def register_journey_actions():
    return [
        JourneyAction("mailchimp", "tag", "Tag the audience member", tag_member,
                      params=(Setting("tag", "Tag", help="The member tag to add, e.g. cart-abandoner."),),
                      help="Adds a tag to the person's member of the connection's audience (members not in it are skipped)."),
        JourneyAction("mailchimp", "journey_step", "Start a Mailchimp Customer Journey step", trigger_journey_step,
                      params=(Setting("journey_id", "Journey id", help="From the API trigger URL of the journey's starting point."),
                              Setting("step_id", "Step id", help="From the same URL.")),
                      help="Mailchimp sends the journey's emails; the person must be a subscribed member.", channel="email"),
    ]


@hookimpl
def register_connectors():
    return [MailchimpConnector]
