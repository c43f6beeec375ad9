"""Profiles: identity, event ingestion, order history — the single customer view."""

from __future__ import annotations

import logging

from flask import current_app, has_request_context, request

from ..db import db
from ..models import Site
from ..plugins import notify, notify_each
from .attributes import attributes_of, set_attributes
from .events import IncomingEvent, validate_batch, validate_event
from .facts import device_facts, record_device_facts
from .identity import attach_identities, profile_for_visitor, profiles_for, profiles_for_visitors
from .ingest import IngestResult, recent_interactions, store_events, storer_token
from .merge import link_identity, merge_profiles, resolve_contact, resolve_profile_id
from .orders import import_orders
from .privacy import address_facts, erase_profile, export_profile

log = logging.getLogger(__name__)


def ingest_events(site: Site, events: list[dict], max_events: int = 1000) -> IngestResult:
    """Validate and store a batch of raw event dicts (the API's shape) for ``site``.

    Raises :class:`personalize.validation.InvalidInput` before storing anything if
    an event is invalid. Calls the ``event_received`` hook for each newly stored event.
    """
    site_id = site.id  # read before the commit expires the object
    result = store_events(site_id, validate_batch(events, max_events))
    after_store(site_id, result)
    return result


def after_store(site_id: int, result: IngestResult) -> None:
    """What follows newly stored events: ``event_received`` for each, device facts, segment membership."""
    if result.stored:
        notify_each("event_received", [{"site_id": site_id, "event": record} for record in result.stored])
        _after_events(site_id, result)


def _after_events(site_id: int, result: IngestResult) -> None:
    """Device facts from the delivering request, then the profiles' segment membership.

    The events are committed already: a failure here is logged, never lost data.
    """
    from ..models import utcnow

    try:
        if has_request_context():
            facts = device_facts(request.headers.get("User-Agent"), request.headers.get("Accept-Language"))
            facts.update(address_facts(current_app.config, request.remote_addr))  # only when the admin opted in
            if record_device_facts(site_id, result.profiles, facts, utcnow()):
                db.session.commit()
        notify("profiles_changed", site_id=site_id, profile_ids=list(dict.fromkeys(result.profiles)))
    except Exception:
        db.session.rollback()
        log.exception("segment update after events failed for site %s", site_id)


__all__ = [
    "IncomingEvent", "IngestResult", "after_store", "attach_identities", "attributes_of", "erase_profile", "export_profile",
    "import_orders", "link_identity", "merge_profiles", "resolve_contact", "resolve_profile_id", "set_attributes", "ingest_events", "profile_for_visitor", "profiles_for",
    "profiles_for_visitors", "recent_interactions", "store_events", "storer_token", "validate_batch", "validate_event",
]
