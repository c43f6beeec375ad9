"""``personalize journeys``: list journeys with their figures, and run due steps from the command line.

``personalize journeys run`` is a journey runner of its own: it claims due steps in
batches and runs them until stopped (or, with ``--until-idle``, until none are due),
exactly as the scheduler's clock does. Any number may run beside the server; a runner
that is killed leaves its claimed steps to the others once their lease ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

#: what the command line above hands down (:func:`register`): the app factory and the site lookup
_face: dict[str, Callable[..., Any]] = {}


def register(cli: click.Group, make_app: Callable[[], Any], site_for: Callable[[str | None], Any]) -> None:
    """Add ``journeys`` to ``cli``; this package knows no web (``make_app`` builds the application)."""
    _face.update(make_app=make_app, site_for=site_for)
    cli.add_command(journeys_group)


@click.group("journeys")
def journeys_group():
    """List journeys and run their due steps."""


@journeys_group.command("list")
@click.option("--site", "site_ref", help="Site id, name or public key.")
def list_command(site_ref: str | None):
    """Each journey: status, live version, people in it now and in all."""
    from .report import journey_report
    from .store import list_journeys

    app = _face["make_app"]()
    with app.app_context():
        site = _face["site_for"](site_ref)
        for j in list_journeys(site.id):
            r = journey_report(j)
            click.echo(f"{j.key}\t{j.status}\tv{j.version}\t{r.active:,} in it\t{r.entered:,} entered\t{j.name}")


@journeys_group.command("run")
@click.option("--batch", type=click.IntRange(1, 10_000), default=None, help="Steps claimed at once (default: JOURNEY_BATCH_SIZE).")
@click.option("--lease", type=click.FloatRange(1, 86_400), default=None, help="Seconds a claim holds (default: JOURNEY_LEASE_SECONDS).")
@click.option("--until-idle", is_flag=True, help="Stop once no step is due, instead of waiting for more.")
@click.option("--triggers/--no-triggers", default=False, help="Also run the catch-up and the date triggers every JOURNEY_TRIGGER_SECONDS.")
def run_command(batch: int | None, lease: float | None, until_idle: bool, triggers: bool):
    """Run due journey steps (a runner beside the server's own, or instead of it)."""
    from ..db import db
    from .batches import run_due
    from .triggers import run_triggers

    app = _face["make_app"]()
    every = float(app.config.get("JOURNEY_TRIGGER_SECONDS") or 30)
    next_triggers = 0.0
    total = 0
    with app.app_context():
        while True:
            if triggers and time.monotonic() >= next_triggers:
                next_triggers = time.monotonic() + every
                run_triggers()
            summary = run_due(limit=batch, lease_seconds=lease)
            db.session.remove()
            total += summary.acted
            if summary.claimed:
                click.echo(f"claimed {summary.claimed}, acted {summary.acted}, moved {summary.moved}, "
                           f"skipped {summary.skipped}, failed {summary.failed}, retried {summary.retried}", err=True)
                continue
            if until_idle:
                break
            time.sleep(0.5)
    click.echo(f"{total:,} actions carried out")
