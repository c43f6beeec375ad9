"""Connector classes from plugins, and the connections a site configures with them.

A connection is one connector set up for one site under a name (``shopify`` by
default; a site may connect two HubSpot portals as ``hubspot-eu`` and
``hubspot-us``). Settings are checked against the connector's declaration;
secret ones are encrypted at rest (:mod:`.secrets`) and never returned.

Where requests go is checked when a connection is saved (the same
:mod:`.outbound` policy the HTTP client enforces at request time), and secrets
are bound to it: saving a new address (a ``url`` setting, or one marked
``endpoint``) clears the stored secrets unless new ones come in the same save, and
secrets stored for one address are not handed to a connector whose address has
changed some other way. ``path`` settings are folders inside the site's files root
(:func:`site_files_root`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select
from urllib3.util import parse_url

from ..connectors import (
    RECOMMENDATIONS_SETTING,
    Connector,
    ConnectorContext,
    relative_folder,
    validate_connector_class,
)
from ..db import db
from ..models import utcnow
from ..plugins import registry
from . import secrets
from .models import Connection
from .outbound import OutboundRefused, parse_allowed_hosts, policy_for

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
#: the key, inside a connection's encrypted secrets, of the fingerprint of the address they were saved for
BOUND_TO = "__endpoints__"


class ConnectionSettingsError(ValueError):
    """A connection setting that cannot be accepted; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class SecretsNotBound(secrets.SecretsUnreadable):
    """The connection's address changed since its secrets were stored: they are not used."""


def files_base() -> Path:
    """``FILES_ROOT``, or ``files/`` in the instance folder."""
    configured = current_app.config.get("FILES_ROOT")
    return Path(configured) if configured else Path(current_app.instance_path) / "files"


def site_files_root(site_id: int) -> Path:
    """The folder of one site's files on the server: ``FILES_ROOT/<site id>``. ``path`` settings are relative to it."""
    return files_base().resolve() / str(int(site_id))


def uses_files(cls: type[Connector]) -> bool:
    return any(s.type == "path" for s in cls.settings)


def endpoint_settings(cls: type[Connector]) -> list[str]:
    """The names of the settings that say where requests go."""
    return [s.name for s in cls.settings if s.addresses_remote]



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


