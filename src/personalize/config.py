"""Settings: defaults, then ``personalize.toml`` in the instance folder, then ``PERSONALIZE_*`` variables.

Every setting has one name (``DATABASE_URL``); the environment spells it with a
prefix (``PERSONALIZE_DATABASE_URL``) and the instance file in lower case
(``database_url = "…"``). Later sources win.

Secrets need not be written into either: ``PERSONALIZE_SECRET_KEY_FILE=/run/secrets/key``
reads a setting from a file (container secrets), and a value in the instance file may be
``{"$env" = "NAME"}`` or ``{"$file" = "path"}`` (relative to the instance folder).

Plugins have settings of their own: a ``[plugins.NAME]`` table in the instance file and
``PERSONALIZE_PLUGIN_<NAME>_<KEY>`` variables (:func:`load_plugin_settings`), which a plugin
reads through the ``plugin_config`` argument of its ``startup`` hook.
"""

from __future__ import annotations

import os
import re
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
    # admin sessions (docs/security.md, "Admin sessions")
    "ADMIN_SESSION_IDLE_MINUTES": (120, "An admin session unused for this many minutes ends; the admin signs in again (0: no idle timeout)."),
    "ADMIN_SESSION_MAX_HOURS": (24, "An admin session ends this many hours after its sign-in, however busy (0: no limit)."),
    # outbound requests and connector files (docs/security.md, "Outbound requests" and "The files root")
    "OUTBOUND_ALLOWED_HOSTS": ("", "Hosts connectors may also reach besides each provider's own API hosts (api.hubapi.com, *.myshopify.com, <dc>.api.mailchimp.com): an API proxy or a test server. Comma-separated host, host:port or *.domain entries, e.g. \"crm-proxy.internal:8443, 127.0.0.1\". A listed host may be a private or loopback address and may use http://; every other request goes over https to a public address only. Any editor can point a connection's API address at a listed host, so list only hosts that may receive connector credentials. Default: none."),
    "FILES_ROOT": (None, "The folder the files connector (and every connector setting of type path) reads and writes under: each site gets FILES_ROOT/<site id>, and a connection's folder is relative to it; nothing outside is reached, symbolic links below it are not followed. Default: files/ in the instance folder."),
    # operations: logs and metrics (docs/deployment.md, "Logs" and "Metrics")
    "LOG_LEVEL": ("INFO", "The least severe log lines `personalize serve` and `personalize worker` write to standard error: DEBUG, INFO, WARNING, ERROR or CRITICAL (gunicorn's and Celery's lines too)."),
    "LOG_FORMAT": ("text", "text: one readable line per record (time, level, process, logger, [request id], message); json: one JSON object a line, for a log collector. Keys, passwords and tokens are redacted either way."),
    "METRICS": ("off", "off: no /metrics (404); token: GET /metrics answers in Prometheus' text format to `Authorization: Bearer <METRICS_TOKEN>`: requests and latency by route, events, recommendation lists, jobs, sync runs, journey steps."),
    "METRICS_TOKEN": (None, "The bearer token /metrics asks for with METRICS=token: at least 16 characters (python -c 'import secrets; print(secrets.token_urlsafe(32))'); PERSONALIZE_METRICS_TOKEN_FILE keeps it out of the environment."),
    "ACCESS_LOG": (False, "Log one line per HTTP request (logger personalize.access): method, path without the query string, route, status, duration, size, request id; the client's address only with STORE_IP_ADDRESSES."),
    # journeys (docs/journeys.md)
    "JOURNEY_INBOX": ("thread", "How a web process enters people in journeys after it stored their events: `thread` (a thread of the process, in batches; the request does not wait) or `inline` (in the request itself: tests)."),
    "JOURNEY_BATCH_SIZE": (500, "How many due journey steps a runner claims at once."),
    "JOURNEY_LEASE_SECONDS": (300, "How long a runner holds the steps it claimed; a runner that dies leaves them to another one after this time."),
    "JOURNEY_TRIGGER_SECONDS": (30, "How often the journeys' catch-up runs: events and segment changes a process stored but did not hand to journeys (it died), and date triggers."),
    "JOURNEY_WEBHOOK_SECONDS": (20, "Seconds one webhook delivery of a journey step may take in all (connecting, the receiver's answer, its quick retries); a slower receiver is tried again later with a growing delay, like a 5xx."),
    "JOURNEY_TEST_SENDS_PER_DAY": (50, "Test emails of journey steps one site may send a day (UTC); more are refused (429) until the next day."),
    "JOURNEY_WORKERS": (2, "With BROKER_URL: how many `journeys_run` jobs the scheduler keeps queued at once while steps are due."),
    # recommendations in email and other channels (docs/api.md "Email block", docs/connectors.md "Recommendations")
    "EMAIL_TOKEN_DAYS": (60, "How many days the addresses of a person's email block (image and clicks) and of the recommendation fields pushed to email tools stay valid; pushes renew them halfway."),
    "EMAIL_IMAGE_DIR": (None, "Where product pictures for the email block are kept (fetched in the background during pushes, never while an image is served). Default: email-images/ in the instance folder."),
    "EMAIL_IMAGE_FETCH": (True, "After pushing recommendations, fetch the pushed products' pictures for the email block (through the outbound policy; 3 s timeouts, 10 s in all a picture, pictures over 2 MB dropped, 50 a push); off: cards without a picture on disk show the product's initials."),
    "RECOMMENDATION_PUSH_MAX": (5000, "Most contacts whose recommendation fields one sync of a connection pushes (the others follow at the next syncs)."),
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


