"""An erased person's profile id is never given to somebody else."""

from __future__ import annotations

from personalize.profiles import erase_profile, profiles_for_visitors


def test_an_erased_profile_id_is_not_reused(site):
    first = profiles_for_visitors(site.id, ["erase-me"])["erase-me"]
    erase_profile(site.id, first)
    second = profiles_for_visitors(site.id, ["somebody-new"])["somebody-new"]
    assert second != first
    assert profiles_for_visitors(site.id, ["erase-me"])["erase-me"] not in (first, second), "the erased visitor starts afresh"
