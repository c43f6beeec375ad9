"""Segments over HTTP (secret key): CRUD, preview counts, members, the change feed, contact policy."""

from __future__ import annotations

import logging

from flask import current_app, request

from .. import jobs
from ..segments import policy
from ..segments.bulk import members_page, preview_count, rebuild_segment
from ..segments.outbox import changes_after
from ..segments.store import (
    all_segments,
    create_segment,
    delete_segment,
    get_segment,
    segment_json,
    update_segment,
)
from ..validation import InvalidInput, whole_number
from . import bp
from .auth import secret_site
from .errors import ApiError
from .events import json_body

log = logging.getLogger(__name__)

MAX_CHANNELS = 20  # email, sms, push, … : a site has a handful


def _conflicts_as_409(fn, *args):
    """Run a store function; a conflict (a key taken, a segment still referred to) is a 409."""
    try:
        return fn(*args)
    except InvalidInput as exc:
        if exc.code == "conflict":
            raise ApiError(409, "conflict", exc.message, exc.field) from None
        raise


def _segment(site_id: int, key: str):
    seg = get_segment(site_id, key)
    if seg is None:
        raise ApiError(404, "not_found", f"no segment {key!r}", "key")
    return seg


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, str(default))
    if whole_number(raw) is None or not low <= whole_number(raw) <= high:
        raise ApiError(400, "invalid", f"must be a whole number from {low} to {high}", name)
    return int(raw)


def schedule_rebuild(site_id: int, key: str) -> None:
    """Rebuild a segment's members outside the request (slow work never runs in a request): the
    ``segment_rebuild`` job, on the Celery workers with a broker, else on the in-process job runner.

    ``SEGMENT_REBUILD_INLINE`` (tests) runs it at once instead.
    """
    if current_app.config.get("SEGMENT_REBUILD_INLINE"):
        rebuild_segment(site_id, key)
        return
    try:
        jobs.submit("segment_rebuild", site_id=site_id, key=key)
    except Exception as exc:  # the broker is down: what was saved stays saved, the status stays "building"
        log.error("rebuilding segment %s of site %s could not be queued (POST .../rebuild retries): %s", key, site_id, exc)


@bp.get("/segments")
def list_segments():
    site = secret_site()
    return {"segments": [segment_json(s) for s in all_segments(site.id)]}


@bp.post("/segments")
def new_segment():
    site = secret_site()
    seg = _conflicts_as_409(create_segment, site.id, json_body())
    schedule_rebuild(site.id, seg.key)
    return segment_json(get_segment(site.id, seg.key)), 201


@bp.post("/segments/preview")
def preview():
    """``{"rule": {...}}`` → how many profiles it matches now, before saving it."""
    site = secret_site()
    body = json_body()
    if "rule" not in body:
        raise InvalidInput("rule", "is required", "missing")
    return {"count": preview_count(site.id, body["rule"])}


@bp.get("/segments/changes")
def changes():
    """The membership change feed: ``?after=<last id seen>&limit=…&segment=<key>``."""
    site = secret_site()
    after = _int_arg("after", 0, 0, 2**62)
    limit = _int_arg("limit", 500, 1, 5000)
    rows = changes_after(site.id, after, limit, request.args.get("segment") or None)
    return {"changes": rows, "next": rows[-1]["id"] if rows else after}


@bp.get("/segments/<key>")
def show_segment(key: str):
    site = secret_site()
    return segment_json(_segment(site.id, key))


@bp.route("/segments/<key>", methods=["PUT", "PATCH"])
def change_segment(key: str):
    site = secret_site()
    seg = _segment(site.id, key)
    if update_segment(seg, json_body()):
        schedule_rebuild(site.id, key)
    return segment_json(_segment(site.id, key))


@bp.delete("/segments/<key>")
def remove_segment(key: str):
    site = secret_site()
    _conflicts_as_409(delete_segment, _segment(site.id, key))
    return {"deleted": key}


@bp.post("/segments/<key>/rebuild")
def rebuild(key: str):
    site = secret_site()
    _segment(site.id, key)
    schedule_rebuild(site.id, key)
    return segment_json(_segment(site.id, key)), 202


@bp.get("/segments/<key>/members")
def members(key: str):
    """``?after=<last profile id>&limit=…``: members by profile id."""
    site = secret_site()
    seg = _segment(site.id, key)
    after = _int_arg("after", 0, 0, 2**62)
    limit = _int_arg("limit", 100, 1, 1000)
    rows = members_page(site.id, key, after, limit)
    return {"segment": key, "member_count": seg.member_count, "members": rows, "next": rows[-1]["profile_id"] if rows else None}


@bp.get("/contact-policy")
def get_policy():
    site = secret_site()
    return {"channels": policy.get_policies(site.id)}


@bp.put("/contact-policy")
def put_policy():
    """``{"channels": {"email": {"per_day": 1, "per_week": 3}, "sms": {"per_week": 1}}}``."""
    site = secret_site()
    body = json_body()
    channels = body.get("channels")
    if not isinstance(channels, dict):
        raise InvalidInput("channels", "must be an object of channel → {per_day, per_week}")
    if len(set(channels) | set(policy.get_policies(site.id))) > MAX_CHANNELS:
        raise InvalidInput("channels", f"a site has at most {MAX_CHANNELS} channels")
    for channel, limits in channels.items():
        policy.set_policy(site.id, channel, limits)
    return {"channels": policy.get_policies(site.id)}
