"""Settings: defaults, then ``personalize.toml`` in the instance folder, then ``PERSONALIZE_*`` variables.

Every setting has one name (``DATABASE_URL``); the environment spells it with a
prefix (``PERSONALIZE_DATABASE_URL``) and the instance file in lower case
(``database_url = "…"``). Later sources win.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

ENV_PREFIX = "PERSONALIZE_"
INSTANCE_FILE = "personalize.toml"

#: name -> (default, help). The admin guide's configuration reference is built from this.
SETTINGS: dict[str, tuple[Any, str]] = {
    "DATABASE_URL": (None, "SQLAlchemy database URL; default: SQLite file personalize.db in the instance folder."),
    "SECRET_KEY": (None, "Signs admin sessions; default: a random key kept in the instance folder."),
    "AUTO_MIGRATE": (None, "Create/upgrade the schema on start; default: on for the embedded SQLite, off otherwise."),
    "MODEL_DIR": (None, "Where trained model files are kept; default: models/ in the instance folder."),
    "MODEL_CHECK_SECONDS": (5.0, "How often a server process looks for a newly trained model."),
    "SITE_CACHE_SECONDS": (2.0, "How long a web process reuses a site it read by public key (origins, rules); a change made through another process counts within this time; 0 reads it on every widget call."),
    "PLUGINS_DIR": (None, "A folder of .py files loaded as plugins."),
    "LOAD_PLUGINS": (None, "Comma-separated allow-list of plugin names to load; default: all installed."),
    "MAX_EVENTS_PER_BATCH": (100, "Most events one POST /api/v1/events may carry."),
    "MAX_CONTENT_LENGTH": (512 * 1024, "Largest request body accepted, in bytes."),
    "RECOMMENDATION_LIMIT_MAX": (50, "Largest `limit` a recommendation request may ask for."),
    "HISTORY_LENGTH": (200, "How many of a visitor's newest interactions the recommender reads."),
    "PUBLIC_URL": (None, "The server's public base URL, used in the snippet shown to admins."),
    "ENCRYPTION_KEY": (None, "Encrypts connector secrets at rest; default: derived from SECRET_KEY."),
    "MODEL_REFRESH_HOURS": (24, "Retrain a site's model, and recompute its scores, once its model is this many hours old and new behaviour has arrived since (also trains a site that has behaviour but no model yet); run by the scheduler of `personalize serve` or the Celery beat; 0 turns it off."),
    "SYNC_SCHEDULER": (True, "Run scheduled connector syncs inside `personalize serve`."),
    "SEGMENT_RELATIVE_MINUTES": (60, "How often the scheduler rebuilds the segments whose rules use relative dates (within / older than N days, behaviour windows), so members leave a window without any new event; 0 turns it off."),
    # production mode (docs/deployment.md): each of these is optional; unset, the embedded default runs
    "WORKERS": (2, "Web server processes `personalize serve` starts (gunicorn workers)."),
    "THREADS": (8, "Threads per web server process (more threads let concurrent event batches share a transaction: on 2 cores with PostgreSQL, 8 stored about 4,150 events/s where 4 stored 3,100-3,300, see docs/deployment.md)."),
    "REDIS_URL": (None, "Redis for new-model announcements and shared rate-limit counters, e.g. redis://127.0.0.1:6379/0; default: none (process memory)."),
    "RECOMMENDATION_CACHE_SECONDS": (30.0, "How long a web process reuses a ranking it computed while nothing it was computed from changed (the visitor's history, model, rules, cluster); each answer still reads stock and prices afresh; 0 turns reuse off."),
    "RATE_LIMIT_PER_IP": (1200, "Most API requests one client address may make a minute (0: no limit); 429 beyond. Shared across processes with Redis."),
    "RATE_LIMIT_PER_SITE": (60000, "Most API requests a site's public key (the widget) may open a minute, from all addresses together (0: no limit)."),
    "SIGN_IN_LIMIT_PER_ADDRESS": (30, "Most admin sign-in attempts one client address may make a minute (0: no limit); beyond, 429 without checking the password."),
    "SIGN_IN_LIMIT_PER_ACCOUNT": (10, "Most sign-in attempts for one admin email a minute, from all addresses together (0: no limit); beyond, 429."),
    "RATE_LIMIT_PER_SECRET_KEY": (6000, "Most API requests a site's secret key (the shop's servers) may open a minute (0: no limit)."),
    "TRUSTED_PROXIES": (0, "How many reverse proxies in front of the server add to X-Forwarded-For; 0 ignores the header (the client address is the connection's)."),
    "DATABASE_CONNECT_TIMEOUT": (5, "Seconds to wait for a new PostgreSQL connection before giving up (503)."),
    "DATABASE_STATEMENT_TIMEOUT": (300, "Seconds one PostgreSQL statement may run before the server cancels it (0: no limit)."),
    "DATABASE_PING_IDLE_SECONDS": (5, "A pooled PostgreSQL connection idle this many seconds is pinged before use and replaced if the database dropped it."),
    "DATABASE_LOCK_TIMEOUT": (15, "Seconds a SQLite writer waits for another writer's lock before giving up (503)."),
    "WORKER_TIMEOUT": (60, "Seconds gunicorn lets a web process go silent before restarting it (`personalize serve`)."),
    "BROKER_URL": (None, "Celery broker (e.g. amqp://guest:guest@127.0.0.1:5672//) that runs jobs on `personalize worker` processes; default: none (jobs run in the web process)."),
    "QUEUE_NAME": ("personalize", "The broker queue jobs go to; installations sharing one broker each need their own."),
    # privacy (docs/profiles.md, "Rights of the person" and "Retention")
    "EVENT_RETENTION_DAYS": (0, "Raw events older than this many days are deleted hourly (0: kept until the person is erased); interactions, orders and models keep the history."),
    "SYNC_LOG_RETENTION_DAYS": (90, "Finished sync runs and processed webhook payloads older than this many days are deleted hourly (0: kept)."),
    "STORE_IP_ADDRESSES": (False, "Keep the address of the client that sends events as the profile attribute `ip`; off, no client address is stored."),
    "IP_ADDRESS_TRUNCATE": (True, "With STORE_IP_ADDRESSES: keep only the network part of the address (IPv4 /24, IPv6 /48)."),
    # journeys (docs/journeys.md)
    "JOURNEY_INBOX": ("thread", "How a web process enters people in journeys after it stored their events: `thread` (a thread of the process, in batches; the request does not wait) or `inline` (in the request itself: tests)."),
    "JOURNEY_BATCH_SIZE": (500, "How many due journey steps a runner claims at once."),
    "JOURNEY_LEASE_SECONDS": (300, "How long a runner holds the steps it claimed; a runner that dies leaves them to another one after this time."),
    "JOURNEY_TRIGGER_SECONDS": (30, "How often the journeys' catch-up runs: events and segment changes a process stored but did not hand to journeys (it died), and date triggers."),
    "JOURNEY_WORKERS": (2, "With BROKER_URL: how many `journeys_run` jobs the scheduler keeps queued at once while steps are due."),
}

_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


def _coerce(name: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str) or default is None:
        if name == "AUTO_MIGRATE" and isinstance(value, str):
            return _to_bool(name, value)
        return value
    if isinstance(default, bool):
        return _to_bool(name, value)
    try:
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name} must be a number, got {value!r}") from None
    return value


def _to_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _BOOL_TRUE:
        return True
    if v in _BOOL_FALSE:
        return False
    raise ConfigError(f"{ENV_PREFIX}{name} must be true or false, got {value!r}")


def instance_path(environ: dict[str, str] | None = None) -> Path:
    """The instance folder: ``PERSONALIZE_INSTANCE_PATH``, else ``instance/`` in the working directory."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(ENV_PREFIX + "INSTANCE_PATH") or Path.cwd() / "instance").resolve()


def load_settings(instance_path: str | Path, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return every setting, resolved from defaults, the instance file and the environment."""
    environ = os.environ if environ is None else environ
    values = {name: default for name, (default, _help) in SETTINGS.items()}
    path = Path(instance_path) / INSTANCE_FILE
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for key, value in data.items():
            name = key.upper()
            if name not in SETTINGS:
                raise ConfigError(f"{path}: unknown setting {key!r}; known: {', '.join(s.lower() for s in SETTINGS)}")
            values[name] = value
    for name, (default, _help) in SETTINGS.items():
        if ENV_PREFIX + name in environ:
            values[name] = _coerce(name, environ[ENV_PREFIX + name], default)
    return values
