"""Every hook a plugin can implement.

Hooks are called with keyword arguments only, so a spec may gain arguments
without breaking plugins. ``docs/plugin-hooks.md`` documents each one, and a test
fails when a hook here is missing there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from flask import Blueprint, Flask

    from .connectors import JourneyAction
    from .records import Event, Recommendation, SegmentChange

hookspec = pluggy.HookspecMarker("personalize")


@hookspec
def startup(app: Flask, plugin_config: Callable[[str], dict[str, Any]]) -> None:
    """Called once when the server application has been created.

    :param app: the Flask application; read the server's settings from ``app.config``.
    :param plugin_config: ``plugin_config(name)`` returns plugin ``name``'s own settings: the
        ``[plugins.NAME]`` table of ``personalize.toml`` (``$env``/``$file`` secrets resolved),
        then ``PERSONALIZE_PLUGIN_<NAME>_<KEY>`` variables (strings); ``{}`` when there are none.

    .. versionchanged:: 0.2 ``plugin_config`` added.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``personalize`` command line.

    :param cli: the top-level click group; call ``cli.add_command(...)``.
    """


@hookspec
def register_blueprints() -> list[Blueprint]:
    """Return Flask blueprints to mount on the server (extra pages or endpoints)."""


@hookspec
def event_received(site_id: int, event: Event) -> None:
    """Called for every newly stored event, after it is durably committed.

    Duplicates (an event id seen before) do not trigger it. Keep it fast: it runs
    in the request that delivered the event.

    :param site_id: the site the event belongs to.
    :param event: the stored event.
    """


@hookspec
def recommendation_candidates(
    site_id: int, profile_id: int | None, slot: str, product_id: str | None, limit: int,
    history: list[tuple[str, str]],
) -> list[Recommendation]:
    """Offer extra candidate items for a recommendation list.

    Candidates from every plugin are merged with the model's own (by the highest
    score per product); out-of-stock and unknown products are dropped afterwards.

    :param site_id: the site asking.
    :param profile_id: the visitor's profile, or ``None`` for a first visit.
    :param slot: the page slot being filled (``home``, ``product``…).
    :param product_id: the product on the current page, if any.
    :param limit: how many items the list will show.
    :param history: the visitor's newest interactions, newest first, as ``(product id, kind)``
        with kind ``"view"``, ``"cart"`` or ``"purchase"`` (empty for a first visit).
    :returns: a list of :class:`personalize.records.Recommendation`.

    .. versionchanged:: 0.3 ``history`` added.
    """


@hookspec
def modify_recommendations(
    site_id: int, profile_id: int | None, slot: str, items: list[Recommendation],
    product_id: str | None, history: list[tuple[str, str]],
) -> None:
    """Re-rank, filter or annotate a recommendation list in place, just before it is served.

    Plugins run one after another on the same list, so each sees the previous one's
    changes. Items are sorted by ``score`` afterwards, then cut to the limit.

    :param items: the candidates, best first; change ``score``/``reason`` or remove items.
    :param product_id: the product on the current page, if any.
    :param history: as for :func:`recommendation_candidates`.

    .. versionchanged:: 0.3 ``product_id`` and ``history`` added.
    """


@hookspec
def model_trained(site_id: int, summary: dict[str, Any]) -> None:
    """Called after a new recommendation model has been trained and activated.

    :param summary: counts and timings: ``n_items``, ``n_users``, ``n_interactions``, ``fit_seconds``, ``path``;
        the self-check: ``served`` (what the "all" and "new" views serve), ``check`` (its figures)
        and ``description`` (the same in words).
    """


@hookspec
def register_connectors() -> list[type]:
    """Return connector classes (subclasses of :class:`personalize.connectors.Connector`).

    Each declares its name, kind, settings, streams and push targets; the sync engine
    runs them. Two connectors with the same ``name`` are an error reported at start.
    """


@hookspec
def sync_finished(site_id: int, connection: str, connector: str, summary: dict[str, Any]) -> None:
    """Called after a connection's sync (pull or push) has finished and its run log is stored.

    :param site_id: the site synced.
    :param connection: the connection's name (a site may connect the same connector twice).
    :param connector: the connector's name (``shopify``, ``hubspot``…).
    :param summary: the run log entry: ``run_id``, ``kind``, ``status``, ``records_in``,
        ``records_out``, ``skipped``, ``errors``, ``cursor``, ``started_at``, ``finished_at``.
    """


@hookspec
def segment_membership_changed(site_id: int, changes: list[SegmentChange]) -> None:
    """Called after profiles entered or left segments, once the change is committed.

    Fires for incremental updates (a new event or attribute) and for bulk rebuilds
    (then in batches of at most 1,000 changes). Every change is also kept in the
    ``segment_changes`` outbox (``GET /api/v1/segments/changes?after=…``), so a
    connector that was down can catch up from its cursor.

    .. versionadded:: 0.2

    :param site_id: the site whose segments changed.
    :param changes: :class:`personalize.records.SegmentChange` records, oldest first.
    """


@hookspec
def profiles_changed(site_id: int, profile_ids: list[int]) -> None:
    """Called after what is stored about some profiles changed (new events, attributes, a
    merge), once committed, so that what is computed from them follows: the built-in
    segments plugin brings their segment membership up to date here (and that, in turn,
    fires :func:`segment_membership_changed`).

    Keep it fast: it runs in the request or job that changed the profiles.

    .. versionadded:: 0.3

    :param site_id: the site of the profiles.
    :param profile_ids: the profiles that changed (no duplicates, any order).
    """


@hookspec
def profile_erased(site_id: int, profile_id: int, identities: dict[str, list[str]]) -> None:
    """Called after a profile and everything stored about it were erased (a privacy request).

    Connectors should delete or suppress the person in their systems too. The data
    is already gone from the database; ``identities`` is all that is left of it.

    .. versionadded:: 0.2

    :param site_id: the site the profile belonged to.
    :param profile_id: the erased profile's id (it no longer exists).
    :param identities: every id the person was known by, by kind (``email``, ``customer_id``,
        ``visitor``, connector ids…), each a list of values.
    """


@hookspec
def profiles_merged(site_id: int, kept_profile_id: int, merged_profile_id: int, signal: str) -> None:
    """Called after two profiles were found to be one person and merged, once committed.

    The merged profile's events, orders, identities and attributes now belong to the
    kept one, and the merged id no longer exists (the API still resolves it).

    .. versionadded:: 0.2

    :param site_id: the site of both profiles.
    :param kept_profile_id: the profile that remains.
    :param merged_profile_id: the profile folded into it.
    :param signal: the trusted signal that proved it: ``signature``, ``token``, ``connector`` or ``api``.
    """


@hookspec
def register_journey_actions() -> list[JourneyAction]:
    """Return the journey actions a plugin's connectors offer (:class:`personalize.connectors.JourneyAction`).

    A journey's connector step names a connection of the site and one of the actions
    declared for its connector; the runner builds the connector for that connection and
    calls the action's ``run`` with batches of people, each with an idempotency key.

    .. versionadded:: 0.3
    """
