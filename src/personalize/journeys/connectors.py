"""Connector actions: what journey steps do in connected systems, through the
``register_journey_actions`` hook of the connector plugins (docs/plugin-hooks.md)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..connectors import AuthError, ConfigError, JourneyAction, TransientError
from ..db import db
from ..plugins import registry
from ..records import ActionResult, ActionTarget
from ..sync.models import Connection

log = logging.getLogger(__name__)


def site_connection(site_id: int, name: str) -> Connection | None:
    return db.session.scalar(select(Connection).where(Connection.site_id == site_id, Connection.name == name))


def connector_actions() -> dict[tuple[str, str], JourneyAction]:
    """Every journey action the loaded plugins declare, by ``(connector, action name)``."""
    out: dict[tuple[str, str], JourneyAction] = {}
    for declared in registry().hook.register_journey_actions():
        for action in declared or []:
            if not isinstance(action, JourneyAction) or not callable(action.run):
                log.error("a plugin declared a journey action that is not a JourneyAction: %r", action)
                continue
            out.setdefault((action.connector, action.name), action)
    return out


def run_action(site_id: int, connection: str, action_name: str, params: dict[str, Any], targets: list[ActionTarget],
               started_at: datetime, sleep=None) -> list[ActionResult]:
    """Run one connector action for ``targets`` (in the action's batch size); one result per target.

    A connection that is missing, disabled or whose connector lost the action fails every
    target; an outage or throttling beyond the HTTP client's retries makes them ``retry``.
    """
    from ..connectors import ConnectorContext
    from ..sync.connections import connection_settings, connector_class, hidden_values
    from ..sync.engine import make_http
    from ..sync.secrets import redact

    def every(status: str, message: str) -> list[ActionResult]:
        return [ActionResult(t.key, status, message[:300]) for t in targets]

    conn = site_connection(site_id, connection)
    if conn is None:
        return every("failed", f"the site has no connection {connection!r}")
    if not conn.enabled:
        return every("retry", f"connection {connection} is disabled")
    action = connector_actions().get((conn.connector, action_name))
    if action is None:
        return every("failed", f"{conn.connector} offers no action {action_name!r}")
    hide = hidden_values(conn)
    try:
        cls = connector_class(conn.connector)
        connector = cls(ConnectorContext(settings=connection_settings(conn), http=make_http(sleep), started_at=started_at, log=lambda _m: None))
    except Exception as exc:  # unreadable secrets, a connector that refuses its settings
        return every("failed", redact(f"{type(exc).__name__}: {exc}", hide))
    results: list[ActionResult] = []
    size = max(1, int(action.batch_size or 100))
    for start in range(0, len(targets), size):
        batch = targets[start : start + size]
        try:
            got = list(action.run(connector, dict(params), batch) or [])
        except TransientError as exc:
            got = [ActionResult(t.key, "retry", str(exc)) for t in batch]
        except (AuthError, ConfigError) as exc:
            got = [ActionResult(t.key, "failed", str(exc)) for t in batch]
        except Exception as exc:  # a plugin's bug fails its batch, never the runner
            log.exception("journey action %s.%s failed", conn.connector, action_name)
            got = [ActionResult(t.key, "failed", f"{type(exc).__name__}: {exc}") for t in batch]
        answered = {r.key: r for r in got if isinstance(r, ActionResult)}
        for t in batch:
            r = answered.get(t.key) or ActionResult(t.key, "failed", "the connector returned no result")
            if r.status not in ("ok", "skipped", "failed", "retry"):
                r = ActionResult(t.key, "failed", f"unknown status {r.status!r}")
            results.append(replace(r, message=redact(r.message or "", hide)[:300]))
    return results


def channel_of(site_id: int, connection: str, action_name: str) -> str:
    """The contact-policy channel a connector step counts on: the action's own (``email`` for one
    that has the provider send a message); none for an action that only changes data (a tag, a
    property), which is not a contact."""
    conn = site_connection(site_id, connection)
    if conn is None:
        return ""
    action = connector_actions().get((conn.connector, action_name))
    return action.channel if action is not None else ""
