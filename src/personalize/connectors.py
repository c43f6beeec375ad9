"""The connector contract: what a connector plugin declares and implements.

A connector is a class, returned by a plugin's ``register_connectors`` hook, that
knows one outside system (a shop, a CRM, an email provider, files). It declares:

- ``name``, ``title``, ``kind`` (``shop``, ``crm``, ``email`` or ``any``), ``version``
  and the provider ``api_version`` it pins;
- ``settings``: the fields an admin fills in (the admin pages and the CLI build
  their forms from them; ``secret`` fields are encrypted at rest and never shown);
- ``streams`` it can pull, each incremental: ``pull(stream, state)`` yields records
  and :class:`~personalize.records.Checkpoint` states;
- ``push_targets`` it can write segment membership to: ``push(target, changes)``
  returns one :class:`~personalize.records.PushResult` per change;
- optionally webhooks: ``verify_webhook`` and ``parse_webhook``.

Connectors get everything they need through :class:`ConnectorContext` (settings,
the shared HTTP client, the sync's start time), so they never touch the database.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from .records import PushResult, SegmentChange

if TYPE_CHECKING:
    from .sync.http import HttpClient

KINDS = ("shop", "crm", "email", "any")
ENTITIES = ("contact", "product", "order", "engagement")
FIELD_TYPES = ("string", "integer", "boolean", "url", "path", "choice")


# --- Errors a connector raises (the shared HTTP layer raises them for HTTP answers) ---


class ConnectorError(Exception):
    """Base of every error a connector reports; the message is shown to the admin."""


class AuthError(ConnectorError):
    """Credentials rejected or missing a permission: the run stops until an admin fixes it."""


class ConfigError(ConnectorError):
    """Settings that cannot work (a wrong store name, data centre, list id…): stops the run."""


class TransientError(ConnectorError):
    """The remote side is unavailable or throttling beyond the retry budget: try again later."""


class StreamError(ConnectorError):
    """An unexpected answer for one stream: that stream fails, the others go on."""


# --- Declarations ---


@dataclass(frozen=True)
class Setting:
    """One settings field. ``type`` is one of :data:`FIELD_TYPES`; ``choices`` go with ``choice``."""

    name: str
    label: str
    type: str = "string"
    required: bool = True
    secret: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()

    def to_json_schema(self) -> dict[str, Any]:
        kind = {"integer": "integer", "boolean": "boolean"}.get(self.type, "string")
        schema: dict[str, Any] = {"type": kind, "title": self.label, "description": self.help}
        if self.secret:
            schema["writeOnly"] = True
            schema["x-secret"] = True
        if self.type == "url":
            schema["format"] = "uri"
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class Stream:
    """A kind of record a connector pulls.

    :param entity: ``contact``, ``product``, ``order`` or ``engagement``.
    :param primary_key: the remote field that identifies a record (duplicates are removed by it).
    :param cursor_field: the remote field the stream's state follows (e.g. ``updated_at``).
    :param sorted: records come in cursor order, so a checkpoint inside the stream is safe.
    :param lookback_seconds: how far before the stored cursor the next run starts again.
    """

    name: str
    entity: str
    primary_key: str = "id"
    cursor_field: str = ""
    sorted: bool = True
    lookback_seconds: int = 0
    help: str = ""


@dataclass(frozen=True)
class PushTarget:
    """Somewhere segment membership can be written: ``tags``, ``property``, ``file``…"""

    name: str
    help: str = ""


@dataclass
class ConnectorContext:
    """What the sync engine hands a connector for one run.

    :param settings: the connection's settings, secrets decrypted.
    :param http: the shared HTTP client (timeouts, retries, ``Retry-After``, pagination).
    :param started_at: when the sync started (naive UTC); no cursor may move past it.
    :param log: ``log(message)`` adds a line to the run log.
    """

    settings: dict[str, Any]
    http: HttpClient
    started_at: datetime
    log: Any = print
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """The answer of :meth:`Connector.check`: who we are talking to, and which API version."""

    ok: bool
    message: str
    api_version: str = ""


class Connector:
    """Base class of every connector; override the declarations and the operations you support."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    kind: ClassVar[str] = "any"
    version: ClassVar[str] = "0"
    api_version: ClassVar[str] = ""
    settings: ClassVar[tuple[Setting, ...]] = ()
    streams: ClassVar[tuple[Stream, ...]] = ()
    push_targets: ClassVar[tuple[PushTarget, ...]] = ()
    #: how many requests at once the provider tolerates (the engine runs one at a time today)
    max_concurrency: ClassVar[int] = 1
    #: which identity kind the remote contact id is stored under (``shopify_id``…)
    identity_kind: ClassVar[str] = ""
    #: remote contact field -> profile attribute name; a connection may override each
    default_mapping: ClassVar[dict[str, str]] = {}
    #: segment changes per push call
    push_batch_size: ClassVar[int] = 100

    def __init__(self, context: ConnectorContext):
        self.context = context
        self.config = context.settings
        self.http = context.http

    # -- operations --

    def check(self) -> CheckResult:
        """One cheap authenticated call: raise :class:`AuthError` for bad credentials,
        :class:`TransientError` for an outage, return a :class:`CheckResult` otherwise."""
        return CheckResult(True, "nothing to check", self.api_version)

    def pull(self, stream: str, state: dict[str, Any] | None) -> Iterator[Any]:
        """Yield records of ``stream`` changed since ``state``, with :class:`Checkpoint` states between."""
        raise NotImplementedError(f"{self.name} cannot pull {stream!r}")

    def push(self, target: str, changes: list[SegmentChange]) -> list[PushResult]:
        """Apply segment changes in the remote system; idempotent; one result per change."""
        raise NotImplementedError(f"{self.name} cannot push to {target!r}")

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True when a webhook delivery is authentic (for example its HMAC signature checks out)."""
        return False

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> Iterable[Any]:
        """The records a verified webhook delivery carries."""
        return ()

    def webhook_delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        """A delivery's unique id, so a re-delivered webhook is stored once (default: a hash of the body)."""
        return hashlib.sha256(body).hexdigest()

    # -- helpers for subclasses and callers --

    @classmethod
    def stream(cls, name: str) -> Stream:
        for s in cls.streams:
            if s.name == name:
                return s
        raise KeyError(f"{cls.name} has no stream {name!r}; it has {', '.join(s.name for s in cls.streams)}")

    @classmethod
    def setting(cls, name: str) -> Setting | None:
        return next((s for s in cls.settings if s.name == name), None)

    @classmethod
    def settings_schema(cls) -> dict[str, Any]:
        """The settings as a JSON Schema object (secrets marked ``writeOnly``/``x-secret``)."""
        return {
            "type": "object",
            "title": cls.title or cls.name,
            "properties": {s.name: s.to_json_schema() for s in cls.settings},
            "required": [s.name for s in cls.settings if s.required],
        }

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name, "title": cls.title, "kind": cls.kind, "version": cls.version,
            "api_version": cls.api_version, "streams": [s.name for s in cls.streams],
            "push_targets": [t.name for t in cls.push_targets], "settings": cls.settings_schema(),
        }


