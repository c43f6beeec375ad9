"""Pulling a connection's streams into the single customer view.

For each stream the engine hands the connector the state it last stored and reads
what the stream yields: records, :class:`~personalize.records.SkippedRecord` notes
and :class:`~personalize.records.Checkpoint` states. At each checkpoint the records
before it and the new state are committed together, so a run stopped at any point
(crash, outage, expired token) resumes from the last checkpoint: records after it
are read again, and storing is idempotent (products and attributes by key, orders
and engagement by id), so nothing is doubled and nothing is missed.

Errors follow one rule set:

- credentials or settings refused (:class:`AuthError`, :class:`ConfigError`): the run
  stops and fails, with the message for the admin;
- an outage that outlasted the HTTP layer's retries (:class:`TransientError`): the run
  stops; the next one resumes from the last checkpoint;
- anything else in a stream: that stream fails, the next one runs (status ``partial``);
- a malformed record: skipped and counted, the stream goes on.

Every run is a row of the run log (:class:`~.models.SyncRun`).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from .. import metrics
from ..connectors import AuthError, ConfigError, Connector, TransientError
from ..db import db
from ..models import utcnow
from ..plugins import notify
from ..records import (
    Checkpoint,
    ContactRecord,
    DeletedRecord,
    EngagementRecord,
    OrderRecord,
    ProductRecord,
    SkippedRecord,
)
from . import store
from .connections import (
    SecretsNotBound,
    connector_class,
    connector_context,
    effective_mapping,
    get_connection,
    hidden_values,
    missing_settings,
)
from .http import HttpClient
from .models import Connection, StreamState, SyncRun
from .outbound import policy_for
from .secrets import SecretsUnreadable, redact

log = logging.getLogger(__name__)

#: a run whose heartbeat is older than this was abandoned by a stopped process
STALE_AFTER = timedelta(minutes=15)
#: records held before they are stored even without a checkpoint
FLUSH_EVERY = 500
MAX_NOTES = 50

ENTITY_OF = {ContactRecord: "contact", ProductRecord: "product", OrderRecord: "order", EngagementRecord: "engagement"}


class SyncError(Exception):
    """The sync cannot start (unknown connection, disabled, already running)."""


class AlreadyRunning(SyncError):
    pass


@dataclass
class StreamCount:
    records_in: int = 0
    stored: int = 0
    skipped: int = 0
    status: str = "pending"
    error: str = ""


@dataclass
class RunContext:
    run: SyncRun
    conn: Connection
    connector: type[Connector]
    mapping: dict[str, str | None]
    notes: list[str] = field(default_factory=list)
    profiles: set[int] = field(default_factory=set)
    checked: str = ""
    #: the connection's secret values: never written to the run log or the logs
    hide: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(self.clean(message)[:500])

    def clean(self, text: str) -> str:
        return redact(text, self.hide)


def make_http(connector: type[Connector], sleep: Callable[[float], None] | None = None, **options: Any) -> HttpClient:
    """The HTTP client a connector gets: the outbound policy of its ``allowed_hosts`` and the server's
    ``OUTBOUND_ALLOWED_HOSTS``; tests pass a recording ``sleep``."""
    if sleep is not None:
        options["sleep"] = sleep
    try:
        policy = policy_for(connector, current_app.config)
    except ValueError as exc:  # the operator's setting is malformed: nothing is sent until it is fixed
        raise ConfigError(f"the server setting is wrong: {exc}") from None
    return HttpClient(policy=policy, **options)


def start_run(conn: Connection, kind: str, trigger: str) -> SyncRun:
    """Open a run log entry, refusing when another run of this connection is alive."""
    now = utcnow()
    running = db.session.scalars(
        select(SyncRun).where(SyncRun.connection_id == conn.id, SyncRun.status == "running", SyncRun.kind == kind)
    ).all()
    for other in running:
        if now - other.heartbeat_at < STALE_AFTER:
            raise AlreadyRunning(f"{conn.name} is already syncing (run {other.id}, started {other.started_at:%Y-%m-%d %H:%M} UTC)")
        other.status, other.finished_at = "failed", now
        other.message = "interrupted: the process running it stopped; the next run resumes from its last checkpoint"
    run = SyncRun(
        site_id=conn.site_id, connection_id=conn.id, kind=kind, trigger=trigger, status="running",
        started_at=now, heartbeat_at=now, streams={}, errors=[], cursor={}, message="",
    )
    db.session.add(run)
    db.session.commit()
    return run


def build_connector(conn: Connection, started_at: Any, http: HttpClient, notes: Callable[[str], None] = print) -> Connector:
    """The connector of ``conn``, ready to run: raises ``ConfigError`` when a required setting has no value
    (a secret cleared because the address changed, for instance)."""
    cls = connector_class(conn.connector)
    context = connector_context(conn, http, started_at, notes)
    missing = missing_settings(conn, context.settings)
    if missing:
        labels = ", ".join(f"{s.label} ({s.name})" for s in cls.settings if s.name in missing)
        raise ConfigError(f"not set: {labels}; enter it on the connection's page or with `personalize connect … --set`")
    return cls(context)


def run_sync(
    site_id: int,
    connection: str,
    *,
    streams: Iterable[str] | None = None,
    trigger: str = "manual",
    full: bool = False,
    sleep: Callable[[float], None] | None = None,
    progress: Callable[[str, int], None] | None = None,
    http_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pull ``streams`` (default: all) of a site's connection; return the run log entry as a dict.

    :param full: ignore stored states and read everything again (still without duplicates).
    :param sleep: how the HTTP layer waits between retries (tests pass a recorder).
    :param progress: ``progress(stream, records_so_far)`` after each batch.
    """
    conn = get_connection(site_id, connection)
    if conn is None:
        raise SyncError(f"site {site_id} has no connection {connection!r}")
    if not conn.enabled:
        raise SyncError(f"connection {connection!r} is disabled")
    cls = connector_class(conn.connector)
    wanted = list(streams) if streams else [s.name for s in cls.streams]
    for name in wanted:
        cls.stream(name)  # raises KeyError naming the streams there are
    run = start_run(conn, "pull", trigger)
    ctx = RunContext(run=run, conn=conn, connector=cls, mapping=effective_mapping(conn), hide=hidden_values(conn))
    counts: dict[str, StreamCount] = {name: StreamCount() for name in wanted}
    fatal = ""
    try:
        connector = build_connector(conn, run.started_at, make_http(cls, sleep, **(http_options or {})), ctx.note)
        ctx.checked = connector.check().message
    except (AuthError, ConfigError, TransientError, SecretsUnreadable) as exc:
        fatal = fatal_message(exc)
    except Exception as exc:  # an unexpected answer to the check: nothing can be trusted, stop here
        log.warning("check of %s failed: %s", conn.name, ctx.clean(traceback.format_exc(limit=3)))
        fatal = ctx.clean(f"the connection check failed: {type(exc).__name__}: {exc}")[:1000]
    if not fatal:
        for name in wanted:
            count = counts[name]
            try:
                _pull_stream(ctx, connector, name, count, None if full else load_state(conn.id, name), progress)
                count.status = "succeeded"
            except (AuthError, ConfigError, TransientError) as exc:
                db.session.rollback()
                count.status, count.error = "failed", fatal_message(exc)
                fatal = count.error
                break
            except Exception as exc:  # one stream's failure must not sink the others
                db.session.rollback()
                log.warning("stream %s of %s failed: %s", name, conn.name, ctx.clean(traceback.format_exc(limit=3)))
                count.status, count.error = "failed", ctx.clean(f"{type(exc).__name__}: {exc}")[:1000]
    return _finish(ctx, counts, fatal)


