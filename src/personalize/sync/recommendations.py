"""Writing each person's current recommendations into a connected system, after every sync.

The way segment membership goes out (:mod:`.push`), for lists: a connection whose
connector declares ``recommendation_slots`` and whose ``recommendations`` setting is
above 0 gets, after each sync, a :class:`~personalize.records.ContactRecommendations` per
person it knows (profiles holding an identity of the connector's ``identity_kind``, or an
email address for a connector without one) whose list changed since the last push, or whose
addresses are halfway to expiry. The connector writes them (Mailchimp merge fields
``REC1_TITLE``…, HubSpot contact properties) and answers a
:class:`~personalize.records.PushResult` per person; what was pushed is remembered
(:class:`personalize.recommend.channels.ContactList`, channel ``push``), so the click
address of position *n* opens the product pushed there. One run log entry (kind ``push``,
stream ``recommendations``) per run.

At most ``RECOMMENDATION_PUSH_MAX`` people a run, in profile order from a cursor kept with
the connection, so a large audience is covered over a few syncs.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from ..connectors import RECOMMENDATIONS_SETTING, AuthError, ConfigError, TransientError
from ..db import db
from ..models import Identity, utcnow
from ..records import ContactRecommendations, PushResult, RecommendedItem
from .connections import connector_class, get_connection, hidden_values
from .engine import (
    SyncError,
    build_connector,
    fatal_message,
    load_state,
    make_http,
    notify_finished,
    run_summary,
    save_state,
    start_run,
)
from .push import stored_identities
from .secrets import redact

log = logging.getLogger(__name__)

CURSOR_STATE = "_recommendations"
TARGET = "recommendations"


def positions_for(conn) -> int:
    """How many recommendations a person gets from this connection (0: it pushes none)."""
    try:
        cls = connector_class(conn.connector)
    except Exception:
        return 0
    if not cls.recommendation_slots:
        return 0
    value = (conn.settings or {}).get(RECOMMENDATIONS_SETTING)
    try:
        wanted = int(value or 0)
    except (TypeError, ValueError):
        return 0
    return max(0, min(wanted, cls.recommendation_slots))


def _people(site_id: int, kind: str, after: int, most: int) -> list[int]:
    q = (select(Identity.profile_id).where(Identity.site_id == site_id, Identity.kind == kind, Identity.profile_id > after)
         .group_by(Identity.profile_id).order_by(Identity.profile_id).limit(most))
    return list(db.session.scalars(q))


def contact_lists(site, profile_ids: list[int], positions: int, server: str, shop: str, now: float | None = None
                  ) -> tuple[list[ContactRecommendations], dict[int, tuple[Any, str]]]:
    """The lists to push: for each person whose list changed since the last push (or whose
    addresses are halfway to expiry), ``ContactRecommendations``; with ``{profile id: (list, version)}``
    to remember once pushed."""
    from ..recommend.channels import (
        absolute,
        block_urls,
        contact_recommendations,
        list_version,
        price_text,
        shown_list,
        token_days,
    )

    now = now if now is not None else time.time()
    renew_before = utcnow() - timedelta(days=token_days() / 2)
    identities = stored_identities(site.id, profile_ids)
    out: list[ContactRecommendations] = []
    pending: dict[int, tuple[Any, str]] = {}
    for pid in profile_ids:
        found = contact_recommendations(site, pid, positions)
        if found is None:
            continue
        live, recs = found
        if live != pid:
            continue  # merged into another profile: pushed under that one
        # what was pushed: the list as shown, where its addresses point, how many positions
        version = hashlib.sha1(f"{list_version(recs.items)}|{server}|{positions}".encode()).hexdigest()
        last = shown_list(site.id, pid, "push")
        if last is not None and last.version == version and last.created_at > renew_before:
            continue
        urls = block_urls(server, site.id, pid, now)
        items = tuple(
            RecommendedItem(position=n, product_id=item["id"], title=item.get("title") or "", url=urls.click(n, "push"),
                            image=absolute(shop, item.get("image") or ""), price=item.get("price"), currency=item.get("currency") or "",
                            price_text=price_text(item.get("price"), item.get("currency")))
            for n, item in enumerate(recs.items[:positions], start=1)
        )
        rec_id = last.rec_id if last is not None and last.version == version else recs.rec_id
        out.append(ContactRecommendations(pid, items, identities.get(pid, {}), rec_id, urls.prefix))
        pending[pid] = (replace(recs, rec_id=rec_id), version)
    return out, pending


def push_recommendations(site_id: int, connection: str, *, trigger: str = "sync", sleep: Callable[[float], None] | None = None,
                         http_options: dict[str, Any] | None = None, now: float | None = None) -> dict[str, Any]:
    """Push the changed lists of a connection's people; return the run log entry (``results`` per person)."""
    from ..recommend.channels import remember, site_addresses
    from ..sites import get_site

    conn = get_connection(site_id, connection)
    if conn is None:
        raise SyncError(f"site {site_id} has no connection {connection!r}")
    cls = connector_class(conn.connector)
    positions = positions_for(conn)
    if positions <= 0:
        return {"status": "skipped", "message": f"{conn.name} pushes no recommendations", "results": []}
    site = get_site(site_id)
    server, shop = site_addresses(site)
    run = start_run(conn, "push", trigger)
    results: list[PushResult] = []
    fatal = ""
    notes: list[str] = []
    hide = hidden_values(conn)
    lists: list[ContactRecommendations] = []
    pending: dict[int, tuple[Any, str]] = {}
    cursor = int((load_state(conn.id, CURSOR_STATE) or {}).get("after", 0))
    most = int(current_app.config.get("RECOMMENDATION_PUSH_MAX") or 5000)
    kind = cls.identity_kind or "email"
    people = _people(site_id, kind, cursor, most)
    if not server.startswith(("http://", "https://")):
        fatal = ("settings problem: recommendation links need the server's public address: set it in the email settings of the "
                 "site's journeys, or PUBLIC_URL")
    else:
        lists, pending = contact_lists(site, people, positions, server, shop, now)
        try:
            connector = build_connector(conn, run.started_at, make_http(cls, sleep, **(http_options or {})), notes.append)
        except Exception as exc:
            fatal = redact(fatal_message(exc), hide)
    size = max(1, cls.push_batch_size)
    raised = False
    for start in range(0, len(lists), size):
        batch = lists[start : start + size]
        if fatal:
            results.extend(PushResult(c.profile_id, TARGET, "failed", "not attempted: " + fatal[:200]) for c in batch)
            continue
        try:
            got = list(connector.push_recommendations(batch))
        except (AuthError, ConfigError, TransientError) as exc:
            fatal = redact(fatal_message(exc), hide)
            results.extend(PushResult(c.profile_id, TARGET, "failed", fatal[:300]) for c in batch)
            continue
        except Exception as exc:  # one bad batch must not stop the others
            raised = True
            results.extend(PushResult(c.profile_id, TARGET, "failed", redact(f"{type(exc).__name__}: {exc}", hide)[:300]) for c in batch)
            continue
        answered = {r.profile_id for r in got}
        results.extend(got)
        results.extend(PushResult(c.profile_id, TARGET, "failed", "the connector returned no result") for c in batch if c.profile_id not in answered)
        for r in got:
            if r.status == "ok" and r.profile_id in pending:
                recs, version = pending[r.profile_id]
                remember(site_id, r.profile_id, "push", recs, version, commit=False)
        run.heartbeat_at = utcnow()
        db.session.commit()
    if not fatal and not raised:  # the next run goes on after these people (from the start once everybody had a turn)
        save_state(conn.id, CURSOR_STATE, {"after": people[-1] if len(people) >= most else 0})
    ok = sum(r.status == "ok" for r in results)
    failed = [r for r in results if r.status == "failed"]
    unchanged = len(people) - len(lists)
    run.records_in = len(people)
    run.records_out = ok
    run.skipped = sum(r.status == "skipped" for r in results) + unchanged
    run.streams = {TARGET: {"in": len(people), "stored": ok, "unchanged": unchanged, "skipped": run.skipped, "failed": len(failed)}}
    results = [replace(r, message=redact(r.message, hide)) if r.message else r for r in results]
    failed = [r for r in results if r.status == "failed"]
    run.errors = ([fatal] if fatal else []) + [f"profile {r.profile_id}: {r.message}" for r in failed if r.message != fatal][:50] + [redact(n, hide) for n in notes[:20]]
    run.status = "succeeded" if not failed and not fatal else ("failed" if not ok else "partial")
    run.message = fatal or f"{ok} lists pushed, {unchanged} unchanged, {run.skipped - unchanged} skipped, {len(failed)} failed"
    run.finished_at = utcnow()
    db.session.commit()
    summary = run_summary(run)
    notify_finished(site_id, conn, summary)
    if ok and current_app.config.get("EMAIL_IMAGE_FETCH", True):
        # pictures for the email block's cards, now rather than when an email is opened
        fetch_thumbnails([i.image for c in lists for i in c.items if i.image])
    summary["results"] = results
    summary["fatal"] = fatal
    return summary


