"""``personalize holdout`` and ``personalize lift``: the holdout share and the measured lift, from a shell."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def register(cli: click.Group, make_app: Callable[[], Any], site_for: Callable[[str | None], Any]) -> None:
    @cli.command("holdout")
    @click.option("--site", "site_ref", help="Site id, name or public key (default: the only site).")
    @click.option("--share", type=float, help="Percent of visitors who see best sellers instead of personal lists (0 turns it off).")
    def holdout_command(site_ref: str | None, share: float | None):
        """Show or set the share of visitors held out from personalization."""
        from . import MAX_SHARE, holdout_share, set_holdout_share

        with make_app().app_context():
            site = site_for(site_ref)
            if share is not None:
                try:
                    set_holdout_share(site, share / 100.0)
                except ValueError:
                    raise click.ClickException(f"--share is a percentage from 0 to {MAX_SHARE * 100:g}") from None
            click.echo(f"{site.name}: holdout {holdout_share(site) * 100:g} % of visitors")

    @cli.command("lift")
    @click.option("--site", "site_ref", help="Site id, name or public key (default: the only site).")
    @click.option("--days", default=30, show_default=True, type=click.IntRange(1, 365), help="The period, ending today (UTC).")
    def lift_command(site_ref: str | None, days: int):
        """Personalized against holdout: conversion and revenue per visitor with 95 % intervals."""
        from . import site_report

        with make_app().app_context():
            site = site_for(site_ref)
            report = site_report(site.id, days=days)
            g1, g0 = report.groups["personalized"], report.groups["holdout"]
            click.echo(f"{site.name}, {report.start} to {report.end}: {report.total.impressions:,} lists shown, "
                       f"CTR {report.total.ctr * 100:.1f} %, {report.total.orders:,} attributed orders, "
                       f"{report.total.revenue:,.2f} {report.currency}".rstrip())
            click.echo(f"visitors shown recommendations: {g1.visitors:,} personalized, {g0.visitors:,} holdout")
            for label, c, unit in (("conversion", report.conversion, "%"), ("revenue per visitor", report.revenue_per_visitor, report.currency)):
                if c is None:
                    click.echo(f"{label}: not enough visitors yet (30 per group)")
                    continue
                scale = 100.0 if unit == "%" else 1.0
                lift = "" if c.lift is None or c.lift_low is None else \
                    f", lift {c.lift * 100:+.0f} % ({c.lift_low * 100:+.0f} % to {c.lift_high * 100:+.0f} %)"
                click.echo(f"{label}: {c.personalized * scale:.2f} vs {c.holdout * scale:.2f} {unit}, difference "
                           f"{c.difference * scale:+.2f} ({c.difference_low * scale:+.2f} to {c.difference_high * scale:+.2f}){lift}")
