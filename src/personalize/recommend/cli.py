"""``personalize evaluate``: offline evaluation of our engine against the baselines.

The command is built by :func:`make_evaluate_command` so the application can
hand in a loader for a site's own stored data (``--site``) without this module
knowing about the database.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime

import click
import numpy as np

from .data import InteractionLog, ItemTable
from .evaluate import MODELS, format_table, run_evaluation

SiteLoader = Callable[[str], tuple[InteractionLog, ItemTable]]


def _load_orders(path: str) -> tuple[InteractionLog, ItemTable, np.ndarray]:
    """Read an orders CSV; also return which user indexes are guest baskets."""
    from ..importers import read_uci_orders
    from .orders import GUEST_PREFIX, log_from_orders

    log, items, users = log_from_orders(read_uci_orders(path))
    return log, items, np.array([u.startswith(GUEST_PREFIX) for u in users], dtype=bool)


def make_evaluate_command(load_site: SiteLoader | None = None) -> click.Command:
    """Return the ``evaluate`` click command; ``load_site(site)`` enables ``--site``."""

    @click.command("evaluate")
    @click.option("--orders", "orders_path", type=click.Path(exists=True, dir_okay=False), help="Order history CSV in the UCI Online Retail columns (may be .gz).")
    @click.option("--site", default=None, help="Evaluate on a site's own stored events and orders." if load_site else "Not available in this build.")
    @click.option("--cutoff", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), help="Train before this day, test from it (YYYY-MM-DD).")
    @click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650), help="Length of the test window in days.")
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
    @click.option("--models", default=",".join(MODELS), show_default=True, help="Comma-separated models to compare.")
    def evaluate(orders_path: str | None, site: str | None, cutoff: datetime, days: int, fmt: str, models: str) -> None:
        """Compare our recommendations with simple baselines on past purchases.

        Trains on everything before --cutoff and checks what each customer
        bought in the --days after it.
        """
        if bool(orders_path) == bool(site):
            raise click.UsageError("give exactly one of --orders FILE.csv or --site SITE")
        names = [m.strip() for m in models.split(",") if m.strip()]
        unknown = [m for m in names if m not in MODELS]
        if unknown:
            raise click.BadParameter(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}", param_hint="--models")

        def say(message: str) -> None:
            click.echo(message, err=True)

        if site:
            if load_site is None:
                raise click.UsageError("--site is not available here; use --orders FILE.csv")
            say(f"loading site {site}")
            log, items = load_site(site)
            guests = None
        else:
            say(f"reading {orders_path}")
            log, items, guests = _load_orders(orders_path)
        say(f"{len(log)} interactions, {log.n_users} users, {len(items)} items")
        if len(log) == 0 or not (log.ts < cutoff.timestamp()).any():
            raise click.UsageError(f"no interactions before {cutoff:%Y-%m-%d}; pick a later --cutoff")
        result = run_evaluation(log, items, cutoff, days, names, guests=guests, progress=say)
        if fmt == "json":
            click.echo(json.dumps(result, indent=None, sort_keys=False))
        else:
            click.echo(format_table(result))
        sys.stdout.flush()

    return evaluate


evaluate_command = make_evaluate_command()
