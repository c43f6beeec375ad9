"""A site's name tells an admin nothing about sites they may not see: names are not unique across
tenants, and a duplicate is refused only among the admin's own sites."""

from __future__ import annotations

import html
import re

import pytest

from personalize.sites import create_site, get_site, sites_named

from .conftest import make_user, post, sign_in


def notice(response) -> str:
    return html.unescape(" ".join(re.findall(r'class="flash [a-z]+" role="status">([^<]*)<', response.get_data(as_text=True))))


@pytest.fixture
def editor_of_b(app, client, ctx):
    hidden, _ = create_site("Hidden rival")
    mine, _ = create_site("Mine")
    make_user("editor@shop.example", "editor", {mine.id})
    sign_in(client, "editor@shop.example")
    return client, hidden.id, mine.id


def test_renaming_to_a_name_only_another_tenant_uses_reads_like_any_new_name(editor_of_b):
    client, hidden, mine = editor_of_b
    unused = notice(post(client, f"/admin/sites/{mine}/rename", {"name": "Never used"}, follow_redirects=True))
    taken_elsewhere = notice(post(client, f"/admin/sites/{mine}/rename", {"name": "Hidden rival"}, follow_redirects=True))
    assert unused == taken_elsewhere == "Site renamed."
    assert get_site(mine).name == "Hidden rival" and get_site(hidden).name == "Hidden rival"


def test_creating_a_site_with_another_tenants_name_works(editor_of_b):
    client, hidden, mine = editor_of_b
    r = post(client, "/admin/sites", {"name": "Hidden rival"})
    assert r.status_code == 302 and "/admin/sites/" in r.headers["Location"]
    assert len(sites_named("Hidden rival")) == 2


def test_a_duplicate_among_the_admins_own_sites_is_refused(editor_of_b, ctx):
    client, hidden, mine = editor_of_b
    post(client, "/admin/sites", {"name": "Second of mine"})
    (second,) = sites_named("Second of mine")
    said = notice(post(client, f"/admin/sites/{mine}/rename", {"name": "Second of mine"}, follow_redirects=True))
    assert said == "You have a site named 'Second of mine' already; choose another name."
    assert get_site(mine).name == "Mine"
    said = notice(post(client, "/admin/sites", {"name": " Mine "}, follow_redirects=True))
    assert said == "You have a site named 'Mine' already; choose another name."
    assert len(sites_named("Mine")) == 1
    # renaming a site to its own name is no duplicate
    assert notice(post(client, f"/admin/sites/{mine}/rename", {"name": "Mine"}, follow_redirects=True)) == "Site renamed."


def test_an_owner_sees_every_site_so_every_name_counts(app, as_owner, ctx):
    create_site("Shop A")
    b, _ = create_site("Shop B")
    said = notice(post(as_owner, f"/admin/sites/{b.id}/rename", {"name": "Shop A"}, follow_redirects=True))
    assert said == "You have a site named 'Shop A' already; choose another name."