def _pull_stream(ctx: RunContext, connector: Connector, name: str, count: StreamCount, state: dict | None, progress) -> None:
    entity = ctx.connector.stream(name).entity
    buffer: list[Any] = []
    for item in connector.pull(name, state):
        if isinstance(item, Checkpoint):
            _flush(ctx, entity, buffer, count)
            buffer = []
            save_state(ctx.conn.id, name, item.state)
            ctx.run.cursor = {**(ctx.run.cursor or {}), name: item.state}
            _heartbeat(ctx, count, name)
            db.session.commit()
            if progress:
                progress(name, count.records_in)
        elif isinstance(item, SkippedRecord):
            count.skipped += 1
            ctx.note(f"{name}: skipped {item.key + ': ' if item.key else ''}{item.reason}")
        elif isinstance(item, DeletedRecord) and item.entity == entity:
            count.records_in += 1
            _flush(ctx, entity, buffer, count)  # what came before the deletion is stored before it
            buffer = []
            _delete(ctx, [item], count)
        elif ENTITY_OF.get(type(item)) == entity:
            count.records_in += 1
            buffer.append(item)
            if len(buffer) >= FLUSH_EVERY:
                # storing early is safe (idempotent); the state only moves at a checkpoint
                _flush(ctx, entity, buffer, count)
                buffer = []
                db.session.commit()
                if progress:
                    progress(name, count.records_in)
        else:
            count.skipped += 1
            ctx.note(f"{name}: skipped a {type(item).__name__}, expected a {entity} record")
    _flush(ctx, entity, buffer, count)
    _heartbeat(ctx, count, name)
    db.session.commit()
    if progress:
        progress(name, count.records_in)


