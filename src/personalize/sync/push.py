"""Writing segment membership back to a connected system.

The segments service emits :class:`~personalize.records.SegmentChange` records;
:func:`push_changes` hands them to a connection's push target in batches and
records one run log entry with a :class:`~personalize.records.PushResult` per change.
Pushes are idempotent on the connector side (setting a tag or property that is
already set is a no-op), so a push may be repeated after a failure.

When the segments service offers a contact policy
(``personalize.segments.policy.allow(site_id, profile_id, channel)``),
additions to a segment are only pushed for profiles it allows on the connector's
channel (its ``kind``); removals always go through, so nobody stays in an audience
they have left.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import select

from ..connectors import AuthError, ConfigError, TransientError
from ..db import db
from ..models import Identity, utcnow
from ..records import PushResult, SegmentChange
from .connections import connector_class, get_connection, hidden_values
from .engine import (
    SyncError,
    build_connector,
    fatal_message,
    make_http,
    notify_finished,
    run_summary,
    start_run,
)
from .secrets import redact


def _policy():
    """The segments service's contact policy module, when it offers one."""
    try:
        module = importlib.import_module("personalize.segments.policy")
    except ImportError:
        return None
    return module if hasattr(module, "allow") and hasattr(module, "record") else None


def stored_identities(site_id: int, profile_ids: list[int]) -> dict[int, dict[str, str]]:
    """Each profile's stored identities other than widget visitor ids, the first of each kind."""
    known: dict[int, dict[str, str]] = {}
    for start in range(0, len(profile_ids), 500):
        for pid, kind, value in db.session.execute(
            select(Identity.profile_id, Identity.kind, Identity.value).where(
                Identity.site_id == site_id, Identity.profile_id.in_(profile_ids[start : start + 500]), Identity.kind != "visitor"
            ).order_by(Identity.id)
        ).all():
            known.setdefault(pid, {}).setdefault(kind, value)
    return known


def with_identities(site_id: int, changes: Iterable[SegmentChange]) -> list[SegmentChange]:
    """Fill in each change's identities from the profile's stored ones (given ones win)."""
    changes = list(changes)
    known = stored_identities(site_id, sorted({c.profile_id for c in changes}))
    return [replace(c, identities={**known.get(c.profile_id, {}), **c.identities}) for c in changes]


def push_changes(
    site_id: int,
    connection: str,
    target: str,
    changes: Iterable[SegmentChange],
    *,
    trigger: str = "segments",
    sleep: Callable[[float], None] | None = None,
    http_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Push segment changes to ``target`` of a connection; return the run log entry with ``results``."""
    conn = get_connection(site_id, connection)
    if conn is None:
        raise SyncError(f"site {site_id} has no connection {connection!r}")
    cls = connector_class(conn.connector)
    if target not in {t.name for t in cls.push_targets}:
        raise SyncError(f"{cls.name} cannot push to {target!r}; it offers {', '.join(t.name for t in cls.push_targets) or 'nothing'}")
    changes = with_identities(site_id, changes)
    run = start_run(conn, "push", trigger)
    results: list[PushResult] = []
    fatal = ""
    policy = _policy()
    allowed: list[SegmentChange] = []
    counted_at = utcnow()
    for change in changes:
        if change.added and policy is not None:
            if not policy.allow(site_id, change.profile_id, cls.kind, counted_at):
                results.append(PushResult(change.profile_id, change.segment, "skipped", f"contact policy for {cls.kind}"))
                continue
            # counted now, so a second addition for the same person in this run sees it;
            # taken back below if the push of this change fails
            policy.record(site_id, change.profile_id, cls.kind, counted_at, commit=False)
        allowed.append(change)
    notes: list[str] = []
    raised = False
    hide = hidden_values(conn)  # secret values: hidden before any message is cut short
    try:
        connector = build_connector(conn, run.started_at, make_http(cls, sleep, **(http_options or {})), notes.append)
    except Exception as exc:
        fatal = redact(fatal_message(exc), hide)
        connector = None
    size = max(1, cls.push_batch_size)
    for start in range(0, len(allowed), size):
        batch = allowed[start : start + size]
        if fatal:
            results.extend(PushResult(c.profile_id, c.segment, "failed", "not attempted: " + fatal[:200]) for c in batch)
            continue
        try:
            got = list(connector.push(target, batch))
        except (AuthError, ConfigError, TransientError) as exc:
            fatal = redact(fatal_message(exc), hide)
            results.extend(PushResult(c.profile_id, c.segment, "failed", fatal[:300]) for c in batch)
            continue
        except Exception as exc:  # one bad batch must not stop the others
            raised = True
            results.extend(PushResult(c.profile_id, c.segment, "failed", redact(f"{type(exc).__name__}: {exc}", hide)[:300]) for c in batch)
            continue
        answered = {(r.profile_id, r.segment) for r in got}
        results.extend(got)
        results.extend(
            PushResult(c.profile_id, c.segment, "failed", "the connector returned no result")
            for c in batch if (c.profile_id, c.segment) not in answered
        )
        run.heartbeat_at = utcnow()
        db.session.commit()
    if policy is not None:
        _uncount_failed(site_id, cls.kind, counted_at, allowed, results)
    position = {(c.profile_id, c.segment): i for i, c in enumerate(changes)}
    results.sort(key=lambda r: position.get((r.profile_id, r.segment), len(position)))  # in the order given
    ok = sum(r.status == "ok" for r in results)
    failed = [r for r in results if r.status == "failed"]
    run.records_in = len(changes)
    run.records_out = ok
    run.skipped = sum(r.status == "skipped" for r in results)
    run.streams = {target: {"in": len(changes), "stored": ok, "skipped": run.skipped, "failed": len(failed)}}
    fatal = redact(fatal, hide)
    results = [replace(r, message=redact(r.message, hide)) if r.message else r for r in results]
    failed = [r for r in results if r.status == "failed"]
    run.errors = ([fatal] if fatal else []) + [f"profile {r.profile_id} ({r.segment}): {r.message}" for r in failed if r.message != fatal][:50] + [redact(n, hide) for n in notes[:20]]
    run.status = "succeeded" if not failed else ("failed" if not ok else "partial")
    run.message = fatal or f"{ok} pushed, {run.skipped} skipped, {len(failed)} failed"
    run.finished_at = utcnow()
    db.session.commit()
    summary = run_summary(run)
    notify_finished(site_id, conn, summary)
    summary["results"] = results
    summary["fatal"] = fatal
    #: some changes were not attempted: a caller working from a cursor should not move past them
    summary["retry"] = bool(fatal) or raised
    return summary


def _uncount_failed(site_id: int, channel: str, at, pushed: list[SegmentChange], results: list[PushResult]) -> None:
    """Take back the contact-policy count of additions that did not reach the connected system."""
    from ..segments.models import ContactLog

    failed = {(r.profile_id, r.segment) for r in results if r.status != "ok"}
    for change in pushed:
        if change.added and (change.profile_id, change.segment) in failed:
            row = db.session.scalar(select(ContactLog).where(
                ContactLog.site_id == site_id, ContactLog.profile_id == change.profile_id,
                ContactLog.channel == channel, ContactLog.sent_at == at,
            ).limit(1))
            if row is not None:
                db.session.delete(row)
    db.session.commit()