def _check_url(connector: type[Connector], s: Any, value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ConnectionSettingsError(s.name, "must be an http(s):// URL")
    try:
        parts = parse_url(value)
    except ValueError:
        raise ConnectionSettingsError(s.name, f"{value!r} is not a valid address") from None
    if parts.query is not None or parts.fragment is not None:
        raise ConnectionSettingsError(s.name, "give the API's base address, without ? or #")
    try:
        policy_for(connector, {"OUTBOUND_ALLOWED_HOSTS": _trusted_hosts()}).check_url(value)
    except OutboundRefused as exc:
        raise ConnectionSettingsError(s.name, str(exc)) from None


def _trusted_hosts() -> Any:
    value = current_app.config.get("OUTBOUND_ALLOWED_HOSTS")
    try:
        parse_allowed_hosts(value)
    except ValueError as exc:  # a server misconfiguration: no editor input can fix it
        raise ConnectionSettingsError("OUTBOUND_ALLOWED_HOSTS", f"the server setting is wrong: {exc}") from None
    return value


def _coerce(connector: type[Connector], raw: dict[str, Any], partial: bool, site_id: int) -> dict[str, Any]:
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
            if s.name == RECOMMENDATIONS_SETTING and not 0 <= value <= connector.recommendation_slots:
                raise ConnectionSettingsError(s.name, f"must be a whole number from 0 to {connector.recommendation_slots}")
        elif s.type == "boolean":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ConnectionSettingsError(s.name, "must be true or false")
                value = value.lower() in ("true", "1", "yes", "on")
            value = bool(value)
        elif s.type == "url":
            _check_url(connector, s, str(value))
        elif s.type == "path":
            try:
                value = str(relative_folder(value))
            except ValueError as exc:
                raise ConnectionSettingsError(s.name, f"{exc}; this site's files folder on the server is {site_files_root(site_id)}") from None
        elif s.type == "choice" and value not in s.choices:
            raise ConnectionSettingsError(s.name, f"must be one of {', '.join(s.choices)}")
        if s.pattern and not (isinstance(value, str) and re.fullmatch(s.pattern, value)):
            raise ConnectionSettingsError(s.name, f"{value!r} is not accepted here. {s.help}".strip())
        out[s.name] = value
    return out


def _fingerprint(cls: type[Connector], plain: dict[str, Any]) -> str:
    """What the secrets are bound to: the values of the settings that say where requests go."""
    values = {name: plain.get(name, cls.setting(name).default) for name in endpoint_settings(cls)}  # type: ignore[union-attr]
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def _stored_secrets(conn: Connection) -> tuple[dict[str, Any], str | None]:
    """The connection's secrets and the fingerprint they were stored with (None for secrets stored before
    fingerprints were kept)."""
    values = secrets.decrypt(current_app.config, conn.secrets)
    bound = values.pop(BOUND_TO, None)
    return values, bound


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
    values = _coerce(cls, settings, partial=conn is not None, site_id=site_id)
    config = current_app.config
    plain = dict(conn.settings or {}) if conn else {}
    hidden, _bound = _stored_secrets(conn) if conn else ({}, None)
    before = _fingerprint(cls, plain)
    for s in cls.settings:
        if s.name not in values:
            continue
        target = hidden if s.secret else plain
        if values[s.name] is None:
            target.pop(s.name, None)
        else:
            target[s.name] = values[s.name]
    cleared: list[str] = []
    if conn is not None and _fingerprint(cls, plain) != before:
        # a secret is only ever sent where it was saved for: a new address needs the secrets entered again
        entered = {s.name for s in cls.settings if s.secret and values.get(s.name) is not None}
        for s in cls.settings:
            if s.secret and s.name in hidden and s.name not in entered:
                del hidden[s.name]
                cleared.append(s.name)
    for s in cls.settings:
        have = s.name in (hidden if s.secret else plain)
        if s.required and not have and s.default is None and s.name not in cleared:
            raise ConnectionSettingsError(s.name, f"is required ({s.label})")
    if conn is None:
        conn = Connection(site_id=site_id, name=name, connector=connector, created_at=utcnow())
        db.session.add(conn)
    conn.settings = plain
    conn.secrets = secrets.encrypt(config, {**hidden, BOUND_TO: _fingerprint(cls, plain)} if hidden else {})
    conn.secrets_cleared = cleared
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
    if uses_files(cls):
        site_files_root(site_id).mkdir(parents=True, exist_ok=True)
    return conn


def cleared_secrets_notice(conn: Connection) -> str:
    """What to tell the admin when a save cleared stored secrets (empty when it did not)."""
    names = list(getattr(conn, "secrets_cleared", None) or [])
    if not names:
        return ""
    cls = connector_class(conn.connector)
    labels = ", ".join(f"{s.label} ({s.name})" for s in cls.settings if s.name in names)
    where = ", ".join(endpoint_settings(cls))
    return (f"The address ({where}) changed, so the stored secrets were removed: {labels}. "
            "A secret is only sent to the address it was saved for; enter them again.")


def get_connection(site_id: int, name: str) -> Connection | None:
    return db.session.scalar(select(Connection).where(Connection.site_id == site_id, Connection.name == name))


def list_connections(site_id: int | None = None) -> list[Connection]:
    q = select(Connection).order_by(Connection.site_id, Connection.name)
    if site_id is not None:
        q = q.where(Connection.site_id == site_id)
    return list(db.session.scalars(q))


def connection_settings(conn: Connection) -> dict[str, Any]:
    """The full settings with secrets decrypted and defaults filled in: for the connector only.

    Raises :class:`SecretsNotBound` when the connection's address is not the one its secrets
    were saved for (changed without going through :func:`save_connection`).
    """
    cls = connector_class(conn.connector)
    values = {s.name: s.default for s in cls.settings if s.default is not None}
    values.update(conn.settings or {})
    hidden, bound = _stored_secrets(conn)
    if hidden and bound is not None and bound != _fingerprint(cls, dict(conn.settings or {})):
        raise SecretsNotBound(
            f"the connection's address ({', '.join(endpoint_settings(cls))}) is not the one its secrets were saved for; "
            "enter the secrets again"
        )
    values.update(hidden)
    return values


def missing_settings(conn: Connection, values: dict[str, Any]) -> list[str]:
    """Required settings without a value (secrets cleared by a change of address, for instance)."""
    cls = connector_class(conn.connector)
    return [s.name for s in cls.settings if s.required and values.get(s.name) in (None, "")]


def connector_context(conn: Connection, http: Any, started_at: Any, log: Any = print) -> ConnectorContext:
    """The context a connector of ``conn`` runs with: its settings, ``http``, and the site's files root."""
    cls = connector_class(conn.connector)
    root = site_files_root(conn.site_id) if uses_files(cls) else None
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    return ConnectorContext(settings=connection_settings(conn), http=http, started_at=started_at, log=log, files_root=root)


def hidden_values(conn: Connection) -> list[str]:
    """The connection's secret values, to keep out of every message, log line and page."""
    try:
        hidden, _bound = _stored_secrets(conn)
    except secrets.SecretsUnreadable:
        return []
    return [str(v) for v in hidden.values() if v not in (None, "")]


def public_settings(conn: Connection) -> dict[str, Any]:
    """Settings safe to show: plain values, and for each secret only whether it is set."""
    cls = connector_class(conn.connector)
    out = dict(conn.settings or {})
    try:
        hidden, _bound = _stored_secrets(conn)
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
