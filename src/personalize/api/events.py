"""``POST /api/v1/events``: a batch of widget events, answered only after they are stored."""

from __future__ import annotations

import json

from flask import current_app, request

from ..batching import store_batched
from ..profiles import validate_event
from ..validation import InvalidInput
from . import bp
from .errors import ApiError
from .widget_keys import widget_site


def json_body() -> dict:
    """The request's JSON object, from ``application/json`` or ``text/plain`` (sendBeacon)."""
    ctype = (request.mimetype or "").lower()
    if ctype not in ("application/json", "text/plain", ""):
        raise ApiError(415, "unsupported_media_type", "send JSON as application/json or text/plain", "Content-Type")
    raw = request.get_data(cache=False)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc})"[:200]) from None
    except RecursionError:  # thousands of nested brackets: no endpoint takes anything that deep
        raise ApiError(400, "invalid_json", "the body nests arrays or objects too deeply", "body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


@bp.route("/events", methods=["POST", "OPTIONS"])
def post_events():
    if request.method == "OPTIONS":
        return "", 204
    body = json_body()
    key = body.get("key") if isinstance(body.get("key"), str) else None
    site = widget_site(key)
    unknown = sorted(set(body) - {"key", "events", "sent_at"})
    if unknown:
        raise ApiError(400, "unknown_field", "is not a known field (known: key, events, sent_at)", unknown[0])
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
            valid.append(validate_event(raw, i))
        except InvalidInput as exc:
            first_error = first_error or exc
            rejected.append({"index": i, "field": exc.field, "code": exc.code, "message": exc.message})
    if not valid:
        raise first_error
    # concurrent requests share one transaction (personalize.batching); 202 only after the commit
    result = store_batched(site.id, valid)
    body = {"accepted": result.accepted, "duplicates": result.duplicates}
    if rejected:
        body["rejected"] = rejected
    return body, 202
