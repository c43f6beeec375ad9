"""Readers for the files shops already have: product CSVs and order histories.

Readers yield :mod:`personalize.records` and raise :class:`ImportFileError`
naming the line of the first row they cannot read, so the CLI can say what to fix.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from .records import OrderLine, OrderRecord, ProductRecord
from .validation import first_unstorable

UCI_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
PRODUCT_COLUMNS = ("id", "title", "url", "image", "price", "currency", "category", "description", "in_stock")


class ImportFileError(ValueError):
    """A file that cannot be imported; the message names the line and what to fix."""

    def __init__(self, path: str | Path, line: int, message: str):
        self.path, self.line = str(path), line
        super().__init__(f"{path}, line {line}: {message}")


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a CSV, transparently gunzipping ``.gz`` files."""
    path = Path(path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _rows(path, reader: csv.DictReader) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` for each row; a line the reader cannot read is an :class:`ImportFileError`."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise ImportFileError(path, reader.line_num + 1, "is not UTF-8 text; save the file as UTF-8 (CSV UTF-8 in a spreadsheet)") from None
        except csv.Error as exc:
            raise ImportFileError(path, reader.line_num, f"cannot be read as CSV ({exc})") from None
        for name, value in row.items():
            if isinstance(value, str) and "\x00" in value:
                raise ImportFileError(path, reader.line_num, f"{name} holds a NUL character")
        yield reader.line_num, row


def _number(path, lineno: int, name: str, text: str | None) -> float | None:
    """The number in a cell (``None`` when empty); anything else, NaN and infinity included, is an error."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise ImportFileError(path, lineno, f"{name} must be a number, got {text[:40]!r}")
    return value


def _storable(path, lineno: int, record):
    found = first_unstorable(record)
    if found:
        raise ImportFileError(path, lineno, f"{found[0]} {found[1]}")
    return record


def _require_columns(path, reader: csv.DictReader, required) -> None:
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportFileError(path, 1, f"missing column(s) {', '.join(missing)}; the header has {', '.join(header) or 'nothing'}")


def read_uci_orders(path: str | Path) -> Iterator[OrderRecord]:
    """Yield one :class:`OrderRecord` per invoice of a UCI "Online Retail" style CSV.

    An optional ``Currency`` column (ISO 4217, such as GBP) gives each order's currency.
    Lines of one invoice must be adjacent (as in the UCI file). Rows with a negative
    or zero quantity (returns, adjustments) are skipped, as are invoices starting
    with ``C`` (cancellations).
    """
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        _require_columns(path, reader, UCI_COLUMNS)
        current: str | None = None
        lines: list[OrderLine] = []
        head: dict | None = None
        for lineno, row in _rows(path, reader):
            invoice = (row["InvoiceNo"] or "").strip()
            if not invoice:
                raise ImportFileError(path, lineno, "InvoiceNo is empty")
            if invoice != current:
                if head is not None and lines:
                    yield _order(head, lines)
                current, lines, head = invoice, [], None
            if invoice.startswith("C"):
                continue
            qty = _number(path, lineno, "Quantity", row["Quantity"])
            price = _number(path, lineno, "UnitPrice", row["UnitPrice"])
            if qty is None:
                raise ImportFileError(path, lineno, "Quantity is empty")
            if qty <= 0:
                continue
            if head is None:
                try:
                    when = datetime.fromisoformat(row["InvoiceDate"].strip())
                except (ValueError, AttributeError):
                    raise ImportFileError(path, lineno, f"InvoiceDate must look like 2011-12-09 12:50:00, got {row['InvoiceDate']!r}") from None
                customer = (row["CustomerID"] or "").strip()
                if customer.endswith(".0"):
                    customer = customer[:-2]
                currency = (row.get("Currency") or "").strip().upper()
                if currency and not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
                    raise ImportFileError(path, lineno, f"Currency must be a three-letter code such as GBP, got {currency[:20]!r}")
                head = {"id": invoice, "when": when, "customer": customer, "country": (row["Country"] or "").strip(),
                        "currency": currency}
            code = (row["StockCode"] or "").strip()
            if not code:
                raise ImportFileError(path, lineno, "StockCode is empty")
            title = (row["Description"] or "").strip()
            lines.append(OrderLine(product_id=code, quantity=qty, price=price, title=title))
        if head is not None and lines:
            yield _order(head, lines)


def _order(head: dict, lines: list[OrderLine]) -> OrderRecord:
    return OrderRecord(
        id=head["id"], occurred_at=head["when"], lines=tuple(lines),
        customer_id=head["customer"], country=head["country"], currency=head["currency"],
    )


def _parse_bool(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("", "1", "true", "yes", "y", "in stock", "instock"):
        return True
    if v in ("0", "false", "no", "n", "out of stock", "outofstock"):
        return False
    return None


def read_products_csv(path: str | Path) -> Iterator[ProductRecord]:
    """Yield products from a CSV with at least ``id`` and ``title`` columns.

    Optional columns: url, image, price, currency, category, description, in_stock;
    any other column is kept as a product attribute.
    """
    for _lineno, record in read_product_lines(path, need_title=True):
        yield record


def product_csv_columns(path: str | Path) -> list[str]:
    """The column names of a product CSV's header."""
    with open_text(path) as fh:
        return [c for c in (csv.DictReader(fh).fieldnames or []) if c]


def read_product_lines(path: str | Path, need_title: bool = False) -> Iterator[tuple[int, ProductRecord]]:
    """``(line number, product)`` for each row of a product CSV with at least an ``id`` column.

    Without a ``title`` column (``need_title`` false) the records' titles are empty: such a file
    updates products that exist (``upsert_products(columns=…)``), e.g. only their links and images.
    A ``title`` column, when there is one, must be filled in.
    """
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        _require_columns(path, reader, ("id", "title") if need_title else ("id",))
        has_title = "title" in (reader.fieldnames or [])
        for lineno, row in _rows(path, reader):
            pid = (row.get("id") or "").strip()
            title = (row.get("title") or "").strip()
            if not pid:
                raise ImportFileError(path, lineno, "id is empty")
            if has_title and not title:
                raise ImportFileError(path, lineno, f"title is empty for product {pid!r}")
            price = _number(path, lineno, "price", row.get("price"))
            stock = _parse_bool(row.get("in_stock") or "")
            if stock is None:
                raise ImportFileError(path, lineno, f"in_stock must be true/false, got {row.get('in_stock')!r}")
            extra = {k: v for k, v in row.items() if k and k not in PRODUCT_COLUMNS and v not in (None, "")}
            yield lineno, _storable(path, lineno, ProductRecord(
                id=pid, title=title, url=(row.get("url") or "").strip(), image=(row.get("image") or "").strip(),
                price=price, currency=(row.get("currency") or "").strip(), category=(row.get("category") or "").strip(),
                description=(row.get("description") or "").strip(), in_stock=stock, attributes=extra,
            ))
