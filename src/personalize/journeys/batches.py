"""One batch of due journey steps (the ``journeys_run`` job): claim and move on with
:mod:`.runner`, then act with :mod:`.actions`. It sits above both, so neither imports the other's caller."""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta

from ..models import utcnow
from .actions import act
from .definition import ACTIONS
from .runner import (
    Mover,
    SiteZones,
    Summary,
    _claimed_again,
    _entries,
    _finish_waiting,
    _journeys,
    _setting,
    claim,
    prepare,
    write,
)


def run_due(limit: int | None = None, now: datetime | None = None, lease_seconds: float | None = None, sleep=None) -> Summary:
    """Claim a batch of due steps and run it (the ``journeys_run`` job). ``now`` is for tests
    and simulations; the lease is measured on the real clock."""
    limit = int(limit or _setting("JOURNEY_BATCH_SIZE", 500))
    lease = float(lease_seconds if lease_seconds is not None else _setting("JOURNEY_LEASE_SECONDS", 300))
    now = now or utcnow()
    token = secrets.token_hex(8)
    deadline = time.monotonic() + lease * 0.8  # past this, leave the rest to whoever takes them over
    claimed = claim(limit, now, lease, token)
    summary = Summary(claimed=len(claimed))
    if not claimed:
        return summary
    mover = Mover(now, token, now + timedelta(seconds=lease), SiteZones())
    entries = _entries(sorted({c.enrollment_id for c in claimed}))
    journeys = _journeys({c.journey_id for c in claimed})
    changes = prepare(claimed, entries, journeys, now)
    first, plans = [], []
    for change in changes:
        if not change.outcome and change.row.kind in ACTIONS:
            continue  # acted on below
        if not change.outcome:
            entry = entries[change.row.enrollment_id]
            change.outcome, nxt = _finish_waiting(change.row, entry.flow.steps[change.row.step_id], entry, now)
            plans.append((change, entry, nxt))
        first.append(change)
    mover.advance(plans, claim_actions=True)
    summary.moved, summary.lost = write(first, token, now)
    pending = _claimed_again(token)  # actions: claimed as such (a retry, quiet hours, a crash) or just reached
    if pending:
        missing = sorted({c.enrollment_id for c in pending} - set(entries))
        if missing:  # cannot happen: rows are only inserted for the entries loaded above
            raise RuntimeError(f"actions of unknown entries {missing[:5]}")
        summary.add(act(pending, entries, journeys, mover, token, now, deadline, sleep=sleep))
    return summary
