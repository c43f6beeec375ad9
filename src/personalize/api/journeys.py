"""``POST /api/v1/journeys/<journey>/enrollments`` (secret key): enter a person into a journey
whose trigger is an API call — after a sign-up, a subscription, anything the shop's servers know."""

from __future__ import annotations

import math
import secrets

from ..profiles.attributes import NAME_RE
from ..validation import InvalidInput
from . import bp
from .auth import secret_site
from .errors import ApiError
from .events import json_body

MAX_DATA = 50
ID_KINDS = ("profile_id", "email", "customer_id", "visitor")


def _data(raw) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_DATA:
        raise InvalidInput("data", f"must be an object of at most {MAX_DATA} names to strings, numbers, booleans or null")
    for name, value in raw.items():
        if not NAME_RE.match(name):
            raise InvalidInput(f"data.{name[:40]}", "names are 1-100 letters, digits or _ . -")
        if isinstance(value, str):
            if len(value) > 2000:
                raise InvalidInput(f"data.{name}", "is longer than 2000 characters")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"data.{name}", "must be a finite number")
        elif value is not None and not isinstance(value, bool | int | float):
            raise InvalidInput(f"data.{name}", "must be a string, number, boolean or null")
    return raw


def _profile(site_id: int, body: dict) -> int:
    """The profile the body names (an email or customer id not seen yet makes a profile: the shop's
    server vouches for it, as a connector would)."""
    from ..profiles import resolve_contact
    from ..profiles.identity import VISITOR, lookup
    from ..profiles.merge import resolve_profile_id

    given = [k for k in ID_KINDS if body.get(k) is not None]
    if len(given) != 1:
        raise InvalidInput("profile_id", "give exactly one of profile_id, email, customer_id or visitor", "missing" if not given else "invalid")
    kind = given[0]
    value = body[kind]
    if kind == "profile_id":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
            raise InvalidInput("profile_id", "must be a profile id (a whole number)")
        found = resolve_profile_id(site_id, value)
        if found is None:
            raise ApiError(404, "not_found", "no such profile", "profile_id")
        return found
    if not isinstance(value, str) or not value.strip() or len(value) > (320 if kind == "email" else 200):
        raise InvalidInput(kind, "must be a non-empty string")
    if kind == "email":
        from ..journeys.email import EMAIL_RE

        if not EMAIL_RE.match(value.strip()):
            raise InvalidInput("email", "must be an email address")
        return resolve_contact(site_id, email=value.strip().lower(), source="api")
    if kind == "customer_id":
        return resolve_contact(site_id, customer_id=value.strip(), source="api")
    found = lookup(site_id, VISITOR, [value]).get(value)
    if found is None:
        raise ApiError(404, "not_found", "no profile has this visitor id", "visitor")
    return found


@bp.post("/journeys/<journey>/enrollments")
def enroll(journey: str):
    from ..db import db
    from ..journeys.models import JourneyEnrollment
    from ..journeys.store import get_journey, live_journeys
    from ..journeys.triggers import Candidate, enter

    site = secret_site()
    found = get_journey(site.id, journey)
    if found is None:
        raise ApiError(404, "not_found", f"no journey {journey[:64]!r}", "journey")
    body = json_body()
    unknown = sorted(set(body) - {*ID_KINDS, "data", "idempotency_key"})
    if unknown:
        raise InvalidInput(unknown[0], "is not a field (known: profile_id, email, customer_id, visitor, data, idempotency_key)")
    data = _data(body.get("data"))
    key = body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 100):
        raise InvalidInput("idempotency_key", "must be a string of 1 to 100 characters")
    live = next((j for j in live_journeys(site.id).journeys if j.id == found.id), None)
    if live is None:
        raise ApiError(409, "journey_not_active", f"journey {found.key!r} is {found.status}; activate it first", "journey")
    if live.trigger["type"] != "api":
        raise ApiError(409, "not_api_triggered", f"journey {found.key!r} is entered by its {live.trigger['type']} trigger, not by this API", "journey")
    profile_id = _profile(site.id, body)
    occurrence = f"api:{key}" if key else f"api:{secrets.token_hex(12)}"
    entered = enter(live, [Candidate(profile_id, occurrence, "api", data)])
    if entered:
        entry_id, pid, control = entered[0]
        _wake()
        return {"entered": True, "enrollment_id": entry_id, "profile_id": pid, "control": control}, 201
    before = db.session.execute(db.select(JourneyEnrollment.status, JourneyEnrollment.dedupe, JourneyEnrollment.entered_at).where(
        JourneyEnrollment.journey_id == found.id, JourneyEnrollment.profile_id == profile_id)).all()
    reentry = live.definition["reentry"]
    if any(status == "active" for status, _d, _e in before):
        reason = "already in the journey"
    elif reentry["mode"] == "once" and before:
        reason = "entered before; the journey lets each person in once"
    elif key and any(dedupe == f"{profile_id}:{occurrence}"[:200] for _s, dedupe, _e in before):
        reason = "this idempotency_key entered the person already"
    elif reentry["mode"] == "cooldown" and before:
        reason = f"entered within the last {reentry['days']} days"
    else:
        reason = "the journey's entry condition does not hold for this person"
    return {"entered": False, "profile_id": profile_id, "reason": reason}, 200


def _wake() -> None:
    from flask import current_app

    from ..journeys.listener import wake_runner

    wake_runner(current_app._get_current_object())
