"""The connector contract: what a connector plugin declares and implements.

A connector is a class, returned by a plugin's ``register_connectors`` hook, that
knows one outside system (a shop, a CRM, an email provider, files). It declares:

- ``name``, ``title``, ``kind`` (``shop``, ``crm``, ``email`` or ``any``), ``version``
  and the provider ``api_version`` it pins;
- ``settings``: the fields an admin fills in (the admin pages and the CLI build
  their forms from them; ``secret`` fields are encrypted at rest and never shown;
  ``url`` fields and fields marked ``endpoint`` say where requests go, and changing
  one clears the stored secrets; ``path`` fields name a folder inside the site's
  files root, see :class:`SiteFolder`);
- ``allowed_hosts``: the API hosts its requests may go to (``*.myshopify.com``);
  the shared HTTP client refuses every other host, and every private, loopback or
  metadata address, unless the server operator trusts it;
- ``streams`` it can pull, each incremental: ``pull(stream, state)`` yields records
  and :class:`~personalize.records.Checkpoint` states;
- ``push_targets`` it can write segment membership to: ``push(target, changes)``
  returns one :class:`~personalize.records.PushResult` per change;
- optionally recommendations: ``recommendation_slots`` (how many per person it can write),
  a ``recommendations`` setting (:func:`recommendations_setting`: how many a connection
  pushes, 0 for none) and ``push_recommendations(lists)``, which gets each person's
  :class:`~personalize.records.ContactRecommendations` after every sync;
- optionally webhooks: ``verify_webhook`` and ``parse_webhook``.

Connectors get everything they need through :class:`ConnectorContext` (settings,
the shared HTTP client, the sync's start time, the site's files root), so they never
touch the database. CSV files a connector writes go through :func:`csv_row`, so no
cell can run as a spreadsheet formula.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from .recordtypes import ContactRecommendations, PushResult, SegmentChange

KINDS = ("shop", "crm", "email", "any")
_HOST_PATTERN = re.compile(r"(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}")
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


class HttpStatusError(StreamError):
    """An answer outside 2xx that retrying will not fix; ``status`` says what came, ``body`` keeps the
    answer (credentials hidden) for the server log: it is never part of the message."""

    def __init__(self, message: str, status: int, body: str = ""):
        super().__init__(message)
        self.status, self.body = status, body


class HttpAuthError(AuthError):
    """401 or 403; ``status`` and ``body`` as on :class:`HttpStatusError`."""

    def __init__(self, message: str, status: int, body: str = ""):
        super().__init__(message)
        self.status, self.body = status, body


class RetryLater(Exception):
    """Raised by a ``check`` function for a 2xx that is really "slow down" (e.g. a throttled GraphQL call)."""

    def __init__(self, reason: str, after: float | None = None):
        super().__init__(reason)
        self.after = after


# --- Declarations ---


@dataclass(frozen=True)
class Setting:
    """One settings field. ``type`` is one of :data:`FIELD_TYPES`; ``choices`` go with ``choice``.

    :param endpoint: the value decides where requests (and the secrets with them) go, like a shop
        name the API host is built from. ``url`` settings always count. Saving a new value clears
        the connection's stored secrets unless new ones come in the same save.
    :param pattern: a regular expression the whole value must match (checked when the connection is
        saved; the message quotes ``help``).
    ``type="path"`` is a folder inside the site's files root on the server, relative to it
    (:meth:`ConnectorContext.folder` opens it); absolute paths, ``~`` and ``..`` are refused.
    """

    name: str
    label: str
    type: str = "string"
    required: bool = True
    secret: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()
    endpoint: bool = False
    pattern: str = ""

    @property
    def addresses_remote(self) -> bool:
        """True when the value says where requests go (an ``endpoint`` or a ``url`` setting)."""
        return self.endpoint or self.type == "url"

    def to_json_schema(self) -> dict[str, Any]:
        kind = {"integer": "integer", "boolean": "boolean"}.get(self.type, "string")
        schema: dict[str, Any] = {"type": kind, "title": self.label, "description": self.help}
        if self.secret:
            schema["writeOnly"] = True
            schema["x-secret"] = True
        if self.addresses_remote:
            schema["x-endpoint"] = True
        if self.pattern:
            schema["pattern"] = f"^(?:{self.pattern})$"
        if self.type == "path":
            schema["x-path"] = "relative to the site's files root"
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
    :param http: the shared HTTP client (timeouts, retries, ``Retry-After``, pagination, and the
        outbound policy: only the connector's ``allowed_hosts``, never an internal address).
    :param started_at: when the sync started (naive UTC); no cursor may move past it.
    :param log: ``log(message)`` adds a line to the run log.
    :param files_root: the site's own folder on the server (``FILES_ROOT/<site id>``); ``path``
        settings are relative to it. None when the server gives this run no folder.
    """

    settings: dict[str, Any]
    http: Any  # a personalize.sync.http.HttpClient: the contract sits below the client, so it is not imported here
    started_at: datetime
    log: Any = print
    extra: dict[str, Any] = field(default_factory=dict)
    files_root: Path | None = None

    def folder(self, value: Any) -> SiteFolder:
        """The folder a ``path`` setting names, inside :attr:`files_root`; raises :class:`ConfigError`
        for a path that leaves it (absolute, ``~``, ``..``) or when there is no files root."""
        if self.files_root is None:
            raise ConfigError("this server gives connectors no files folder (FILES_ROOT)")
        try:
            return SiteFolder(self.files_root, value)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


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
    #: segment changes per push call (and people per ``push_recommendations`` call)
    push_batch_size: ClassVar[int] = 100
    #: how many recommendations per person :meth:`push_recommendations` can write (0: none); a
    #: connection chooses how many it pushes in its ``recommendations`` setting
    recommendation_slots: ClassVar[int] = 0
    #: the hosts requests may go to: names (``api.hubapi.com``) or one-label wildcards
    #: (``*.myshopify.com``), reached over https on port 443. Empty: any public host (for a
    #: connector whose address is the admin's to choose, like a webhook). Private, loopback and
    #: metadata addresses are refused either way, unless the operator trusts them
    #: (``OUTBOUND_ALLOWED_HOSTS``).
    allowed_hosts: ClassVar[tuple[str, ...]] = ()

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

    def push_recommendations(self, lists: list[ContactRecommendations]) -> list[PushResult]:
        """Write each person's current top N into the remote system (merge fields, contact
        properties…), replacing what the last push wrote; idempotent; one result per person
        (``segment="recommendations"``). Called after each sync of a connection whose
        ``recommendations`` setting is above 0, for the people whose list changed."""
        raise NotImplementedError(f"{self.name} cannot push recommendations")

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
            "allowed_hosts": list(cls.allowed_hosts),
        }


