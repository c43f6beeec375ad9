"""``personalize scores`` and ``personalize segments``: recompute scores, list and rebuild segments."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

#: what the command line above hands down (:func:`register`): the app factory and the site lookup
_face: dict[str, Callable[..., Any]] = {}


def register(cli: click.Group, make_app: Callable[[], Any], site_for: Callable[[str | None], Any]) -> None:
    """Add ``scores`` and ``segments`` to ``cli``; ``make_app()`` builds the application and
    ``site_for(ref)`` finds the site (or says why not), so this package knows no web."""
    _face.update(make_app=make_app, site_for=site_for)
    cli.add_command(scores_command)
    cli.add_command(segments_group)


def _app():
    return _face["make_app"]()


def _site(ref: str | None):
    return _face["site_for"](ref)


def _as_of(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise click.ClickException(f"--as-of must be a date such as 2011-12-10, got {text!r}") from None


@click.command("scores")
@click.option("--site", "site_ref", help="Site id, name or public key (default: the only site).")
@click.option("--as-of", help="Score as of this date (default: now), e.g. 2011-12-10 for an old data set.")
def scores_command(site_ref: str | None, as_of: str | None):
    """Recompute RFM, value/attrition/potential, clusters and purchase propensity for every customer, then rebuild segments."""
    from .scores import compute_scores

    app = _app()
    with app.app_context():
        site = _site(site_ref)
        started = time.perf_counter()
        summary = compute_scores(site.id, _as_of(as_of), progress=lambda s: click.echo(f"  {s} ({time.perf_counter() - started:.1f} s)", err=True, file=sys.stderr))
        click.echo(f"{site.name}: {summary['customers']:,} customers scored in {summary['seconds']:.1f} s")
        for name, n in summary.get("clusters", {}).items():
            click.echo(f"  cluster {name}: {n:,}")
        for line in propensity_lines(summary):
            click.echo(f"  {line}")


def propensity_lines(summary: dict) -> list[str]:
    """What the scores run says about purchase propensity: the model, the expected orders, the time."""
    out = []
    ordering = summary.get("order_propensity")
    if ordering:
        how = {
            "gradient boosting": f"gradient boosting on {ordering.get('rows', 0):,} customer-windows ({ordering.get('windows', 0)} windows of 30 days)",
            "bgnbd": "BG/NBD (too little history yet to learn from past windows)",
        }.get(ordering["model"], "not computed")
        out.append(f"next 30 days: about {ordering.get('expected_customers', 0):,.0f} customers expected to order; {how}, {ordering['seconds']:.1f} s")
    likely = summary.get("category_propensity")
    if likely:
        if likely.get("reason") == "no categories":
            out.append("likely categories: none, because no purchased product has a category")
        elif likely["model"] == "none":
            out.append("likely categories: not enough purchases in categories yet to learn from")
        else:
            out.append(f"likely categories: {likely['categories']:,} categories, {likely.get('pairs', 0):,} customer-category pairs scored, {likely['seconds']:.1f} s")
    return out


@click.group("segments")
def segments_group():
    """List and rebuild rule segments."""


@segments_group.command("list")
@click.option("--site", "site_ref", help="Site id, name or public key.")
def list_command(site_ref: str | None):
    """Each segment with its member count and when it was last rebuilt."""
    from .store import all_segments

    app = _app()
    with app.app_context():
        site = _site(site_ref)
        for seg in all_segments(site.id):
            click.echo(f"{seg.key}\t{seg.member_count:,}\t{seg.status}\t{seg.rebuilt_at or '-'}\t{seg.name}")


@segments_group.command("rebuild")
@click.argument("keys", nargs=-1)
@click.option("--site", "site_ref", help="Site id, name or public key.")
@click.option("--as-of", help="Evaluate relative dates as of this date (default: now).")
def rebuild_command(keys: tuple[str, ...], site_ref: str | None, as_of: str | None):
    """Rebuild the named segments (default: all). Run it daily so "within N days" rules stay exact."""
    from .bulk import rebuild_all, rebuild_segment

    app = _app()
    with app.app_context():
        site = _site(site_ref)
        when = _as_of(as_of)

        def show(key: str, r: dict) -> None:
            click.echo(f"{key}: {r['members']:,} members (+{r['entered']:,} -{r['left']:,}) in {r['seconds']:.2f} s")

        if not keys:
            rebuild_all(site.id, when, progress=show)
        for key in keys:
            try:
                show(key, rebuild_segment(site.id, key, when))
            except KeyError:
                raise click.ClickException(f"no segment {key!r}") from None
