"""The application factory."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface

from . import __version__
from .config import instance_path as default_instance_path
from .config import load_plugin_settings, load_settings
from .db import db, upgrade

log = logging.getLogger(__name__)


def _secret_key(instance: Path) -> str:
    """A random key kept in the instance folder, so sessions survive restarts."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


class _AdminCookieSessions(SecureCookieSessionInterface):
    """The admin's signed session cookie, not even read on ``/api/``: no API endpoint looks at
    it (API calls carry keys), and reading it (a signer built and the cookie checked) costs
    a widget call as much as some of its own work. There the session is an empty, read-only
    stand-in (flask's null session: writing to it fails loudly) and no cookie is written."""

    def open_session(self, app: Flask, request: Any):
        if request.environ.get("PATH_INFO", "").startswith("/api/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


class _StrictJSON(DefaultJSONProvider):
    """Every JSON answer is valid JSON: a NaN or infinite number (stored by older versions, or
    handed over by a plugin) becomes ``null`` instead of Python's ``NaN``, which strict parsers
    (browsers' ``JSON.parse``, most languages) refuse."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        from .validation import json_text

        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return json_text(obj, **kwargs)


def _check_outbound_setting(settings: dict[str, Any]) -> None:
    """A malformed OUTBOUND_ALLOWED_HOSTS stops the start with its message, not the first sync."""
    from .config import ConfigError
    from .sync.outbound import parse_allowed_hosts

    try:
        parse_allowed_hosts(settings.get("OUTBOUND_ALLOWED_HOSTS"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the server.

    Settings come from defaults, ``personalize.toml`` in the instance folder and
    ``PERSONALIZE_*`` variables; ``test_config`` overrides them all (tests use it).
    """
    test_config = dict(test_config or {})
    instance = Path(test_config.pop("INSTANCE_PATH", None) or default_instance_path()).resolve()
    app = Flask(__name__, static_folder=None, instance_path=str(instance), instance_relative_config=True)
    app.json = _StrictJSON(app)
    app.session_interface = _AdminCookieSessions()
    instance.mkdir(parents=True, exist_ok=True)

    settings = load_settings(instance)
    plugin_settings = load_plugin_settings(instance)  # a missing $env/$file secret stops the start here, by name
    settings.update(test_config)
    app.config.update(settings)
    _check_outbound_setting(settings)
    url = settings.get("DATABASE_URL") or f"sqlite:///{instance / 'personalize.db'}"
    app.config["DATABASE_URL"] = url
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if url.startswith("sqlite"):
        # wait for a writer rather than failing at once, but not for ever
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": float(settings["DATABASE_LOCK_TIMEOUT"])}})
    else:
        # a connection for every thread of a web process (THREADS), so none waits for the pool
        pool_size = max(5, int(settings.get("THREADS") or 0) + 2)
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {
            "pool_size": pool_size,  # no pool_pre_ping: see db.ping_idle_connections
            "connect_args": {"connect_timeout": max(1, int(settings["DATABASE_CONNECT_TIMEOUT"]))},
        })
    app.config["SECRET_KEY"] = settings.get("SECRET_KEY") or _secret_key(instance)
    app.config["VERSION"] = __version__

    from . import schema  # noqa: F401  (every table is known before migrations run)

    db.init_app(app)
    if url.startswith("sqlite"):
        from sqlalchemy import event

        with app.app_context():
            @event.listens_for(db.engine, "connect")
            def _sqlite_pragmas(dbapi_connection, _record):
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()
    else:
        from .db import ping_idle_connections

        with app.app_context():
            ping_idle_connections(db.engine, float(settings["DATABASE_PING_IDLE_SECONDS"]))
    if not url.startswith("sqlite") and float(settings["DATABASE_STATEMENT_TIMEOUT"] or 0) > 0:
        from sqlalchemy import event

        statement_ms = int(float(settings["DATABASE_STATEMENT_TIMEOUT"]) * 1000)
        with app.app_context():
            @event.listens_for(db.engine, "connect")
            def _statement_timeout(dbapi_connection, _record):
                # a runaway query is cancelled instead of holding a connection (and a web thread) for ever
                cursor = dbapi_connection.cursor()
                cursor.execute(f"SET statement_timeout = {statement_ms}")
                cursor.close()
                dbapi_connection.commit()  # SET is transactional in PostgreSQL

    from .db import ReadConnections

    with app.app_context():
        app.extensions["personalize.read_connections"] = ReadConnections(db.engine)  # see recommend.service.use_read_connection

    auto_migrate = settings.get("AUTO_MIGRATE")
    if auto_migrate is None:
        auto_migrate = url.startswith("sqlite")
    if auto_migrate:
        upgrade(app)

    from .plugins import load_plugins
    from .recommend.service import ModelCache

    registry = load_plugins(settings.get("PLUGINS_DIR"), settings.get("LOAD_PLUGINS"))
    app.extensions["personalize.plugins"] = registry
    app.extensions["personalize.models"] = ModelCache(float(settings["MODEL_CHECK_SECONDS"]))

    from . import cache

    cache.init_app(app, registry)  # Redis when REDIS_URL is set, process memory otherwise

    from . import limits

    limits.init_app(app)  # rate limits per address and per key; ProxyFix when TRUSTED_PROXIES is set

    from . import admin, api, email_block, unsubscribe, widget
    from .api import cors, errors

    errors.init_app(app)
    cors.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(widget.bp)
    app.register_blueprint(unsubscribe.bp)
    app.register_blueprint(email_block.bp)
    admin.init_app(app)
    for blueprints in registry.hook.register_blueprints():
        for blueprint in blueprints or []:
            app.register_blueprint(blueprint)
    plugin_settings.names = {p["name"] for p in registry.describe()}
    for name in plugin_settings.configured():
        if name not in plugin_settings.names:
            log.warning("personalize.toml has settings for plugin %r, which is not loaded (`personalize plugins` lists them)", name)
    app.extensions["personalize.plugin_settings"] = plugin_settings
    registry.hook.startup(app=app, plugin_config=plugin_settings)

    from . import monitoring

    monitoring.init_app(app)  # request ids, the access log and /metrics around everything above
    return app
