"""Carrying out action steps: email, signed webhooks, connector actions, profile attributes.

:func:`act` gets the action rows a runner holds. Each goes through the checks of
:mod:`personalize.journeys.pressure` first (control group, consent, quiet hours, recent
contact, contact policy); then the action is carried out with the step's idempotency key,
and its row is marked done with the next step's row in one transaction
(:func:`personalize.journeys.runner.write`) as soon as the provider accepted it.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app

from .email import (
    UNSUBSCRIBE_PATH,
    Contact,
    Mailer,
    Rendered,
    build_message,
    email_consent,
    footer_html,
    get_settings,
    html_to_text,
    message_id,
    missing_for_sending,
    open_time_block,
    permanent,
    recommendations_block,
    render,
    server_base,
    shop_hosts,
    smtp_password,
    tracked_link,
    unsubscribe_token,
)
from .pressure import contact_zone, load_contacts, quiet_until, recently_contacted
from .runner import MAX_RETRIES, Change, Claimed, Entry, Mover, Summary, retry_delay, write

log = logging.getLogger(__name__)


@dataclass
class Item:
    row: Claimed
    entry: Entry
    step: dict
    journey: tuple  # (status, live version, key, name)
    change: Change
    channel: str = ""


def channel_of(step: dict, site_id: int) -> str:
    """The contact-policy channel an action counts on (``None``-like "" for attributes: not a contact)."""
    if step["type"] == "email":
        return "email"
    if step["type"] == "webhook":
        return "webhook"
    if step["type"] == "connector":
        from .connectors import channel_of as connector_channel

        return connector_channel(site_id, step["connection"], step["action"])
    return ""


def consent_problem(contact: Contact | None, channel: str, mode: str) -> str | None:
    """Why an action may not reach this person on ``channel`` (None: it may)."""
    if contact is None:
        return "the profile is gone"
    if channel == "email":
        return email_consent(contact, mode)
    if channel and contact.attributes.get(f"unsubscribed_{channel}") is True:
        return f"unsubscribed from {channel}"
    return None


def act(rows: list[Claimed], entries: dict[int, Entry], journeys: dict[int, tuple], mover: Mover, token: str, now: datetime,
        deadline: float, sleep=None) -> Summary:
    """Check and carry out the action rows this runner holds; every row ends done, due again later
    (a retry, quiet hours) or, past the ``deadline`` of its lease, handed back at once."""
    summary = Summary()
    by_site: dict[int, list[Claimed]] = defaultdict(list)
    for row in rows:
        by_site[row.site_id].append(row)
    for site_id, site_rows in by_site.items():
        summary.add(_act_site(site_id, site_rows, entries, journeys, mover, token, now, deadline, sleep))
    return summary


def _count(summary: Summary, change: Change) -> None:
    if change.release is not None:
        summary.retried += 1
    elif change.outcome == "acted":
        summary.acted += 1
    elif change.outcome == "failed":
        summary.failed += 1
    else:
        summary.skipped += 1


def _commit(changes: list[Change], mover: Mover, token: str, now: datetime, summary: Summary) -> None:
    """Move on the entries whose action ended, then write (each change's row is checked as still held)."""
    mover.advance([(c, *c.follow) for c in changes if c.release is None and c.follow is not None], claim_actions=False)
    applied, lost = write(changes, token, now)
    summary.lost += lost
    for change in changes:
        _count(summary, change)


def _end(item: Item, outcome: str, detail: dict | None = None) -> Change:
    change = item.change
    change.outcome, change.detail = outcome, detail or {}
    change.follow = (item.entry, item.entry.flow.after[item.step["id"]])
    return change


def _retry(item: Item, now: datetime, error: str) -> Change:
    change = item.change
    retries = int(item.row.detail.get("retries", 0)) + 1
    if retries > MAX_RETRIES:
        return _end(item, "failed", {"error": error[:300], "retries": retries - 1})
    change.release = now + retry_delay(retries - 1)
    change.detail = {**item.row.detail, "retries": retries, "error": error[:300]}
    return change


def _delay(item: Item, until: datetime, why: str) -> Change:
    change = item.change
    change.release = until
    change.detail = {**item.row.detail, "delayed": why}
    return change


def _act_site(site_id: int, rows: list[Claimed], entries: dict[int, Entry], journeys: dict[int, tuple], mover: Mover, token: str,
              now: datetime, deadline: float, sleep) -> Summary:
    from ..segments.policy import limits, sent_counts
    from ..sites import get_site

    summary = Summary()
    settings = get_settings(site_id)
    site = get_site(site_id)
    items = []
    channels: dict[tuple, str] = {}
    for row in rows:
        entry = entries[row.enrollment_id]
        step = entry.flow.steps.get(row.step_id) if entry.flow else None
        change = Change(row)
        if step is None or site is None:
            change.outcome, change.detail = "cancelled", {"reason": "the step no longer exists"}
            change.ends.append((entry.id, "exited", "the step no longer exists", None))
            write([change], token, now)
            summary.skipped += 1
            continue
        which = (step["type"], step.get("connection"), step.get("action"))
        if which not in channels:
            channels[which] = channel_of(step, site_id)
        items.append(Item(row, entry, step, journeys.get(row.journey_id, ("active", 0, "", "")), change, channels[which]))
    # who they are matters to actions that reach them (consent, time zone, templates), not to a tag or a property
    contacts = load_contacts(site_id, [i.entry.profile_id for i in items if i.channel and not i.entry.control])
    decided: list[Change] = []
    go: list[Item] = []
    for item in items:
        contact = contacts.get(item.entry.profile_id)
        if item.entry.control:
            decided.append(_end(item, "control", {"reason": "control group: no action"}))
            continue
        if not item.channel:  # an attribute, a tag, a property: changes data, reaches nobody
            go.append(item)
            continue
        problem = consent_problem(contact, item.channel, settings.consent)
        if problem:
            decided.append(_end(item, "skipped_consent", {"reason": problem}))
            continue
        quiet = quiet_until(now, item.entry.definition.get("limits") or {}, contact_zone(contact, settings.timezone))
        if quiet is not None:
            decided.append(_delay(item, quiet, "quiet hours"))
            continue
        go.append(item)
    recent_hours = {i.entry.journey_id: int((i.entry.definition.get("limits") or {}).get("recent_hours") or 0) for i in go}
    recent: set[tuple[int, int]] = set()
    for hours in set(recent_hours.values()) - {0}:
        pids = [i.entry.profile_id for i in go if i.channel and recent_hours[i.entry.journey_id] == hours]
        recent |= {(pid, hours) for pid in recently_contacted(pids, hours, now)}
    used: dict[tuple[int, str], int] = defaultdict(int)
    caps: dict[str, tuple[int | None, int | None]] = {}
    counts: dict[str, dict[int, tuple[int, int]]] = {}
    allowed: list[Item] = []
    for item in go:
        if not item.channel:
            allowed.append(item)
            continue
        hours = recent_hours[item.entry.journey_id]
        if hours and (item.entry.profile_id, hours) in recent:
            decided.append(_end(item, "skipped_recent", {"reason": f"contacted in the last {hours} hours"}))
            continue
        channel = item.channel
        if channel not in caps:
            caps[channel] = limits(site_id, channel)
            limited = any(v is not None for v in caps[channel])
            counts[channel] = sent_counts(site_id, [i.entry.profile_id for i in go if i.channel == channel], channel, now) if limited else {}
        per_day, per_week = caps[channel]
        day, week = counts[channel].get(item.entry.profile_id, (0, 0))
        extra = used[(item.entry.profile_id, channel)]
        if (per_day is not None and day + extra >= per_day) or (per_week is not None and week + extra >= per_week):
            decided.append(_end(item, "skipped_cap", {"reason": f"contact policy for {channel}: {_limit_text(per_day, per_week)}"}))
            continue
        used[(item.entry.profile_id, channel)] += 1
        allowed.append(item)
    attribute_changes = []
    for item in allowed:
        if item.step["type"] == "set_attribute":
            change = _end(item, "acted", {"set": {item.step["name"]: item.step["value"]}})
            change.attribute = (item.entry.profile_id, item.step["name"], item.step["value"])
            attribute_changes.append(change)
    if decided or attribute_changes:
        _commit(decided + attribute_changes, mover, token, now, summary)
    emails = [i for i in allowed if i.step["type"] == "email"]
    hooks = [i for i in allowed if i.step["type"] == "webhook"]
    remote = [i for i in allowed if i.step["type"] == "connector"]
    left: list[Item] = []
    if emails:
        left += _send_emails(site, settings, emails, contacts, mover, token, now, deadline, summary)
    if hooks:
        left += _call_webhooks(site_id, hooks, mover, token, now, deadline, summary, sleep)
    if remote:
        left += _run_connectors(site_id, remote, mover, token, now, deadline, summary, sleep)
    if left:  # out of lease time: hand them back now rather than at the end of the lease
        _commit([_delay(i, now, "handed back: the runner ran out of time") for i in left], mover, token, now, summary)
    return summary


def _limit_text(per_day: int | None, per_week: int | None) -> str:
    parts = [f"{per_day} a day" if per_day is not None else "", f"{per_week} a week" if per_week is not None else ""]
    return "at most " + " and ".join(p for p in parts if p)


# ---------------------------------------------------------------- email


def shop_base(site, settings) -> str:
    if settings.shop_url:
        return settings.shop_url
    origins = list(site.allowed_origins or [])
    return origins[0] if origins else ""


def email_context(site, settings, entry_data: dict, journey: tuple, contact: Contact, step: dict, config) -> tuple[dict[str, Any], str, list[str]]:
    """What an email template sees, the recommendation list's ``rec_id`` and its product ids."""
    from ..catalog import products_by_ids
    from ..profiles.trust import make_token
    from ..recommend.service import recommend_for

    base = shop_base(site, settings)
    unsubscribe = server_base(settings, config) + UNSUBSCRIBE_PATH + unsubscribe_token(site.id, contact.profile_id)
    token = make_token(site.id, email=contact.email) if contact.email else ""
    campaign = {"utm_source": "personalize", "utm_medium": "email", "utm_campaign": journey[2] or "journey"}
    hosts = shop_hosts(base, site.allowed_origins)  # the person's token goes only to the shop's own hosts
    items, rec_id, block = [], "", None
    if step.get("recommendations") and step.get("recommendations_at") == "open":
        # the open-time block: pictures of the list as it is when the email is opened (personalize/email_block.py)
        from ..recommend.channels import block_urls

        n = int(step["recommendations"])
        urls = block_urls(server_base(settings, config), site.id, contact.profile_id)
        cards = [{"image": urls.card(p, n), "url": urls.click(p)} for p in range(1, n + 1)]
        block = {"image": f"{urls.image}?n={n}", "cards": cards, "prefix": urls.prefix}
    elif step.get("recommendations"):
        if contact.visitor:
            recs = recommend_for(site, contact.visitor, "email", int(step["recommendations"]))
        else:  # known by email or customer id only: by one of their identities, so the holdout and arms are theirs too
            from ..recommend.channels import person_identity

            found = person_identity(site.id, contact.profile_id)
            value, kind = (found[2], found[1]) if found else (None, "visitor")
            recs = recommend_for(site, value, "email", int(step["recommendations"]), kind=kind)
        rec_id = recs.rec_id
        for item in recs.items:
            link = tracked_link(base, item.get("url") or "", {**campaign, "pz_rec": rec_id, "pz_token": token}, hosts)
            price = item.get("price")
            items.append({
                **item, "url": link,
                "price_text": f"{price:,.2f} {item.get('currency') or ''}".strip() if isinstance(price, int | float) else "",
            })
    trigger = dict(entry_data or {})
    product_id = trigger.get("product_id")
    if isinstance(product_id, str) and product_id:
        product = products_by_ids(site.id, [product_id]).get(product_id)
        if product is not None:
            trigger["product"] = {
                "id": product.external_id, "title": product.title, "image": product.image, "price": product.price,
                "currency": product.currency, "url": tracked_link(base, product.url or "", {**campaign, "pz_token": token}, hosts),
            }
    attrs = dict(contact.attributes)
    context = {
        "contact": {
            "email": contact.email, "first_name": attrs.get("first_name") or "", "last_name": attrs.get("last_name") or "",
            "name": attrs.get("name") or " ".join(str(attrs.get(k) or "") for k in ("first_name", "last_name")).strip(),
            "attributes": attrs, "orders": contact.orders,
        },
        "recommendations": items,
        "recommendations_block": open_time_block(block["cards"]) if block else recommendations_block(items),
        "email_block": block or {},
        "trigger": trigger,
        "shop": {"name": site.name, "url": base},
        "journey": {"key": journey[2], "name": journey[3]},
        "unsubscribe_url": unsubscribe,
    }
    return context, rec_id, [i["id"] for i in items]


def render_email(step: dict, context: dict[str, Any], postal_address: str = "") -> Rendered:
    """Subject, HTML (with the unsubscribe footer unless the template links it itself) and text."""
    subject = render(step["subject"], context, html=False)
    html = render(step["html"], context, html=True)
    if "unsubscribe_url" not in step["html"]:
        html += footer_html(context["unsubscribe_url"], postal_address)
    text = render(step["text"], context, html=False) if step.get("text") else html_to_text(html)
    if "unsubscribe_url" not in (step.get("text") or "") and step.get("text"):
        text += f"\n\nUnsubscribe: {context['unsubscribe_url']}\n"
    return Rendered(subject, html, text)


def _send_emails(site, settings, items: list[Item], contacts: dict[int, Contact], mover: Mover, token: str, now: datetime,
                 deadline: float, summary: Summary) -> list[Item]:
    config = current_app.config
    missing = missing_for_sending(settings, config)
    if missing:
        _commit([_retry(i, now, missing) for i in items], mover, token, now, summary)
        return []
    try:
        password = smtp_password(settings, config) if settings.delivery != "record" else ""
    except Exception as exc:  # the encryption key changed
        _commit([_retry(i, now, str(exc)) for i in items], mover, token, now, summary)
        return []
    mailer = Mailer(settings, password, config)
    recording = settings.delivery == "record"
    recorded: list[Change] = []
    try:
        for n, item in enumerate(items):
            if time.monotonic() > deadline:
                if recorded:
                    _commit(recorded, mover, token, now, summary)
                    recorded.clear()
                return items[n:]
            contact = contacts[item.entry.profile_id]
            try:
                context, rec_id, shown = email_context(site, settings, item.entry.data, item.journey, contact, item.step, config)
                rendered = render_email(item.step, context, settings.postal_address)
            except ValueError as exc:  # a template error: fixed in a new version, the retry takes it
                _commit([_retry(item, now, str(exc))], mover, token, now, summary)
                continue
            if recording:  # the site tries journeys out: the message is kept on its step, not sent
                change = _end(item, "acted", {"recorded": True, "message_id": message_id(item.row.key, settings.from_email),
                                              "subject": rendered.subject[:200], "rec_id": rec_id, "items": shown})
                change.contact = (item.entry.profile_id, "email")
                recorded.append(change)  # nothing left the server: written together below
                continue
            msg = build_message(settings, contact.email, rendered, item.row.key, context["unsubscribe_url"], now,
                                {"X-Personalize-Journey": item.journey[2]})
            try:
                mailer.send(msg, contact.email)
            except (smtplib.SMTPException, OSError) as exc:
                mailer.close()
                error = f"{type(exc).__name__}: {exc}"[:300]
                change = _end(item, "failed", {"error": error}) if permanent(exc) else _retry(item, now, error)
                _commit([change], mover, token, now, summary)
                continue
            change = _end(item, "acted", {
                "message_id": msg["Message-ID"], "subject": rendered.subject[:200], "rec_id": rec_id, "items": shown,
                **({"attempt": item.row.attempts} if item.row.attempts > 1 else {}),
            })
            change.contact = (item.entry.profile_id, "email")
            _commit([change], mover, token, now, summary)
    finally:
        mailer.close()
        if recorded:
            _commit(recorded, mover, token, now, summary)
    return []


# ---------------------------------------------------------------- webhooks


def _people(site_id: int, profile_ids: list[int]) -> dict[int, dict[str, str]]:
    from ..segments.outbox import identities_of

    return identities_of(profile_ids)


def _call_webhooks(site_id: int, items: list[Item], mover: Mover, token: str, now: datetime, deadline: float, summary: Summary,
                   sleep) -> list[Item]:
    from ..connectors import AuthError, HttpStatusError, TransientError
    from . import webhooks

    secret = webhooks.webhook_secret(site_id, current_app.config)
    http = webhooks.client(current_app.config)
    if sleep is not None:
        http.sleep = sleep
    idents = _people(site_id, [i.entry.profile_id for i in items])
    for n, item in enumerate(items):
        if time.monotonic() > deadline:
            return items[n:]
        person = {"id": item.entry.profile_id, "identities": idents.get(item.entry.profile_id, {})}
        body = webhooks.payload(item.row.key, {"key": item.journey[2], "name": item.journey[3], "version": item.entry.version},
                                item.step["id"], person, item.entry.data, item.step.get("fields") or {})
        try:
            status, note = webhooks.deliver(http, item.step["url"], body, secret, item.row.key, item.row.attempts)
        except TransientError as exc:
            change = _retry(item, now, str(exc))
        except (AuthError, HttpStatusError) as exc:
            change = _end(item, "failed", {"error": str(exc)[:300]})
        except Exception as exc:  # an address the client refuses, a bad certificate…
            change = _end(item, "failed", {"error": f"{type(exc).__name__}: {exc}"[:300]})
        else:
            change = _end(item, "acted", {"status": status, **({"attempt": item.row.attempts} if item.row.attempts > 1 else {}),
                                          **({"note": note} if note else {})})
            change.contact = (item.entry.profile_id, "webhook")
        _commit([change], mover, token, now, summary)
    return []


# ---------------------------------------------------------------- connector actions


def _run_connectors(site_id: int, items: list[Item], mover: Mover, token: str, now: datetime, deadline: float, summary: Summary,
                    sleep) -> list[Item]:
    from ..records import ActionTarget
    from .connectors import run_action

    groups: dict[tuple, list[Item]] = defaultdict(list)
    for item in items:
        s = item.step
        groups[(s["connection"], s["action"], tuple(sorted(s["params"].items())))].append(item)
    idents = _people(site_id, [i.entry.profile_id for i in items])
    left: list[Item] = []
    for (connection, action, params), group in groups.items():
        for start in range(0, len(group), 100):
            chunk = group[start : start + 100]
            if time.monotonic() > deadline:
                left.extend(chunk)
                continue
            targets = [
                ActionTarget(i.entry.profile_id, i.row.key, idents.get(i.entry.profile_id, {}), i.journey[2], i.step["id"], dict(i.entry.data or {}))
                for i in chunk
            ]
            results = {r.key: r for r in run_action(site_id, connection, action, dict(params), targets, now, sleep=sleep)}
            changes = []
            for item in chunk:
                r = results[item.row.key]
                if r.status == "ok":
                    change = _end(item, "acted", {"message": r.message} if r.message else {})
                    change.contact = (item.entry.profile_id, item.channel) if item.channel else None
                elif r.status == "skipped":
                    change = _end(item, "skipped_remote", {"reason": r.message})
                elif r.status == "retry":
                    change = _retry(item, now, r.message)
                else:
                    change = _end(item, "failed", {"error": r.message})
                changes.append(change)
            _commit(changes, mover, token, now, summary)
    return left



class TooManyTestSends(Exception):
    """The site sent its JOURNEY_TEST_SENDS_PER_DAY test emails today (UTC)."""

    def __init__(self, limit: int):
        super().__init__(f"at most {limit} test emails a day per site (JOURNEY_TEST_SENDS_PER_DAY); try again tomorrow (UTC)")
        self.limit = limit


def count_test_send(site_id: int, limit: int, today: str | None = None) -> bool:
    """Count one test email of the site today if it is under ``limit``; False when it is not.
    One conditional UPDATE checks and counts, so processes sending at once count together."""
    from sqlalchemy import and_, case, or_, update

    from ..db import db
    from .models import JourneySettings

    day = today or utcnow_day()
    t = JourneySettings.__table__
    result = db.session.execute(
        update(t)
        .where(t.c.site_id == site_id, or_(t.c.test_sends_day != day, and_(t.c.test_sends_day == day, t.c.test_sends < limit)))
        .values(test_sends=case((t.c.test_sends_day == day, t.c.test_sends + 1), else_=1), test_sends_day=day)
    )
    db.session.commit()
    return result.rowcount == 1


def utcnow_day() -> str:
    from ..models import utcnow

    return utcnow().strftime("%Y-%m-%d")


def send_test_email(site, journey, step: dict, to: str, profile_id: int | None = None, visitor: str | None = None) -> str:
    """Send one email step to ``to`` now, rendered for a real person of the site (``profile_id``) or
    for a stand-in, outside any journey. Returns what happened; raises :class:`InvalidInput` naming
    the problem (settings, address, the SMTP server's answer), :class:`TooManyTestSends` past the
    site's JOURNEY_TEST_SENDS_PER_DAY."""
    import secrets as _secrets

    from ..validation import InvalidInput
    from .email import EMAIL_RE

    config = current_app.config
    if not EMAIL_RE.match(to or ""):
        raise InvalidInput("to", "must be the email address to send the test to")
    settings = get_settings(site.id)
    missing = missing_for_sending(settings, config)
    if missing:
        raise InvalidInput("email settings", missing)
    contact = Contact(0, to, {"first_name": "Ann", "last_name": "Example"}, 1)
    if profile_id is not None:
        contact = load_contacts(site.id, [profile_id])[profile_id]
        contact.visitor = visitor or contact.visitor
    try:
        context, _rec, _items = email_context(site, settings, {"event": "test"}, ("active", journey.version, journey.key, journey.name),
                                              contact, step, config)
        rendered = render_email(step, context, settings.postal_address)
    except ValueError as exc:
        raise InvalidInput("template", str(exc)) from None
    rendered.subject = "[Test] " + rendered.subject
    limit = int(config.get("JOURNEY_TEST_SENDS_PER_DAY", 50))
    if not count_test_send(site.id, limit):  # counted before sending: a send the SMTP server refuses counts too
        raise TooManyTestSends(limit)
    key = "pz-test-" + _secrets.token_hex(12)
    msg = build_message(settings, to, rendered, key, context["unsubscribe_url"], None, {"X-Personalize-Journey": journey.key})
    mailer = Mailer(settings, smtp_password(settings, config), config)
    try:
        mailer.send(msg, to)
    except (smtplib.SMTPException, OSError) as exc:
        raise InvalidInput("smtp", f"the SMTP server did not take the test email: {type(exc).__name__}: {exc}"[:300]) from None
    finally:
        mailer.close()
    return f"Test email sent to {to}" + (f", as profile {profile_id} would get it." if profile_id is not None else ".")
