"""Profiles: identity, event ingestion, order history — the single customer view."""

from __future__ import annotations

from ..models import Site
from ..plugins import hooks
from .events import IncomingEvent, validate_batch, validate_event
from .identity import profile_for_visitor, profiles_for, profiles_for_visitors
from .ingest import IngestResult, recent_interactions, store_events
from .orders import import_orders


def ingest_events(site: Site, events: list[dict], max_events: int = 1000) -> IngestResult:
    """Validate and store a batch of raw event dicts (the API's shape) for ``site``.

    Raises :class:`personalize.validation.InvalidInput` before storing anything if
    an event is invalid. Calls the ``event_received`` hook for each newly stored event.
    """
    result = store_events(site.id, validate_batch(events, max_events))
    if result.stored:
        hook = hooks().event_received
        for record in result.stored:
            hook(site_id=site.id, event=record)
    return result


__all__ = [
    "IncomingEvent", "IngestResult", "import_orders", "ingest_events", "profile_for_visitor", "profiles_for",
    "profiles_for_visitors", "recent_interactions", "store_events", "validate_batch", "validate_event",
]
