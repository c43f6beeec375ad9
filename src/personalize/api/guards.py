"""Input no endpoint can use, refused before any endpoint sees it (found by tests/security/test_fuzz.py).

* A NUL character (``\\u0000``) in the path, a query parameter or a JSON body: no
  database text column can hold one, and PostgreSQL refuses it outright, so a
  lookup or a write with it would fail inside the database. ``POST /events`` is
  left to its per-event validation, which drops only the event that carries it,
  and a webhook's body is its sender's, kept as it came.
* Whatever still reaches the database as a value it cannot take (a number out of
  a column's range, say) is answered 400 rather than 500, and logged.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import request
from sqlalchemy.exc import DataError

from . import bp
from .errors import ApiError, error_response

log = logging.getLogger(__name__)

# \u0000 as a JSON escape: preceded by an even number of backslashes (an odd one would escape the backslash itself)
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)
BODY_LEFT_ALONE = ("/api/v1/events", "/api/v1/webhooks/")


@bp.before_request
def refuse_nul_characters():
    if "\x00" in request.path:
        raise ApiError(400, "invalid", "the address must not contain NUL (%00) characters", "path")
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise ApiError(400, "invalid", "must not contain NUL (%00) characters", name.replace("\x00", "")[:100] or "query")
    if request.path.startswith(BODY_LEFT_ALONE) or not request.content_length:
        return
    raw = request.get_data(cache=True)
    if _JSON_NUL.search(raw):
        try:
            where = _first_nul(json.loads(raw), "")
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return  # not JSON: the endpoint says so
        if where is not None:
            raise ApiError(400, "invalid", "must not contain NUL (\\u0000) characters", where[:200] or "body")


def _first_nul(value: Any, path: str) -> str | None:
    """The path (``products[0].id``) of the first key or string in ``value`` that holds a NUL."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, dict):
        items = ((f"{path}.{k}" if path else str(k), v if "\x00" not in k else "\x00") for k, v in value.items())
    else:
        return None
    for where, v in items:
        found = _first_nul(v, where)
        if found is not None:
            return found.replace("\x00", "")
    return None


@bp.errorhandler(DataError)
def value_the_database_refused(exc: DataError):
    log.warning("a request value the database refused on %s %s: %s", request.method, request.path, getattr(exc, "orig", exc))
    return error_response(400, "invalid", "a value in the request is out of range or cannot be stored")
