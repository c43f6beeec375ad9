"""One validation style for every API input: small field checkers that raise :class:`InvalidInput`.

Errors name the field with its path (``events[3].product_id``) so a developer
knows exactly what to fix.
"""

from __future__ import annotations

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


def text(obj: dict, key: str, path: str, *, required: bool = False, max_len: int = 200, pattern: re.Pattern | None = None) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{path}{key}", "is required", "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"{path}{key}", f"must be a string, got {type(value).__name__}")
    value = str(value)
    if "\x00" in value:  # no database text column can hold it (PostgreSQL refuses it outright)
        raise InvalidInput(f"{path}{key}", "must not contain NUL (\\u0000) characters")
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
        if len(k) > 100:
            raise InvalidInput(f"{path}{key}", "has a key longer than 100 characters")
        if isinstance(v, dict | list):
            raise InvalidInput(f"{path}{key}.{k}", "must be a string, number, boolean or null")
        if isinstance(v, str) and len(v) > 2000:
            raise InvalidInput(f"{path}{key}.{k}", "is longer than 2000 characters")
    return dict(value)


def only_known(obj: dict, known: set[str], path: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise InvalidInput(f"{path}{unknown[0]}", f"is not a known field (known: {', '.join(sorted(known))})", "unknown_field")
