"""Connector classes from plugins, and the connections a site configures with them.

A connection is one connector set up for one site under a name (``shopify`` by
default; a site may connect two HubSpot portals as ``hubspot-eu`` and
``hubspot-us``). Settings are checked against the connector's declaration;
secret ones are encrypted at rest (:mod:`.secrets`) and never returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import select

from ..connectors import Connector, validate_connector_class
from ..db import db
from ..models import utcnow
from ..plugins import registry
from . import secrets
from .models import Connection

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


class ConnectionSettingsError(ValueError):
    """A connection setting that cannot be accepted; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")



@dataclass
class ConnectorCatalog:
    classes: dict[str, type[Connector]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def connector_catalog() -> ConnectorCatalog:
    """Every connector class the loaded plugins register, with the ones refused and why."""
    catalog = ConnectorCatalog()
    for plugin_result in registry().hook.register_connectors():
        for cls in plugin_result or []:
            problems = validate_connector_class(cls)
            if problems:
                catalog.errors.extend(problems)
            elif cls.name in catalog.classes and catalog.classes[cls.name] is not cls:
                catalog.errors.append(f"two connectors are named {cls.name!r}; the second is ignored")
            else:
                catalog.classes[cls.name] = cls
    return catalog


def connector_class(name: str) -> type[Connector]:
    classes = connector_catalog().classes
    if name not in classes:
        known = ", ".join(sorted(classes)) or "none"
        raise ConnectionSettingsError("connector", f"no connector {name!r} is installed (installed: {known})")
    return classes[name]


def _coerce(connector: type[Connector], raw: dict[str, Any], partial: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    known = {s.name for s in connector.settings}
    for name in raw:
        if name not in known:
            raise ConnectionSettingsError(name, f"{connector.name} has no setting {name!r}; it has {', '.join(sorted(known)) or 'none'}")
    for s in connector.settings:
        if s.name not in raw:
            continue
        value = raw[s.name]
        if isinstance(value, str):
            value = value.strip()
        if value in (None, ""):
            out[s.name] = None
            continue
        if s.type == "integer":
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConnectionSettingsError(s.name, "must be a whole number") from None
        elif s.type == "boolean":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ConnectionSettingsError(s.name, "must be true or false")
                value = value.lower() in ("true", "1", "yes", "on")
            value = bool(value)
        elif s.type == "url" and not str(value).startswith(("http://", "https://")):
            raise ConnectionSettingsError(s.name, "must be an http(s):// URL")
        elif s.type == "choice" and value not in s.choices:
            raise ConnectionSettingsError(s.name, f"must be one of {', '.join(s.choices)}")
        out[s.name] = value
    return out


def save_connection(
    site_id: int,
    connector: str,
    settings: dict[str, Any],
    *,
    name: str | None = None,
    mapping: dict[str, str | None] | None = None,
    schedule_minutes: int | None = None,
    enabled: bool = True,
    push_target: str | None = None,
    push_segments: list[str] | None = None,
) -> Connection:
    """Create a connection, or update the one with this name (secrets left out stay as they were)."""
    cls = connector_class(connector)
    name = (name or connector).strip().lower()
    if not NAME_RE.match(name):
        raise ConnectionSettingsError("name", "use 1-64 lower-case letters, digits, - or _")
    if schedule_minutes is not None and schedule_minutes < 1:
        raise ConnectionSettingsError("schedule", "must be at least one minute")
    conn = get_connection(site_id, name)
    if push_target and push_target not in {t.name for t in cls.push_targets}:
        offered = ", ".join(t.name for t in cls.push_targets) or "none"
        raise ConnectionSettingsError("push_target", f"{cls.name} cannot push to {push_target!r} (it offers {offered})")
    if conn is not None and conn.connector != connector:
        raise ConnectionSettingsError("name", f"{name!r} is already a {conn.connector} connection")
    values = _coerce(cls, settings, partial=conn is not None)
    config = current_app.config
    plain = dict(conn.settings or {}) if conn else {}
    hidden = secrets.decrypt(config, conn.secrets) if conn else {}
    for s in cls.settings:
        if s.name not in values:
            continue
        target = hidden if s.secret else plain
        if values[s.name] is None:
            target.pop(s.name, None)
        else:
            target[s.name] = values[s.name]
    for s in cls.settings:
        have = s.name in (hidden if s.secret else plain)
        if s.required and not have and s.default is None:
            raise ConnectionSettingsError(s.name, f"is required ({s.label})")
    if conn is None:
        conn = Connection(site_id=site_id, name=name, connector=connector, created_at=utcnow())
        db.session.add(conn)
    conn.settings = plain
    conn.secrets = secrets.encrypt(config, hidden)
    if mapping is not None:
        conn.mapping = {str(k): (str(v) if v else None) for k, v in mapping.items()}
    elif conn.mapping is None:
        conn.mapping = {}
    conn.schedule_minutes = schedule_minutes if schedule_minutes is not None else conn.schedule_minutes
    conn.enabled = enabled
    if push_target is not None:
        conn.push_target = push_target or None
    if push_segments is not None:
        conn.push_segments = list(push_segments)
    elif conn.push_segments is None:
        conn.push_segments = []
    conn.updated_at = utcnow()
    db.session.commit()
    return conn


def get_connection(site_id: int, name: str) -> Connection | None:
    return db.session.scalar(select(Connection).where(Connection.site_id == site_id, Connection.name == name))


def list_connections(site_id: int | None = None) -> list[Connection]:
    q = select(Connection).order_by(Connection.site_id, Connection.name)
    if site_id is not None:
        q = q.where(Connection.site_id == site_id)
    return list(db.session.scalars(q))


def connection_settings(conn: Connection) -> dict[str, Any]:
    """The full settings with secrets decrypted and defaults filled in: for the connector only."""
    cls = connector_class(conn.connector)
    values = {s.name: s.default for s in cls.settings if s.default is not None}
    values.update(conn.settings or {})
    values.update(secrets.decrypt(current_app.config, conn.secrets))
    return values


def hidden_values(conn: Connection) -> list[str]:
    """The connection's secret values, to keep out of every message, log line and page."""
    return secrets.secret_values(current_app.config, conn.secrets)


def public_settings(conn: Connection) -> dict[str, Any]:
    """Settings safe to show: plain values, and for each secret only whether it is set."""
    cls = connector_class(conn.connector)
    out = dict(conn.settings or {})
    try:
        hidden = secrets.decrypt(current_app.config, conn.secrets)
    except secrets.SecretsUnreadable:
        hidden = {}
    for s in cls.settings:
        if s.secret:
            out[s.name] = "(set)" if s.name in hidden else "(not set)"
    return out


def effective_mapping(conn: Connection) -> dict[str, str | None]:
    """The connector's default field mapping with the connection's overrides on top."""
    mapping: dict[str, str | None] = dict(connector_class(conn.connector).default_mapping)
    mapping.update(conn.mapping or {})
    return mapping


def delete_connection(conn: Connection) -> None:
    db.session.delete(conn)
    db.session.commit()