def _flush(ctx: RunContext, entity: str, records: list[Any], count: StreamCount | None) -> store.StoreResult:
    site_id, source = ctx.conn.site_id, ctx.conn.connector
    if not records:
        return store.StoreResult()
    if entity == "contact":
        result = store.store_contacts(site_id, source, ctx.connector.identity_kind, ctx.mapping, records)
    elif entity == "product":
        result = store.store_products(site_id, records)
    elif entity == "order":
        result = store.store_orders(site_id, records)
    else:
        result = store.store_engagement(site_id, source, ctx.connector.identity_kind, records)
    if result.merged:
        ctx.note(f"{result.merged} contact(s) whose email and {ctx.connector.identity_kind or 'id'} were on two profiles: merged")
    if result.conflicts:
        ctx.note(f"{result.conflicts} contact(s) whose email and {ctx.connector.identity_kind or 'id'} belong to different profiles were left apart")
    for reason in result.skipped:
        ctx.note(reason)
    if count is not None:
        count.stored += result.stored
        count.skipped += len(result.skipped)
    ctx.profiles |= result.profiles
    return result


def _delete(ctx: RunContext, records: list[DeletedRecord], count: StreamCount | None) -> store.StoreResult:
    result = store.store_deletions(ctx.conn.site_id, ctx.conn.connector, ctx.connector.identity_kind, records)
    for reason in result.skipped:
        ctx.note(reason)
    if count is not None:
        count.stored += result.stored
        count.skipped += len(result.skipped)
    ctx.profiles = (ctx.profiles | result.profiles) - result.erased
    return result


def _heartbeat(ctx: RunContext, count: StreamCount, name: str) -> None:
    ctx.run.heartbeat_at = utcnow()
    ctx.run.streams = {**(ctx.run.streams or {}), name: _count_json(count)}


def _count_json(count: StreamCount) -> dict[str, Any]:
    return {"in": count.records_in, "stored": count.stored, "skipped": count.skipped, "status": count.status, "error": count.error}


# What went wrong with a connection, in words an admin can act on: (the error, what a run's log
# says, what "test connection" answers while the admin waits). ``{exc}`` is the error's own message;
# the first matching row counts, so a subclass comes before its base.
WORDING: tuple[tuple[type[Exception], str, str], ...] = (
    (AuthError, "credentials refused: {exc}. Check the connection's token or key, and its permissions.",
     "The service refused the credentials: {exc}. Check the token or key and its permissions."),
    (ConfigError, "settings problem: {exc}", "A setting is wrong: {exc}."),
    (TransientError, "the service is unavailable: {exc}. The next run resumes from the last checkpoint.",
     "The service could not be reached or is busy: {exc}. Try again in a minute."),
    (SecretsNotBound, "{exc}", "The stored secrets were not used: {exc}."),
    (SecretsUnreadable, "{exc}",
     "The stored secrets cannot be read with this server's key (was ENCRYPTION_KEY or SECRET_KEY changed?). Enter them again."),
)


def _worded(exc: Exception, column: int) -> str | None:
    for kind, *texts in WORDING:
        if isinstance(exc, kind):
            return texts[column].format(exc=exc)
    return None


def fatal_message(exc: Exception) -> str:
    """``exc`` as the message of the run it stopped."""
    worded = _worded(exc, 0)
    return str(exc) if worded is None else worded


def check_message(exc: Exception) -> str:
    """``exc`` as the answer to a test of the connection."""
    worded = _worded(exc, 1)
    return f"The test failed: {type(exc).__name__}: {exc}" if worded is None else worded