#: seconds one product picture may take to arrive in all
PICTURE_SECONDS = 10.0


def fetch_thumbnails(image_urls: list[str], config=None, http=None, most: int = 50) -> dict[str, str]:
    """Download missing product pictures to :func:`thumbnail_path` as small PNGs, through the
    guarded HTTP client (the outbound address policy; 3 s timeouts, 10 s in all for one picture
    however slowly it drips, no retries, pictures over :data:`THUMBNAIL_BYTES` dropped, at most ``most`` a call). Run in the background (the pushes
    of a sync), never while an image is being served. Returns ``{url: outcome}``."""
    from PIL import Image

    from ..recommend.channels import (
        THUMBNAIL_BYTES,
        THUMBNAIL_PIXELS,
        thumbnail_dir,
        thumbnail_path,
    )
    from .http import HttpClient, ResponseTooLarge
    from .outbound import SETTING, OutboundPolicy, parse_allowed_hosts

    config = config if config is not None else current_app.config
    if http is None:
        policy = OutboundPolicy(provider="product pictures", trusted=parse_allowed_hosts(config.get(SETTING)))
        http = HttpClient(timeout=(3.0, 3.0), max_retries=0, max_wait=0.0, policy=policy, max_bytes=THUMBNAIL_BYTES,
                          deadline=PICTURE_SECONDS)
    out: dict[str, str] = {}
    folder = thumbnail_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for url in list(dict.fromkeys(u for u in image_urls if u))[:most]:
        target = thumbnail_path(url)
        if target.exists():
            out[url] = "kept"
            continue
        try:
            response = http.request("GET", url)
            body = response.content
            if len(body) > THUMBNAIL_BYTES:
                out[url] = "too large"
                continue
            with Image.open(io.BytesIO(body)) as img:
                if img.width * img.height > THUMBNAIL_PIXELS:  # read from the header: a small file may unpack to gigabytes
                    out[url] = "too large"
                    continue
                img.draft("RGB", (400, 400))
                pic = img.convert("RGB")
            pic.thumbnail((200, 200))
            partial = target.with_suffix(".part")
            pic.save(partial, "PNG")
            partial.replace(target)
            out[url] = "fetched"
        except ResponseTooLarge:
            out[url] = "too large"
        except Exception as exc:  # one picture must not stop the others; the card shows a tile instead
            out[url] = f"{type(exc).__name__}"
            log.info("product picture %s not kept: %s", url[:200], exc)
    return out
