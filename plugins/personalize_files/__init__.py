"""CSV / JSON files: the connector every shop can use.

Files live on the server, in the site's own files folder (``FILES_ROOT/<site id>``,
by default ``files/<site id>`` in the instance folder). Put them in a folder there
and connect it by its path relative to the site's files folder::

    personalize connect "My shop" files --set folder=exports

Nothing outside the site's files folder is read or written: absolute paths, ``~``
and ``..`` are refused, and symbolic links below it are not followed (the contract's
:class:`~personalize.connectors.SiteFolder` does every file access).

Each stream reads one file of the folder, the first that exists of
``<stream>.csv``, ``<stream>.jsonl`` (one JSON object a line) and ``<stream>.json``
(an array of objects):

- ``contacts``: ``email``, ``id`` (your customer id), ``updated_at``, any other column
  becomes a profile attribute of the same name;
- ``products``: ``id``, ``title``, ``url``, ``image``, ``price``, ``currency``,
  ``category``, ``description``, ``in_stock``;
- ``orders``: one row per order line, ``order_id``, ``occurred_at``, ``customer_id``,
  ``email``, ``product_id``, ``quantity``, ``price``, ``currency``, ``title``
  (in JSON, an order may carry its ``lines`` as a list instead);
- ``engagement``: ``id``, ``type``, ``occurred_at``, ``email`` or ``customer_id``, and
  any other column as a property.

Files may grow (rows appended at the end): a run reads only the rows after those
it read before. When rows before that point change, the file is read again from
the top (storing is idempotent, so that is safe).

Segment membership is pushed to ``segment_members.csv`` in the folder (target
``file``): one row per profile and segment, rewritten atomically; a cell a
spreadsheet would run as a formula (``=…``, ``+…``, ``-…``, ``@…``) is written with
a leading ``'``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

from personalize import hookimpl
from personalize.records import (
    Checkpoint,
    CheckResult,
    ConfigError,
    Connector,
    ContactRecord,
    EngagementRecord,
    OrderLine,
    OrderRecord,
    ProductRecord,
    PushResult,
    PushTarget,
    SegmentChange,
    Setting,
    SiteFolder,
    SkippedRecord,
    Stream,
    csv_row,
    parse_time,
)

__version__ = "1.0.0"

EXTENSIONS = (".csv", ".jsonl", ".json")
CHECKPOINT_EVERY = 200
STATE_VERSION = 1
MEMBERS_FILE = "segment_members.csv"
MEMBERS_COLUMNS = ["segment", "profile_id", "email", "customer_id"]


def _number(value: Any) -> float | None:
    if value in (None, ""):
        return None
    return float(value)


def _bool(value: Any, default: bool = True) -> bool:
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "y", "on")


class FilesConnector(Connector):
    name = "files"
    title = "CSV / JSON files"
    kind = "any"
    version = __version__
    api_version = "files-1"
    identity_kind = "customer_id"
    default_mapping = {"*": "*", "id": None, "email": None, "updated_at": None}
    settings = (
        Setting("folder", "Folder", type="path", required=False, default="",
                help="The folder holding contacts.csv, products.csv, orders.csv, engagement.csv (or .jsonl / .json), "
                     "relative to this site's files folder on the server, e.g. exports."),
    )
    streams = (
        Stream("contacts", "contact", primary_key="email", help="contacts.csv / .jsonl / .json"),
        Stream("products", "product", primary_key="id", help="products.csv / .jsonl / .json"),
        Stream("orders", "order", primary_key="order_id", help="orders.csv / .jsonl / .json, one row per order line"),
        Stream("engagement", "engagement", primary_key="id", help="engagement.csv / .jsonl / .json"),
    )
    push_targets = (PushTarget("file", help=f"Rewrites {MEMBERS_FILE} in the folder: segment, profile_id, email, customer_id."),)

    @property
    def folder(self) -> SiteFolder:
        """The connection's folder inside the site's files folder (ConfigError for one outside it)."""
        return self.context.folder(self.config.get("folder") or "")

    def check(self) -> CheckResult:
        folder = self.folder
        folder.check()  # missing, a symbolic link, not a folder: ConfigError saying which
        found = [name for name in folder.files() if name.endswith(EXTENSIONS)]
        return CheckResult(True, f"{folder}: {', '.join(found) or 'no data files yet'}", self.api_version)

    def file_for(self, stream: str) -> str | None:
        """The name of the stream's file in the folder, or None; ConfigError when the folder is missing."""
        folder = self.folder
        folder.check()
        for ext in EXTENSIONS:
            if folder.has_file(f"{stream}{ext}"):
                return f"{stream}{ext}"
        return None

    # -- pulling --

    def pull(self, stream: str, state: dict[str, Any] | None) -> Iterator[Any]:
        name = self.file_for(stream)
        if name is None:
            return
        rows = list(read_rows(name, self.folder.read_text(name)))
        state = state or {}
        start = 0
        digest = hashlib.sha256()
        done = int(state.get("rows", 0)) if state.get("file") == name else 0
        if 0 < done <= len(rows):
            for raw in rows[:done]:
                digest.update(_canonical(raw))
            if digest.hexdigest() == state.get("digest"):
                start = done  # the rows read before are unchanged: go on after them
            else:
                digest = hashlib.sha256()
        if stream == "orders":
            yield from self._pull_orders(name, rows, start, digest)
            return
        convert = getattr(self, f"_{stream}")
        for index in range(start, len(rows)):
            raw = rows[index]
            yield from convert(raw, index + 2 if name.endswith(".csv") else index + 1)
            digest.update(_canonical(raw))
            if (index + 1) % CHECKPOINT_EVERY == 0 or index + 1 == len(rows):
                yield Checkpoint(self._state(name, index + 1, digest))

    def _state(self, name: str, rows: int, digest) -> dict[str, Any]:
        return {"v": STATE_VERSION, "file": name, "rows": rows, "digest": digest.hexdigest()}

    def _contacts(self, raw: dict[str, Any], line: int) -> Iterator[Any]:
        email = str(raw.get("email") or "").strip()
        external_id = str(raw.get("id") or raw.get("customer_id") or "").strip()
        if not email and not external_id:
            yield SkippedRecord("no email and no id", f"line {line}")
            return
        attrs = {k: v for k, v in raw.items() if k not in ("customer_id",) and v not in (None, "")}
        yield ContactRecord(external_id=external_id, email=email, attributes=attrs, updated_at=parse_time(raw.get("updated_at")))

    def _products(self, raw: dict[str, Any], line: int) -> Iterator[Any]:
        try:
            attributes = raw.get("attributes") if isinstance(raw.get("attributes"), dict) else {}
            yield ProductRecord(
                id=str(raw["id"]).strip(), title=str(raw["title"]).strip(), url=str(raw.get("url") or ""),
                image=str(raw.get("image") or ""), price=_number(raw.get("price")), currency=str(raw.get("currency") or ""),
                category=str(raw.get("category") or ""), description=str(raw.get("description") or ""),
                in_stock=_bool(raw.get("in_stock")), attributes=attributes,
            )
        except (KeyError, ValueError, TypeError) as exc:
            yield SkippedRecord(f"bad product: {type(exc).__name__} {exc}", f"line {line}")

    def _engagement(self, raw: dict[str, Any], line: int) -> Iterator[Any]:
        when = parse_time(raw.get("occurred_at"))
        if not raw.get("id") or not raw.get("type") or when is None:
            yield SkippedRecord("engagement needs id, type and occurred_at", f"line {line}")
            return
        props = {k: v for k, v in raw.items() if k not in ("id", "type", "occurred_at", "email", "customer_id") and v not in (None, "")}
        yield EngagementRecord(id=str(raw["id"]), type=str(raw["type"]), occurred_at=when, email=str(raw.get("email") or ""),
                               external_id=str(raw.get("customer_id") or ""), properties=props)

    def _pull_orders(self, name: str, rows: list[dict[str, Any]], start: int, digest) -> Iterator[Any]:
        index = start
        since_checkpoint = 0
        while index < len(rows):
            first = rows[index]
            order_id = str(first.get("order_id") or first.get("id") or "").strip()
            group = [first]
            if "lines" not in first:  # CSV style: consecutive rows of one order
                while index + len(group) < len(rows) and str(rows[index + len(group)].get("order_id") or "").strip() == order_id and order_id:
                    group.append(rows[index + len(group)])
            record = self._order(order_id, group)
            yield record if record is not None else SkippedRecord("order needs order_id, occurred_at and valid lines", f"order {order_id or '?'}")
            for raw in group:
                digest.update(_canonical(raw))
            index += len(group)
            since_checkpoint += 1
            if since_checkpoint >= CHECKPOINT_EVERY or index == len(rows):
                since_checkpoint = 0
                yield Checkpoint(self._state(name, index, digest))

    def _order(self, order_id: str, group: list[dict[str, Any]]) -> OrderRecord | None:
        first = group[0]
        when = parse_time(first.get("occurred_at"))
        if not order_id or when is None:
            return None
        raw_lines = first.get("lines", group)
        try:
            lines = tuple(
                OrderLine(product_id=str(r["product_id"]).strip(), quantity=_number(r.get("quantity")) or 1.0,
                          price=_number(r.get("price")), title=str(r.get("title") or ""))
                for r in raw_lines
            )
        except (KeyError, ValueError, TypeError):
            return None
        if not lines or any(not line.product_id for line in lines):
            return None
        return OrderRecord(id=order_id, occurred_at=when, lines=lines, customer_id=str(first.get("customer_id") or ""),
                           email=str(first.get("email") or ""), currency=str(first.get("currency") or ""),
                           country=str(first.get("country") or ""))

    # -- pushing --

    def push(self, target: str, changes: list[SegmentChange]) -> list[PushResult]:
        folder = self.folder
        folder.check()
        members: dict[tuple[str, str], dict[str, str]] = {}
        if folder.has_file(MEMBERS_FILE):
            for row in csv.DictReader(io.StringIO(folder.read_text(MEMBERS_FILE), newline="")):
                members[(row["segment"], row["profile_id"])] = row
        for change in changes:
            key = (change.segment, str(change.profile_id))
            if change.added:
                members[key] = {"segment": change.segment, "profile_id": str(change.profile_id), "email": change.email,
                                "customer_id": change.identities.get("customer_id", "")}
            else:
                members.pop(key, None)
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, fieldnames=MEMBERS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for key in sorted(members):
            writer.writerow(csv_row(members[key]))  # no cell may run as a formula in a spreadsheet
        folder.write_atomic(MEMBERS_FILE, out.getvalue())
        return [PushResult(c.profile_id, c.segment, "ok") for c in changes]


def read_rows(name: str, text: str) -> Iterator[dict[str, Any]]:
    """The rows of a .csv, .jsonl or .json file's ``text`` as dicts (a line that is not an object is an empty row)."""
    if name.endswith(".csv"):
        yield from csv.DictReader(io.StringIO(text, newline=""))
    elif name.endswith(".jsonl"):
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            yield value if isinstance(value, dict) else {}
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{name} is not valid JSON: {exc}") from None
        if not isinstance(data, list):
            raise ConfigError(f"{name} must hold a JSON array of objects")
        for value in data:
            yield value if isinstance(value, dict) else {}


def _canonical(raw: dict[str, Any]) -> bytes:
    return json.dumps(raw, sort_keys=True, default=str).encode() + b"\n"


@hookimpl
def register_connectors():
    return [FilesConnector]