def _finish(ctx: RunContext, counts: dict[str, StreamCount], fatal: str) -> dict[str, Any]:
    run = ctx.run
    fatal = ctx.clean(fatal)
    for c in counts.values():
        c.error = ctx.clean(c.error)
    errors = [f"{name}: {c.error}" for name, c in counts.items() if c.error]
    if fatal and not any(fatal in e for e in errors):
        errors.insert(0, fatal)
    done = [c for c in counts.values() if c.status == "succeeded"]
    if not errors:
        status = "succeeded"
    elif done and not fatal:
        status = "partial"
    else:
        status = "failed"
    run.status = status
    run.finished_at = utcnow()
    run.records_in = sum(c.records_in for c in counts.values())
    run.records_out = sum(c.stored for c in counts.values())
    run.skipped = sum(c.skipped for c in counts.values())
    run.streams = {name: _count_json(c) for name, c in counts.items()}
    run.errors = errors + [n for n in ctx.notes if n not in errors][: MAX_NOTES]
    stored = f"{run.records_out} records stored"
    run.message = fatal or (errors[0] if errors else (f"{ctx.checked}: {stored}" if ctx.checked else stored))
    db.session.commit()
    store.refresh_segments(run.site_id, ctx.profiles)
    summary = run_summary(run)
    notify_finished(run.site_id, ctx.conn, summary)
    return summary


SYNC_RUNS = metrics.counter("personalize_sync_runs_total", "Connector sync runs finished, by connector, kind (pull or push) "
                            "and status (succeeded, partial, failed).", ["connector", "kind", "status"])


def notify_finished(site_id: int, conn: Connection, summary: dict[str, Any]) -> None:
    """Count the run for /metrics and call ``sync_finished``; a failing listener is logged, never turns a stored run into an error."""
    SYNC_RUNS.add((conn.connector, str(summary.get("kind")), str(summary.get("status"))))
    notify("sync_finished", site_id=site_id, connection=conn.name, connector=conn.connector, summary=summary)


def run_summary(run: SyncRun) -> dict[str, Any]:
    return {
        "run_id": run.id, "kind": run.kind, "trigger": run.trigger, "status": run.status,
        "records_in": run.records_in, "records_out": run.records_out, "skipped": run.skipped,
        "streams": dict(run.streams or {}), "errors": list(run.errors or []), "cursor": dict(run.cursor or {}),
        "message": run.message, "started_at": run.started_at, "finished_at": run.finished_at,
        "seconds": (run.finished_at - run.started_at).total_seconds() if run.finished_at else None,
    }


def load_state(connection_id: int, stream: str) -> dict[str, Any] | None:
    row = db.session.scalar(select(StreamState).where(StreamState.connection_id == connection_id, StreamState.stream == stream))
    return dict(row.state) if row is not None and row.state else None


def save_state(connection_id: int, stream: str, state: dict[str, Any]) -> None:
    row = db.session.scalar(select(StreamState).where(StreamState.connection_id == connection_id, StreamState.stream == stream))
    if row is None:
        db.session.add(StreamState(connection_id=connection_id, stream=stream, state=dict(state), updated_at=utcnow()))
    else:
        row.state, row.updated_at = dict(state), utcnow()


def run_log(site_id: int, connection: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest run log entries of a site (or one connection), newest first."""
    q = select(SyncRun, Connection.name).join(Connection, Connection.id == SyncRun.connection_id).where(SyncRun.site_id == site_id)
    if connection:
        q = q.where(Connection.name == connection)
    out = []
    for run, name in db.session.execute(q.order_by(SyncRun.id.desc()).limit(limit)).all():
        out.append({**run_summary(run), "connection": name})
    return out


def apply_records(site_id: int, conn: Connection, records: Iterable[Any]) -> dict[str, int]:
    """Store records that arrived outside a stream (a webhook): grouped by kind, no state involved."""
    cls = connector_class(conn.connector)
    run = SyncRun(site_id=site_id, connection_id=conn.id, started_at=utcnow())
    ctx = RunContext(run=run, conn=conn, connector=cls, mapping=effective_mapping(conn))
    groups: dict[str, list[Any]] = {}
    deletions: list[DeletedRecord] = []
    skipped = 0
    for item in records:
        if isinstance(item, DeletedRecord):
            deletions.append(item)
            continue
        entity = ENTITY_OF.get(type(item))
        if entity is None:
            skipped += 1
            continue
        groups.setdefault(entity, []).append(item)
    stored = 0
    for entity in ("product", "contact", "order", "engagement"):
        result = _flush(ctx, entity, groups.get(entity, []), None)
        stored += result.stored
        skipped += len(result.skipped)
    if deletions:
        result = _delete(ctx, deletions, None)
        stored += result.stored
        skipped += len(result.skipped)
    db.session.commit()
    store.refresh_segments(site_id, ctx.profiles)
    return {"stored": stored, "skipped": skipped}