def validate_connector_class(cls: type) -> list[str]:
    """Problems with a connector class's declarations (empty when it is well formed)."""
    problems = []
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        return [f"{cls!r} is not a subclass of personalize.connectors.Connector"]
    if not cls.name or not cls.name.replace("_", "").replace("-", "").isalnum():
        problems.append(f"{cls.__name__}.name must be a short identifier, got {cls.name!r}")
    if cls.kind not in KINDS:
        problems.append(f"{cls.name}: kind must be one of {', '.join(KINDS)}")
    for s in cls.settings:
        if s.type not in FIELD_TYPES:
            problems.append(f"{cls.name}: setting {s.name} has unknown type {s.type!r}")
    for st in cls.streams:
        if st.entity not in ENTITIES:
            problems.append(f"{cls.name}: stream {st.name} has unknown entity {st.entity!r}")
    if len({st.name for st in cls.streams}) != len(cls.streams):
        problems.append(f"{cls.name}: stream names must be unique")
    return problems


def hmac_sha256_matches(secret: str | bytes, body: bytes, signature: str, encoding: str = "base64") -> bool:
    """Constant-time check of an HMAC-SHA256 webhook signature (``base64`` or ``hex``)."""
    import base64

    if not secret or not signature:
        return False
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, body, hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode() if encoding == "base64" else digest.hex()
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def parse_time(value: Any) -> datetime | None:
    """A provider's timestamp (ISO-8601 text, ``Z`` or offset, or epoch seconds) as naive UTC.

    ``None`` when the value is empty or unreadable, so a connector can skip or count the record.
    """
    if value in (None, ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC).replace(tzinfo=None)
    try:
        when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


# --- Journey actions a connector offers (the ``register_journey_actions`` hook) ---


@dataclass(frozen=True)
class JourneyAction:
    """Something a journey step can do in a connected system for a batch of people.

    :param connector: the name of the connector whose connections it runs on (``hubspot``).
    :param name: short id, unique for the connector (``set_property``).
    :param title: what the journey builder shows (``Set a contact property``).
    :param run: ``run(connector, params, targets)``: ``connector`` is an instance of the
        connector class built for the site's connection (settings, shared HTTP client),
        ``params`` the step's values for :attr:`params`, ``targets`` at most
        :attr:`batch_size` :class:`~personalize.records.ActionTarget`; returns one
        :class:`~personalize.records.ActionResult` per target. Raising
        :class:`TransientError` retries the whole batch later; :class:`AuthError` or
        :class:`ConfigError` fail it.
    :param params: the fields the builder asks for (as a connector's settings).
    :param channel: the contact-policy channel it counts on when it reaches the person (``email``
        for an action that has the provider send a message: consent, caps and quiet hours
        apply); empty (the default) for one that only changes data in that system (a tag, a
        property), which is not a contact.
    """

    connector: str
    name: str
    title: str
    run: Any
    params: tuple[Setting, ...] = ()
    help: str = ""
    channel: str = ""
    batch_size: int = 100
