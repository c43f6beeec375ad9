"""``POST /api/v1/journeys/<journey>/enrollments`` (secret key): enter a person into a journey
whose trigger is an API call — after a sign-up, a subscription, anything the shop's servers know."""

from __future__ import annotations

import re
import secrets

from ..journeys.email import EMAIL_RE
from ..profiles.attributes import NAME_RE
from ..shapes import Map, Obj, Text, Whole
from ..validation import InvalidInput
from . import bp
from .auth import secret_site
from .errors import ApiError
from .events import json_body

MAX_DATA = 50
ID_KINDS = ("profile_id", "email", "customer_id", "visitor")


def _email(value: str, field: str) -> str:
    value = value.strip()
    if not value or not EMAIL_RE.match(value):
        raise InvalidInput(field, "must be an email address")
    return value.lower()


def _stripped(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidInput(field, "must be a non-empty string")
    return value.strip()


ENROLLMENT = Obj({
    "profile_id": Whole(1, 2**31 - 1, description="a profile id"),
    "email": Text(320, check=_email, pattern=EMAIL_RE, description="an email address; one not seen yet makes a profile"),
    "customer_id": Text(200, check=_stripped, pattern=re.compile(r"\S"),
                        description="your customer id; one not seen yet makes a profile"),
    "visitor": Text(200, description="a widget visitor id (404 when no profile has it)"),
    "data": Map(MAX_DATA, key_pattern=NAME_RE, key_message="names are 1-100 letters, digits or _ . -",
                description="what the journey's templates see as `trigger`"),
    "idempotency_key": Text(100, min_len=1, description="a request sent again with the same key enters the person once"),
}, one_of=ID_KINDS, unknown_message="is not a field (known: profile_id, email, customer_id, visitor, data, idempotency_key)",
   unknown_code="invalid")


def _profile(site_id: int, given: dict) -> int:
    """The profile the body names (an email or customer id not seen yet makes a profile: the shop's
    server vouches for it, as a connector would)."""
    from ..profiles import resolve_contact
    from ..profiles.identity import VISITOR, lookup
    from ..profiles.merge import resolve_profile_id

    if given["profile_id"] is not None:
        found = resolve_profile_id(site_id, given["profile_id"])
        if found is None:
            raise ApiError(404, "not_found", "no such profile", "profile_id")
        return found
    if given["email"] is not None:
        return resolve_contact(site_id, email=given["email"], source="api")
    if given["customer_id"] is not None:
        return resolve_contact(site_id, customer_id=given["customer_id"], source="api")
    value = given["visitor"]
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
    given = ENROLLMENT.read_object(json_body(), "")
    data, key = given["data"], given["idempotency_key"]
    live = next((j for j in live_journeys(site.id).journeys if j.id == found.id), None)
    if live is None:
        raise ApiError(409, "journey_not_active", f"journey {found.key!r} is {found.status}; activate it first", "journey")
    if live.trigger["type"] != "api":
        raise ApiError(409, "not_api_triggered", f"journey {found.key!r} is entered by its {live.trigger['type']} trigger, not by this API", "journey")
    profile_id = _profile(site.id, given)
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