#: ``PERSONALIZE_<SETTING>_FILE``: the setting's value is the content of that file
FILE_SUFFIX = "_FILE"
#: ``PERSONALIZE_PLUGIN_<NAME>_<KEY>``: key ``<key>`` of plugin ``<name>``'s settings
PLUGIN_ENV_PREFIX = ENV_PREFIX + "PLUGIN_"
#: the section of the instance file that holds plugins' settings: ``[plugins.NAME]``
PLUGINS_SECTION = "plugins"


def _read_instance_file(instance_path: str | Path) -> tuple[Path, dict[str, Any]]:
    path = Path(instance_path) / INSTANCE_FILE
    if not path.exists():
        return path, {}
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _read_secret_file(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")  # the newline an editor or `echo` adds is not part of it
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def resolve_value(value: Any, where: str, instance_path: str | Path, environ: dict[str, str] | None = None) -> Any:
    """``value`` with every ``{"$env": NAME}`` replaced by that environment variable and every
    ``{"$file": path}`` by the file's text (``path`` relative to the instance folder), inside
    tables and lists too. A variable that is not set or a file that cannot be read is a
    :class:`ConfigError` naming ``where`` (the setting's place in the instance file)."""
    environ = os.environ if environ is None else environ
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            name = value["$env"]
            if not isinstance(name, str) or name not in environ:
                raise ConfigError(f"{where}: environment variable {name!r} is not set")
            return environ[name]
        if set(value) == {"$file"}:
            if not isinstance(value["$file"], str) or not value["$file"]:
                raise ConfigError(f"{where}: $file must name a file")
            return _read_secret_file(Path(instance_path) / value["$file"], where)
        if any(k.startswith("$") for k in value):
            raise ConfigError(f"{where}: a table with $-keys must be {{\"$env\" = \"NAME\"}} or {{\"$file\" = \"path\"}}")
        return {k: resolve_value(v, f"{where}.{k}", instance_path, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_value(v, f"{where}[{i}]", instance_path, environ) for i, v in enumerate(value)]
    return value


def load_settings(instance_path: str | Path, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return every setting, resolved from defaults, the instance file and the environment."""
    environ = os.environ if environ is None else environ
    values = {name: default for name, (default, _help) in SETTINGS.items()}
    path, data = _read_instance_file(instance_path)
    for key, value in data.items():
        if key == PLUGINS_SECTION:
            continue  # plugins' own settings: load_plugin_settings
        name = key.upper()
        if name not in SETTINGS:
            raise ConfigError(f"{path}: unknown setting {key!r}; known: {', '.join(s.lower() for s in SETTINGS)} (and [plugins.NAME] tables)")
        value = resolve_value(value, f"{path}: {key}", instance_path, environ)
        values[name] = _coerce(name, value, SETTINGS[name][0]) if isinstance(value, str) and isinstance(data[key], dict) else value
    for name, (default, _help) in SETTINGS.items():
        variable, file_variable = ENV_PREFIX + name, ENV_PREFIX + name + FILE_SUFFIX
        if variable in environ and file_variable in environ:
            raise ConfigError(f"both {variable} and {file_variable} are set; keep one")
        if file_variable in environ:
            values[name] = _coerce(name, _read_secret_file(Path(environ[file_variable]), file_variable), default)
        elif variable in environ:
            values[name] = _coerce(name, environ[variable], default)
    return values


def plugin_env_prefix(plugin: str) -> str:
    """``PERSONALIZE_PLUGIN_<NAME>_``: the plugin's name in upper case, each run of other characters an ``_``."""
    return PLUGIN_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]+", "_", plugin).strip("_").upper() + "_"


class PluginSettings:
    """Every plugin's settings: ``[plugins.NAME]`` of the instance file, then ``PERSONALIZE_PLUGIN_<NAME>_<KEY>``.

    The instance file's ``$env``/``$file`` values are resolved when this is built, so a
    missing secret stops the start with its name rather than failing a plugin later.
    """

    def __init__(self, sections: dict[str, dict[str, Any]], environ: dict[str, str]):
        self.sections = sections
        self.environ = dict(environ)
        #: the names of the loaded plugins: a variable of plugin ``shop_tools`` is not also read as
        #: key ``tools_…`` of a plugin ``shop``
        self.names: set[str] = set()

    def configured(self) -> list[str]:
        """The plugin names the instance file has a section for."""
        return sorted(self.sections)

    def __call__(self, name: str) -> dict[str, Any]:
        """The settings of plugin ``name`` (its registered name: the entry point's, or the file's stem), a new
        dict each call: the instance file's table, then each ``PERSONALIZE_PLUGIN_<NAME>_<KEY>`` variable as
        key ``<key>`` in lower case, its value a string. ``{}`` when there are none."""
        values = dict(self.sections.get(name, {}))
        prefix = plugin_env_prefix(name)
        longer = [p for p in map(plugin_env_prefix, self.names - {name}) if p.startswith(prefix) and len(p) > len(prefix)]
        for variable, value in self.environ.items():
            if variable.startswith(prefix) and len(variable) > len(prefix) and not any(map(variable.startswith, longer)):
                values[variable[len(prefix):].lower()] = value
        return values


def load_plugin_settings(instance_path: str | Path, environ: dict[str, str] | None = None) -> PluginSettings:
    """The plugins' settings of this instance; a :class:`ConfigError` names a malformed section or a missing secret."""
    environ = os.environ if environ is None else environ
    path, data = _read_instance_file(instance_path)
    section = data.get(PLUGINS_SECTION, {})
    if not isinstance(section, dict) or any(not isinstance(v, dict) for v in section.values()):
        raise ConfigError(f"{path}: plugins' settings go in tables, one per plugin: [plugins.NAME]")
    sections = {name: resolve_value(table, f"{path}: plugins.{name}", instance_path, environ) for name, table in section.items()}
    return PluginSettings(sections, {k: v for k, v in environ.items() if k.startswith(PLUGIN_ENV_PREFIX)})


def secret_setting(name: str) -> bool:
    """Whether setting ``name`` holds a secret that is never shown: a key, token or password (SECRET_KEY,
    ENCRYPTION_KEY, METRICS_TOKEN…), not a number that merely names one (RATE_LIMIT_PER_SECRET_KEY)."""
    default = SETTINGS.get(name, (None, ""))[0]
    return name.endswith(("_KEY", "_TOKEN", "_PASSWORD", "_SECRET")) and not isinstance(default, int | float)


def environment_variable_known(variable: str) -> bool:
    """Whether ``variable`` is one this server reads: ``PERSONALIZE_<SETTING>``, ``PERSONALIZE_<SETTING>_FILE``,
    ``PERSONALIZE_INSTANCE_PATH`` or a plugin's ``PERSONALIZE_PLUGIN_<NAME>_<KEY>``."""
    if not variable.startswith(ENV_PREFIX):
        return False
    name = variable[len(ENV_PREFIX):]
    if name == "INSTANCE_PATH" or name in SETTINGS:
        return True
    if name.endswith(FILE_SUFFIX) and name[: -len(FILE_SUFFIX)] in SETTINGS:
        return True
    return variable.startswith(PLUGIN_ENV_PREFIX) and len(variable) > len(PLUGIN_ENV_PREFIX)
