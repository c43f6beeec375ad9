"""Logging for servers and workers: one format, a request id on every line, and no secret in any line.

``personalize serve`` and ``personalize worker`` call :func:`configure` with the
``LOG_LEVEL``, ``LOG_FORMAT`` (``text`` or ``json``: one object a line) settings before
anything else logs, so the server's own lines, gunicorn's and Celery's share one handler on
the root logger, one format, and one :class:`RedactSecrets` filter.

The request id lives in a context variable (:data:`REQUEST_ID`): the web layer sets it for
each request (``personalize.monitoring``) and a job runner for each job, so every line logged
while serving them carries it, whichever module logs. Standard library only: nothing here
imports Flask.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from typing import IO, Any

#: the id of the request (or job) being served in this thread, ``None`` outside one
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("personalize_request_id", default=None)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")

# An incoming X-Request-ID is kept when it looks like an id (a UUID, hex, a load balancer's
# token), so lines from the proxy and from us can be matched; anything else is replaced.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}\Z")


def new_request_id() -> str:
    """32 random hex digits (a UUID's size; os.urandom is four times cheaper than uuid4 and needs no version bits)."""
    return os.urandom(16).hex()


def request_id_from(incoming: str | None) -> str:
    """``incoming`` (an ``X-Request-ID`` header) when it is a sane id, else a new one.

    Sane: 1-128 letters, digits and ``. _ : + / = -``, starting with a letter or digit, and
    nothing the log filter would redact (a key pasted into the header is not echoed into logs).
    """
    if incoming and _SANE_REQUEST_ID.match(incoming) and redact(incoming) == incoming:
        return incoming
    return new_request_id()


# -- redaction --------------------------------------------------------------------------------------

# name=value, name: value, "name": "value" (query strings, forms, headers, JSON, the repr of a dict): the value
# goes when the name is a secret's (password, client_secret, access_token, api_key, key, Authorization, Cookie…).
# Names are found without consuming what follows them, so "url: http://h/?password=…" is still seen.
_NAME_ASSIGN = re.compile(r"""(?<![\w.\-])([\w.\-]+)(["']?\s*(?:=|:|%3[dD])\s*)""")
_VALUE_AT = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|(?:(?:bearer|basic|token|digest)\s+)?[^\s"'&,;})\[\]]+)""", re.IGNORECASE)
_SECRET_NAME = re.compile(
    r"(?:password|passwd|secret|token|apikey|authorization|credentials?|cookie|signature|sessionid)\Z"
    r"|(?:\A|[_.\-])(?:key|pwd|session|dsn)\Z",
    re.IGNORECASE,
)


def _redact_assignments(text: str) -> str:
    parts, done = [], 0
    for name in _NAME_ASSIGN.finditer(text):
        if name.start() < done or not _SECRET_NAME.search(name.group(1)):
            continue
        value = _VALUE_AT.match(text, name.end())
        if value is None:
            continue
        parts += [text[done:name.end()], "[redacted]"]
        done = value.end()
    return "".join(parts) + text[done:] if parts else text


_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    # a credential after an HTTP authentication scheme, however it got into a message
    (re.compile(r"(?i)\b(bearer|basic|digest)(\s+|%20|\+)[A-Za-z0-9._~+/=\-]{4,}"), r"\1\2[redacted]"),
    # the site keys: pk_…/sk_… anywhere, also percent-encoded (sk%5F…) as a raw query string has them
    (re.compile(r"(?<![A-Za-z0-9])([ps]k)(_|%5[fF])[A-Za-z0-9_\-]{6,}"), r"\1\2[redacted]"),
    # the password in a URL's user part: postgresql://user:password@host, redis://:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/:@]*:)[^\s/@]+@"), r"\1[redacted]@"),
    # providers' token shapes: Shopify (shpat_…), HubSpot private apps (pat-na1-…), Mailchimp API keys (…-us20)
    (re.compile(r"\bshp(at|ca|pa|ss)_[A-Fa-f0-9]{16,}"), r"shp\1_[redacted]"),
    (re.compile(r"\bpat-[a-z]{2}\d-[0-9a-fA-F\-]{16,}"), "pat-[redacted]"),
    (re.compile(r"\b[0-9a-f]{32}-us\d{1,2}\b"), "[redacted]-us"),
]
# a cheap first look, on the lower-cased text (ten times faster than an IGNORECASE pattern): text with none
# of these fragments needs no further pattern
_MAYBE_SECRET = re.compile(r"k_|k%5f|bearer|basic|digest|://|pass|pwd|secret|token|key|auth|cred|cookie|signature|session|dsn|shp|pat-|-us\d")


