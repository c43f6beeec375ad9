"""One validation style for every API input: small field checkers that raise :class:`InvalidInput`.

Errors name the field with its path (``events[3].product_id``) so a developer
knows exactly what to fix.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any


class InvalidInput(ValueError):
    """Input that cannot be accepted. ``field`` is the path of the offending field."""

    def __init__(self, field: str, message: str, code: str = "invalid"):
        self.field, self.code = field, code
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message


_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]+$")
MAP_KEY_MAX = 100  # characters in a name of a flat map (mapping)
MAP_VALUE_MAX = 2000  # characters in one of its string values
_DIGITS = re.compile(r"[0-9]{1,18}")


def whole_number(text: Any) -> int | None:
    """``text`` read as a whole number when it is 1 to 18 ASCII digits; ``None`` otherwise.

    Every number read from a URL, a query or a form goes through this, never ``str.isdigit``:
    ``isdigit`` also says yes to ``"²"`` (which ``int`` refuses: a 500) and to ``"١٢"``, and
    ``int`` refuses more than 4,300 digits.
    """
    return int(text) if isinstance(text, str) and _DIGITS.fullmatch(text) else None


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or ``None`` when it can.

    A NUL fits no database text column (PostgreSQL refuses it outright), and a lone
    UTF-16 surrogate (``"\\ud800"``, which JSON can spell) is not Unicode at all: it
    cannot be encoded as UTF-8, so a driver fails on it when the row is written.
    """
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (it holds a lone surrogate such as \\ud800)"
    return None


def first_unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """``(path, problem)`` of the first string, key or number in ``value`` that cannot be stored
    (see :func:`text_problem`; numbers must be finite), or ``None``.

    Paths read as a developer writes them: ``events[3].properties.colour``.
    """
    if isinstance(value, str):
        problem = text_problem(value)
        return (path, problem) if problem else None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, "must be a finite number (not NaN or Infinity)")
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and (problem := text_problem(k)):
                return (path, f"has a key that {problem.replace('must not contain', 'contains')}")
            found = first_unstorable(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = first_unstorable(v, f"{path}[{i}]")
            if found:
                return found
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a record of the connector contract
        for f in dataclasses.fields(value):
            found = first_unstorable(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)
            if found:
                return found
    return None


def check_storable(value: Any, path: str = "") -> None:
    """Raise :class:`InvalidInput` naming the first value :func:`first_unstorable` finds."""
    found = first_unstorable(value, path)
    if found:
        raise InvalidInput(found[0] or "body", found[1])


def text(obj: dict, key: str, path: str, *, required: bool = False, max_len: int = 200, pattern: re.Pattern | None = None) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{path}{key}", "is required", "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"{path}{key}", f"must be a string, got {type(value).__name__}")
    value = str(value)
    if problem := text_problem(value):
        raise InvalidInput(f"{path}{key}", problem)
    if len(value) > max_len:
        raise InvalidInput(f"{path}{key}", f"is longer than {max_len} characters")
    if pattern is not None and not pattern.match(value):
        raise InvalidInput(f"{path}{key}", "may only contain letters, digits and _ . : -")
    return value


def identifier(obj: dict, key: str, path: str, *, required: bool = False, max_len: int = 64) -> str | None:
    return text(obj, key, path, required=required, max_len=max_len, pattern=_ID_RE)


def number(obj: dict, key: str, path: str, *, required: bool = False, minimum: float | None = None, maximum: float | None = None, exclusive_min: bool = False) -> float | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"{path}{key}", "is required", "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{path}{key}", f"must be a number, got {value!r}"[:120])
    if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
        raise InvalidInput(f"{path}{key}", f"must be {'greater than' if exclusive_min else 'at least'} {minimum:g}")
    if maximum is not None and value > maximum:
        raise InvalidInput(f"{path}{key}", f"must be at most {maximum:g}")
    return float(value)


def integer(obj: dict, key: str, path: str, *, minimum: int = 0, maximum: int = 10**6) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{path}{key}", f"must be a whole number, got {value!r}"[:120])
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{path}{key}", f"must be between {minimum} and {maximum}")
    return value


def mapping(obj: dict, key: str, path: str, *, max_keys: int = 50) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{path}{key}", f"must be an object, got {type(value).__name__}")
    if len(value) > max_keys:
        raise InvalidInput(f"{path}{key}", f"has more than {max_keys} keys")
    for k, v in value.items():
        if len(k) > MAP_KEY_MAX:
            raise InvalidInput(f"{path}{key}", f"has a key longer than {MAP_KEY_MAX} characters")
        if isinstance(v, dict | list):
            raise InvalidInput(f"{path}{key}.{k}", "must be a string, number, boolean or null")
        if isinstance(v, str) and len(v) > MAP_VALUE_MAX:
            raise InvalidInput(f"{path}{key}.{k}", f"is longer than {MAP_VALUE_MAX} characters")
    check_storable(value, f"{path}{key}")
    return dict(value)


def only_known(obj: dict, known: set[str], path: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise InvalidInput(f"{path}{unknown[0]}", f"is not a known field (known: {', '.join(sorted(known))})", "unknown_field")


def without_non_finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON's ``null``).

    JSON has no spelling for them, and Python writes ``NaN``/``Infinity``, which every
    strict parser refuses; data stored before they were refused at the door, or given by a
    plugin, must still come out as valid JSON.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: without_non_finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_non_finite(v) for v in value]
    return value


def json_text(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that always writes valid JSON (see :func:`without_non_finite`)."""
    import json

    kwargs["allow_nan"] = False
    try:
        return json.dumps(value, **kwargs)
    except ValueError:
        return json.dumps(without_non_finite(value), **kwargs)
