"""Segment changes on their way out: as soon as the segments service announces them,
a ``push_segments`` job is queued for every connection of the site that pushes.

The job reads the outbox from the connection's own cursor, so this hook only makes
the push prompt; a missed call loses nothing (the scheduler catches up). It runs
where the change was made, possibly inside a request, so it only queues work.
"""

from __future__ import annotations

from personalize import hookimpl


@hookimpl
def segment_membership_changed(site_id, changes):
    from ..jobs import submit
    from ..sync.tasks import pushing_connections

    for connection_id in pushing_connections(site_id):
        submit("push_segments", connection_id=connection_id)
