"""The single customer view over HTTP (secret key): read, change, merge, export and erase a profile."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import request

from ..db import db
from ..models import Profile
from ..profiles import (
    attributes_of,
    erase_profile,
    export_profile,
    merge_profiles,
    resolve_profile_id,
    set_attributes,
)
from ..profiles.identity import CUSTOMER, EMAIL, VISITOR, lookup
from ..profiles.merge import MergeRefused
from ..profiles.privacy import identities_by_kind, timeline_summary
from ..profiles.trust import make_token, rotate_signing_secret, signing_secret
from ..segments.models import ProfileScore
from ..segments.store import segments_of_profile
from ..shapes import Number, Obj, Query, Shape, Text, Whole
from ..validation import InvalidInput
from . import bp
from .auth import secret_site
from .errors import ApiError
from .events import json_body

# the form the description shows for `at`: a real calendar date (days 01-28 in every month), a time, UTC;
# the server reads any ISO 8601 date or date-time with an offset
_AT_FORM = re.compile(r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?Z)?$")


def _when(value: str, field: str) -> datetime:
    from ..profiles.attributes import parse_when

    at = parse_when(value)
    if at is None:
        raise InvalidInput(field, "must be an ISO date-time such as 2024-05-01T10:00:00Z")
    return at


class Attributes(Shape):
    """A profile's attributes as PATCH takes them (checked by profiles.check_attributes)."""

    def read(self, obj: dict, key: str, path: str) -> dict:
        from ..profiles.attributes import check_attributes

        value = obj.get(key)
        return {} if value is None else check_attributes(value, f"{path}{key}")

    def value_schema(self) -> dict[str, Any]:
        from ..profiles.attributes import MAX_ATTRIBUTES, MAX_TEXT, NAME_RE

        return {"type": "object", "maxProperties": MAX_ATTRIBUTES, "propertyNames": {"pattern": NAME_RE.pattern},
                "additionalProperties": {"type": ["string", "number", "boolean", "null"], "maxLength": MAX_TEXT},
                "description": "names to values; null removes one (a list or object of up to 8,000 characters is kept too)"}


PROFILE_PATCH = Obj({
    "attributes": Attributes(),
    "source": Text(64, min_len=1, description="who says so (api when absent)"),
    "at": Text(40, check=_when, pattern=_AT_FORM, description="when the values were true at the source (now when absent)"),
}, unknown_message="is not a field here (attributes, source, at)", unknown_code="invalid")
MERGE = Obj({"profile_id": Whole(1, 2**31 - 1, required=True, description="the profile to fold in")}, open=True)
TOKEN = Obj({
    "email": Text(320), "customer_id": Text(200),
    "ttl_days": Number(0, 365, exclusive_min=True, description="days the token is good for (30 when absent)"),
}, any_of=("email", "customer_id"), any_of_message="give an email or a customer_id", open=True)
FIND = Query({
    "email": (Text(320), "an email address"),
    "customer_id": (Text(200), "your customer id"),
    "visitor": (Text(128), "a widget visitor id"),
})


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() + "Z" if v else None


def _profile_id(site_id: int, profile_id: int) -> int:
    # ids are 32-bit in every database; a larger one cannot name a profile (and PostgreSQL would refuse the query)
    live = resolve_profile_id(site_id, profile_id) if 0 < profile_id < 2**31 else None
    if live is None:
        raise ApiError(404, "not_found", f"no profile {profile_id} in this site", "profile_id")
    return live


def scores_json(profile_id: int) -> dict[str, Any] | None:
    row = db.session.get(ProfileScore, profile_id)
    if row is None:
        return None
    cols = [c.name for c in ProfileScore.__table__.c if c.name not in ("profile_id", "site_id")]
    return {c: (_iso(getattr(row, c)) if c == "computed_at" else getattr(row, c)) for c in cols}