RECOMMENDATIONS_SETTING = "recommendations"


def recommendations_setting(most: int, help: str = "") -> Setting:
    """The setting a connector with ``recommendation_slots`` declares: how many of each person's
    recommendations a connection pushes after every sync (0, the default: none)."""
    return Setting(RECOMMENDATIONS_SETTING, "Recommendations per person", "integer", required=False, default=0,
                   help=help or f"How many of each person's recommendations to write after every sync, 0 to {most} (0: none).")


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
        if s.pattern:
            try:
                re.compile(s.pattern)
            except re.error as exc:
                problems.append(f"{cls.name}: setting {s.name} has a bad pattern: {exc}")
    if isinstance(cls.allowed_hosts, str) or not all(isinstance(h, str) and _HOST_PATTERN.fullmatch(h) for h in cls.allowed_hosts):
        problems.append(f"{cls.name}: allowed_hosts must be a tuple of host names or *.domain patterns, got {cls.allowed_hosts!r}")
    if cls.recommendation_slots:
        found = next((x for x in cls.settings if x.name == RECOMMENDATIONS_SETTING), None)
        if found is None or found.type != "integer":
            problems.append(f"{cls.name}: recommendation_slots needs an integer setting named {RECOMMENDATIONS_SETTING!r} (recommendations_setting())")
        if cls.push_recommendations is Connector.push_recommendations:
            problems.append(f"{cls.name}: recommendation_slots needs push_recommendations()")
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


# --- Files: a site's folder on the server, reached without leaving it ---

#: the longest relative path a ``path`` setting may hold
MAX_PATH_LENGTH = 1024


def relative_folder(value: Any) -> PurePosixPath:
    """A ``path`` setting's value as a path relative to the site's files root.

    Refused with :class:`ValueError` (the message says what to write instead): absolute paths,
    ``~``, ``..``, backslashes, control characters. Empty, ``.`` and ``./`` mean the root itself.
    """
    text = "" if value is None else str(value).strip()
    hint = "give a folder inside this site's files folder, such as exports or exports/daily"
    if len(text) > MAX_PATH_LENGTH:
        raise ValueError(f"the path is longer than {MAX_PATH_LENGTH} characters")
    if text.startswith("/"):
        raise ValueError(f"{text} is an absolute path; {hint}")
    if text.startswith("~"):
        raise ValueError(f"{text} starts with ~; {hint}")
    if "\\" in text or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError(f"{text!r} holds a backslash or a control character; {hint}")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{text} goes up with ..; {hint}")
    if any(len(part) > 255 for part in parts):
        raise ValueError("a folder name is longer than 255 characters")
    return PurePosixPath(*parts)


def _file_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise ValueError(f"{name!r} is not a file name")
    return name


