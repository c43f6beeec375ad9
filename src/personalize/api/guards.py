"""Input no endpoint can use, refused before any endpoint sees it (found by tests/security/test_fuzz.py).

* A NUL character (``\\u0000``) in the path or a query parameter: no database text
  column can hold one, and PostgreSQL refuses it outright, so a lookup with it would
  fail inside the database. JSON bodies are checked where they are read
  (:func:`personalize.api.events.json_body`): a NUL or a lone surrogate anywhere in
  one is refused by its path, and ``POST /events`` drops only the event that carries it.
* Whatever still reaches the database as a value it cannot take (a number out of
  a column's range, say) is answered 400 rather than 500, and logged.
"""

from __future__ import annotations

import logging

from flask import request
from sqlalchemy.exc import DataError

from ..validation import text_problem
from . import bp
from .errors import ApiError, error_response

log = logging.getLogger(__name__)


@bp.before_request
def refuse_unstorable_text():
    if problem := text_problem(request.path):
        raise ApiError(400, "invalid", f"the address {problem}", "path")
    for name, value in request.args.items(multi=True):
        if (problem := text_problem(name) or text_problem(value)) is not None:
            raise ApiError(400, "invalid", problem, name.replace("\x00", "")[:100] or "query")


@bp.errorhandler(DataError)
def value_the_database_refused(exc: DataError):
    log.warning("a request value the database refused on %s %s: %s", request.method, request.path, getattr(exc, "orig", exc))
    return error_response(400, "invalid", "a value in the request is out of range or cannot be stored")
