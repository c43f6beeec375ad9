"""The journeys' jobs, registered in :mod:`personalize.jobs` (run in-process or on Celery workers)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


def run_steps(limit: int | None = None) -> dict[str, Any]:
    """``journeys_run``: claim one batch of due steps and run it."""
    from .batches import run_due

    return asdict(run_due(limit))


def run_triggers() -> dict[str, int]:
    """``journeys_triggers``: the catch-up of events and segment changes, and date triggers."""
    from .triggers import run_triggers as run

    return run()