def profile_json(site_id: int, profile_id: int) -> dict[str, Any]:
    p = db.session.get(Profile, profile_id)
    return {
        "id": p.id, "email": p.email, "customer_id": p.customer_id,
        "created_at": _iso(p.created_at), "last_seen_at": _iso(p.last_seen_at),
        "identities": identities_by_kind(profile_id),
        "attributes": {k: {**v, "updated_at": _iso(v["updated_at"])} for k, v in attributes_of(profile_id).items()},
        "timeline": timeline_summary(site_id, profile_id),
        "scores": scores_json(profile_id),
        "segments": [{**s, "since": _iso(s["since"])} for s in segments_of_profile(profile_id)],
    }


@bp.get("/profiles")
def find_profile():
    """``?email=`` / ``?customer_id=`` / ``?visitor=``: the profile holding that id."""
    site = secret_site()
    given = FIND.read(request.args)
    for kind, param in ((EMAIL, "email"), (CUSTOMER, "customer_id"), (VISITOR, "visitor")):
        value = given[param]
        if value:
            if kind == EMAIL:
                value = value.strip().lower()
            pid = lookup(site.id, kind, [value]).get(value)
            if pid is None:
                raise ApiError(404, "not_found", f"no profile with {param} {value!r}", param)
            return profile_json(site.id, pid)
    raise ApiError(400, "missing", "give one of email, customer_id or visitor", "email")


@bp.get("/profiles/<int:profile_id>")
def show_profile(profile_id: int):
    site = secret_site()
    live = _profile_id(site.id, profile_id)
    body = profile_json(site.id, live)
    if live != profile_id:
        body["merged_from"] = profile_id
    return body


@bp.patch("/profiles/<int:profile_id>")
def update_profile(profile_id: int):
    """``{"attributes": {...}, "source": "crm", "at": "2024-05-01T10:00:00Z"}`` — newest value wins."""
    site = secret_site()
    live = _profile_id(site.id, profile_id)
    v = PROFILE_PATCH.read_object(json_body(), "")
    changed = set_attributes(site.id, live, v["attributes"], v["source"] or "api", v["at"])
    return {"changed": changed, "profile": profile_json(site.id, live)}


@bp.delete("/profiles/<int:profile_id>")
def delete_profile(profile_id: int):
    site = secret_site()
    live = _profile_id(site.id, profile_id)
    identities = erase_profile(site.id, live)
    return {"erased": live, "identities": identities}


@bp.get("/profiles/<int:profile_id>/export")
def export(profile_id: int):
    site = secret_site()
    live = _profile_id(site.id, profile_id)
    return export_profile(site.id, live)


@bp.post("/profiles/<int:profile_id>/merge")
def merge(profile_id: int):
    """``{"profile_id": other}``: the caller (a server) vouches they are one person; other folds in."""
    site = secret_site()
    live = _profile_id(site.id, profile_id)
    other = MERGE.read_object(json_body(), "")["profile_id"]
    other_live = _profile_id(site.id, other)
    try:
        moved = merge_profiles(site.id, live, other_live, "api")
    except MergeRefused as exc:
        raise ApiError(409, "merge_refused", str(exc), "profile_id") from None
    return {"profile": profile_json(site.id, live), "moved": moved}


@bp.get("/profiles/<int:profile_id>/segments")
def profile_segments(profile_id: int):
    site = secret_site()
    live = _profile_id(site.id, profile_id)
    return {"segments": [{**s, "since": _iso(s["since"])} for s in segments_of_profile(live)]}


@bp.post("/profiles/tokens")
def new_token():
    """A signed click-through token for an email link: ``{"email"|"customer_id", "ttl_days"}``."""
    site = secret_site()
    v = TOKEN.read_object(json_body(), "")
    ttl = 30 if v["ttl_days"] is None else v["ttl_days"]
    return {"token": make_token(site.id, v["email"], v["customer_id"], max(1, int(ttl * 86400)))}


@bp.route("/profiles/signing-secret", methods=["GET", "POST"])
def identity_signing_secret():
    """The secret the shop signs identities with; ``POST`` rotates it."""
    site = secret_site()
    secret = rotate_signing_secret(site.id) if request.method == "POST" else signing_secret(site.id)
    return {"signing_secret": secret}

