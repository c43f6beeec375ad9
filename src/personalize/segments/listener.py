"""Segments follow the profiles: a built-in plugin that hears the profiles' notifications.

The profiles package is below segments and never imports it; it publishes
``profiles_changed`` and ``profile_erased`` (:func:`personalize.plugins.notify`) after
its commits, and this plugin brings segment membership and member counts up to date.
"""

from __future__ import annotations

from personalize import hookimpl


@hookimpl
def profiles_changed(site_id: int, profile_ids: list[int]) -> None:
    from .live import refresh_profiles

    refresh_profiles(site_id, list(profile_ids))


@hookimpl
def profile_erased(site_id: int, profile_id: int, identities: dict[str, list[str]]) -> None:
    """The erased person's memberships went with the profile: count the site's members again."""
    from .store import recount_members

    recount_members(site_id)
