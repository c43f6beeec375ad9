"""The journeys inbox works a burst's backlog off in bounded steps, never all in one transaction."""

from __future__ import annotations

from personalize.journeys.listener import Inbox
from personalize.models import utcnow
from personalize.records import Event


def test_a_drain_takes_at_most_its_limit_and_leaves_the_rest_queued(app, site):
    box = Inbox(app)
    now = utcnow()
    for i in range(7):  # straight into the queue: no thread of its own in this test
        box.items.append(("event", site.id, Event(site_id=site.id, event_id=f"b{i}", type="page_viewed", visitor="v", profile_id=1,
                                                  occurred_at=now)))
    with app.app_context():
        box.drain(3)
        assert (box.handled, len(box.items)) == (3, 4)
        box.drain(3)
        box.drain()
    assert (box.handled, len(box.items)) == (7, 0)