def redact(text: str) -> str:
    """``text`` with every key, password, token and credential that logs must not hold replaced by ``[redacted]``."""
    if not _MAYBE_SECRET.search(text.lower()):
        return text
    text = _redact_assignments(text)  # first, so that "key=pk_…" or "Authorization: Bearer …" lose the whole value
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Redacts the message (arguments merged in), the traceback and the stack of every record it sees.

    Installed on the handlers :func:`configure` sets up, so it covers every logger that
    propagates to the root: ours, plugins', gunicorn's, Celery's, the libraries'.
    """

    _exceptions = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_personalize_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format in someone's call: keep its parts, never lose the line
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exceptions.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):  # structured fields (the access log's) go into JSON lines as they are
            record.fields = {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        record._personalize_redacted = True
        return True


class AddRequestId(logging.Filter):
    """Sets ``record.request_id`` from :data:`REQUEST_ID` (``None`` outside a request or job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


def _timestamp(record: logging.LogRecord) -> str:
    seconds = int(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((record.created - seconds) * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-11-22T20:35:46.123Z INFO    4711 personalize.api.events [3f2a…] message``.

    A message or traceback of several lines continues on lines that start with spaces: a
    line that starts with a time stamp is always a record of its own, so a value a client
    sent (a path with ``%0A`` in it) cannot forge one.
    """

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        if record.stack_info:
            text = f"{text}\n{record.stack_info}"
        rid = getattr(record, "request_id", None) or "-"
        line = f"{_timestamp(record)} {record.levelname:<7} {record.process} {record.name} [{rid}] {text}"
        return line.replace("\r", "\\r").replace("\n", "\n    ")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``message``, ``request_id``, ``process``,
    ``exception`` when there is one, and the fields a record carries in ``extra={"fields": {...}}``
    (the access log's ``method``, ``path``, ``route``, ``status``, ``duration_ms``…)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _timestamp(record), "level": record.levelname, "logger": record.name,
            "message": record.getMessage(), "request_id": getattr(record, "request_id", None), "process": record.process,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                out.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False, default=str)


def check(settings: dict[str, Any]) -> tuple[int, str]:
    """The level number and format the settings name; :class:`personalize.config.ConfigError` for others."""
    from .config import ConfigError

    level = str(settings.get("LOG_LEVEL") or "INFO").strip().upper()
    if level not in LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, got {settings.get('LOG_LEVEL')!r}")
    fmt = str(settings.get("LOG_FORMAT") or "text").strip().lower()
    if fmt not in FORMATS:
        raise ConfigError(f"LOG_FORMAT must be text or json, got {settings.get('LOG_FORMAT')!r}")
    return logging.getLevelName(level), fmt


def make_handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler (standard error by default) with the format, the request id and redaction."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(AddRequestId())
    handler.addFilter(RedactSecrets())
    handler._personalize = True  # type: ignore[attr-defined]
    return handler


def configure(settings: dict[str, Any], stream: IO[str] | None = None) -> logging.Handler:
    """Make the root logger write every record at ``LOG_LEVEL`` or above in ``LOG_FORMAT`` to ``stream``.

    Replaces the handlers an earlier call installed (and Python's default), so calling it
    again (tests, a reload) never doubles lines. Returns the handler.
    """
    level, fmt = check(settings)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = make_handler(fmt, stream)
    root.addHandler(handler)
    root.setLevel(level)
    # Alembic tells of its plugins and dialect each time a process checks the schema; the server logs
    # an actual upgrade itself (personalize.db), so below DEBUG only Alembic's warnings are kept
    logging.getLogger("alembic").setLevel(logging.NOTSET if level <= logging.DEBUG else max(level, logging.WARNING))
    logging.captureWarnings(True)  # warnings.warn(...) from libraries: the same lines, the same filter
    return handler