class SiteFolder:
    """A folder inside a site's files root, read and written without following symbolic links.

    The root itself (``FILES_ROOT/<site id>``) is the operator's: it may be a symbolic link, to a
    mounted drive for instance. Below it nothing is followed: each folder is opened with
    ``O_NOFOLLOW`` relative to the one before (so a link swapped in meanwhile is not followed
    either), files are opened with ``O_NOFOLLOW`` and must be regular files, and new files are
    written to a temporary name and renamed into place. Whatever a link points at, inside or
    outside, is refused with :class:`ConfigError` naming the link.

    :param root: the site's files root.
    :param relative: the folder's path below it (a ``path`` setting's value, see :func:`relative_folder`).
    """

    def __init__(self, root: str | os.PathLike[str], relative: Any = ""):
        self.root = Path(root)
        self.relative = relative_folder(relative)

    @property
    def path(self) -> Path:
        """The folder's path on the server (for messages: open files through this object)."""
        return self.root.joinpath(*self.relative.parts)

    def __str__(self) -> str:
        return str(self.path)

    def _open(self, create: bool = False) -> int:
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            if not create:
                raise ConfigError(f"{self.path} does not exist yet; create it and put the files there") from None
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except NotADirectoryError:
            raise ConfigError(f"the site's files root {self.root} is not a folder") from None
        here = self.root
        for part in self.relative.parts:
            here = here / part
            try:
                try:
                    inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise ConfigError(f"{self.path} does not exist yet; create it and put the files there") from None
                    os.mkdir(part, 0o750, dir_fd=fd)
                    inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError:
                    raise ConfigError(f"{here} is a symbolic link or not a folder; only real folders inside {self.root} are used") from None
            finally:
                os.close(fd)
            fd = inner
        return fd

    def check(self) -> None:
        """Raise :class:`ConfigError` saying why the folder cannot be used (missing, a link, not a folder)."""
        os.close(self._open())

    def exists(self) -> bool:
        """True when the folder exists (as real folders all the way down from the root)."""
        try:
            os.close(self._open())
        except ConfigError:
            return False
        return True

    def create(self) -> None:
        """Create the folder (and the folders above it, below the root) when missing."""
        os.close(self._open(create=True))

    def _kind(self, fd: int, name: str) -> str:
        try:
            mode = os.stat(_file_name(name), dir_fd=fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return "missing"
        if stat.S_ISLNK(mode):
            return "link"
        return "file" if stat.S_ISREG(mode) else "other"

    def has_file(self, name: str) -> bool:
        """True when ``name`` is a regular file here; a symbolic link (or a folder, a pipe…) of that name
        raises :class:`ConfigError`, so it is never mistaken for a missing file."""
        fd = self._open()
        try:
            kind = self._kind(fd, name)
        finally:
            os.close(fd)
        if kind in ("link", "other"):
            what = "a symbolic link" if kind == "link" else "not a regular file"
            raise ConfigError(f"{self.path / name} is {what}; only regular files inside {self.root} are read")
        return kind == "file"

    def files(self) -> list[str]:
        """The names of the regular files here, sorted (links and folders are left out)."""
        fd = self._open()
        try:
            return sorted(name for name in os.listdir(fd) if self._kind(fd, name) == "file")
        finally:
            os.close(fd)

    def read_bytes(self, name: str) -> bytes:
        """The content of the regular file ``name`` here (not through a symbolic link)."""
        fd = self._open()
        try:
            try:
                file_fd = os.open(_file_name(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
            except FileNotFoundError:
                raise ConfigError(f"{self.path / name} does not exist") from None
            except OSError:
                raise ConfigError(f"{self.path / name} is a symbolic link or cannot be opened; only regular files inside {self.root} are read") from None
        finally:
            os.close(fd)
        with os.fdopen(file_fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ConfigError(f"{self.path / name} is not a regular file")
            return fh.read()

    def read_text(self, name: str, encoding: str = "utf-8-sig") -> str:
        return self.read_bytes(name).decode(encoding)

    def write_atomic(self, name: str, data: str | bytes, mode: int = 0o640) -> None:
        """Replace the file ``name`` here by ``data`` at once: written to a new temporary file, then renamed
        (a symbolic link of that name is replaced, never followed). The folder is created when missing."""
        name = _file_name(name)
        payload = data.encode("utf-8") if isinstance(data, str) else data
        fd = self._open(create=True)
        try:
            temporary = f".{name}.{secrets.token_hex(6)}.tmp"
            file_fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=fd)
            try:
                with os.fdopen(file_fd, "wb") as fh:
                    fh.write(payload)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary, dir_fd=fd)
                raise
        finally:
            os.close(fd)


# --- CSV: cells a spreadsheet would run as formulas ---

#: first characters that make Excel, LibreOffice or Google Sheets read a cell as a formula
#: (with the full-width forms some of them accept, and tab / carriage return / line feed)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """A value safe to write into a CSV cell: text that a spreadsheet would run as a formula
    (``=HYPERLINK(…)``, ``@SUM(…)``, ``+…``, ``-…``, a leading tab or carriage return) gets a leading
    ``'``, which spreadsheets show as text. Plain numbers (``-12.5``) and non-text values are kept."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_row(row: Mapping[str, Any] | Iterable[Any]) -> Any:
    """A row for ``csv.DictWriter`` (a mapping) or ``csv.writer`` (a sequence), every cell through :func:`csv_cell`."""
    if isinstance(row, Mapping):
        return {key: csv_cell(value) for key, value in row.items()}
    return [csv_cell(value) for value in row]


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
