"""``POST /api/v1/events``: a batch of widget events, answered only after they are stored."""

from __future__ import annotations

import json
import logging
import math
import re

from flask import current_app, request

from .. import metrics
from ..batching import store_batched
from ..db import database_unavailable
from ..profiles import validate_event
from ..profiles.events import EVENT
from ..shapes import Anything, List, Obj, Text
from ..validation import InvalidInput, check_storable
from . import bp
from .errors import ApiError
from .widget_keys import widget_site

log = logging.getLogger(__name__)

EVENTS = metrics.counter("personalize_events_total", "Events sent to POST /api/v1/events, by outcome: accepted (stored), "
                         "duplicate (an event id stored before), rejected (invalid).", ["outcome"])
for _outcome in ("accepted", "duplicate", "rejected"):
    EVENTS.add((_outcome,), 0)  # every series exists from the start, so rate() sees the first events


def event_batch(max_events: int) -> Obj:
    """The body of POST /events. Each event is read on its own (one bad event costs only itself);
    the batch's other fields are checked here."""
    return Obj({
        "key": Text(200, description="the public key, when not sent as ?key= or X-Personalize-Key"),
        "events": List(EVENT, min_items=1, max_items=max_events, required=True),
        "sent_at": Anything("when the widget sent the batch (epoch milliseconds); informational, not read"),
    })


BATCH_FIELDS = tuple(event_batch(1).fields)


class _NotJsonNumber(ValueError):
    pass


def _no_constant(name: str):
    raise _NotJsonNumber(f"{name} is not a JSON number; send a finite number or null")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJsonNumber(f"{text[:40]} is too large to store; send a finite number")
    return value


def parse_json(raw: bytes) -> object:
    """JSON as the standard defines it: no ``NaN`` or ``Infinity`` (Python's parser takes them),
    no number too large for a float. Raises :class:`ApiError` 400 otherwise."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except _NotJsonNumber as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}"[:200], "body") from None
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: JSONDecodeError, and integers of over 4,300 digits
        raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc})"[:200], "body") from None
    except RecursionError:  # thousands of nested brackets: no endpoint takes anything that deep
        raise ApiError(400, "invalid_json", "the body nests arrays or objects too deeply", "body") from None


# A NUL or a UTF-16 surrogate can only reach a parsed string through a \u escape (raw ones are not
# valid JSON or not valid UTF-8): a body without such an escape needs no walk.
_RISKY_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def json_body(check_text: bool = True) -> dict:
    """The request's JSON object, from ``application/json`` or ``text/plain`` (sendBeacon).

    Unless ``check_text`` is false (the caller checks each part itself), a string or key
    anywhere in it that no database can store is refused, naming its path.
    """
    ctype = (request.mimetype or "").lower()
    if ctype not in ("application/json", "text/plain", ""):
        raise ApiError(415, "unsupported_media_type", "send JSON as application/json or text/plain", "Content-Type")
    raw = request.get_data(cache=False)
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object", "body")
    if check_text and _RISKY_ESCAPE.search(raw):
        check_storable(body)
    return body


@bp.route("/events", methods=["POST", "OPTIONS"])
def post_events():
    if request.method == "OPTIONS":
        return "", 204
    body = json_body(check_text=False)  # each event is checked on its own: one bad event costs only itself
    check_storable({name: value for name, value in body.items() if name != "events"})
    key = body.get("key") if isinstance(body.get("key"), str) else None
    site = widget_site(key)
    unknown = sorted(set(body) - set(BATCH_FIELDS))
    if unknown:
        raise ApiError(400, "unknown_field", f"is not a known field (known: {', '.join(BATCH_FIELDS)})", unknown[0])
    max_events = current_app.config["MAX_EVENTS_PER_BATCH"]
    events = body.get("events")
    if isinstance(events, list) and len(events) > max_events:
        raise ApiError(413, "too_many_events", f"at most {max_events} events per request (MAX_EVENTS_PER_BATCH); send smaller batches", "events")
    if not isinstance(events, list) or not events:
        raise InvalidInput("events", "must be a non-empty list of events", "missing")
    # A beacon never sees its answer: one bad event must not cost the good ones beside it.
    valid, rejected, first_error = [], [], None
    for i, raw in enumerate(events):
        try:
            check_storable(raw, f"events[{i}]")
            valid.append(validate_event(raw, i))
        except InvalidInput as exc:
            first_error = first_error or exc
            rejected.append({"index": i, "field": exc.field, "code": exc.code, "message": exc.message})
    if rejected:
        EVENTS.add(("rejected",), len(rejected))
    if not valid:
        raise first_error
    # concurrent requests share one transaction (personalize.batching); 202 only after the commit
    try:
        result = store_batched(site.id, valid)
    except Exception as exc:
        if database_unavailable(exc):
            raise  # 503 with Retry-After: the widget sends them again
        # the batches stored beside this one were stored on their own: only these events failed
        log.exception("events of site %s could not be stored", site.id)
        raise ApiError(400, "unstorable", "these events could not be stored, so none of them was kept; check their values", "events") from None
    EVENTS.add(("accepted",), result.accepted)
    EVENTS.add(("duplicate",), result.duplicates)
    body = {"accepted": result.accepted, "duplicates": result.duplicates}
    if rejected:
        body["rejected"] = rejected
    return body, 202
