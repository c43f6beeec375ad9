"""Connector pages: a connection set up from the connector's settings, secrets write-only and
encrypted, test connection and sync now against a local HubSpot-speaking server, the run log."""

from __future__ import annotations

import pytest

from personalize import jobs
from personalize.sync.connections import get_connection
from personalize.sync.testing import ProviderServer

from .conftest import make_user, post, sign_in

TOKEN = "pat-eu1-admin-test"


@pytest.fixture
def hubspot():
    server = ProviderServer()

    def contacts(request, match):
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"status": "error", "message": "Authentication credentials not found."}
        return {"results": []}

    server.on("GET", "/crm/v3/objects/contacts", contacts)
    server.on("POST", "/crm/v3/objects/contacts/search", lambda r, m: {"total": 0, "results": []}, required=False)
    with server:
        yield server


def setup_form(url, token=TOKEN, **extra):
    return {"name": "hubspot", "setting_access_token": token, "setting_api_url": url, "setting_property_prefix": "pz_",
            "enabled": "1", "schedule_minutes": "60", "map_firstname": "given_name", **extra}


def test_connector_list_shows_installed_connectors(as_owner, site):
    page = as_owner.get(f"/admin/sites/{site.id}/connectors").get_data(as_text=True)
    for name in ("hubspot", "shopify", "mailchimp", "files"):
        assert f'id="setup-{name}"' in page
    form = as_owner.get(f"/admin/sites/{site.id}/connectors/new/hubspot").get_data(as_text=True)
    assert 'name="setting_access_token" type="password"' in form and "Private app access token" in form


def test_set_up_test_and_sync_a_connection(as_owner, site, hubspot, ctx):
    r = post(as_owner, f"/admin/sites/{site.id}/connectors/new/hubspot", setup_form(hubspot.url))
    assert r.status_code == 302
    conn = get_connection(site.id, "hubspot")
    assert conn.settings["api_url"] == hubspot.url and conn.schedule_minutes == 60
    assert TOKEN not in conn.secrets, "the token is encrypted at rest"
    assert conn.mapping["firstname"] == "given_name"
    page = as_owner.get(f"/admin/sites/{site.id}/connectors/hubspot/settings").get_data(as_text=True)
    assert TOKEN not in page and "Stored (encrypted)" in page

    r = post(as_owner, f"/admin/sites/{site.id}/connectors/hubspot/test", follow_redirects=True)
    assert b"Connection works: HubSpot contacts readable" in r.data

    r = post(as_owner, f"/admin/sites/{site.id}/connectors/hubspot/sync", follow_redirects=True)
    assert b"Sync queued" in r.data
    jobs.runner(ctx).wait(timeout=20)
    page = as_owner.get(f"/admin/sites/{site.id}/connectors/hubspot/settings").get_data(as_text=True)
    assert "status-succeeded" in page, "the background sync shows in the run log"


def test_saving_without_the_secret_keeps_it(as_owner, site, hubspot):
    post(as_owner, f"/admin/sites/{site.id}/connectors/new/hubspot", setup_form(hubspot.url))
    before = get_connection(site.id, "hubspot").secrets
    post(as_owner, f"/admin/sites/{site.id}/connectors/hubspot/settings", setup_form(hubspot.url, token="", schedule_minutes=""))
    conn = get_connection(site.id, "hubspot")
    assert conn.secrets and conn.secrets != "" and before
    assert conn.schedule_minutes is None, "an emptied schedule turns it off"
    r = post(as_owner, f"/admin/sites/{site.id}/connectors/hubspot/test", follow_redirects=True)
    assert b"Connection works" in r.data, "the stored token was kept"


def test_a_refused_token_is_explained_in_plain_words(as_owner, site, hubspot):
    post(as_owner, f"/admin/sites/{site.id}/connectors/new/hubspot", setup_form(hubspot.url, token="pat-wrong"))
    r = post(as_owner, f"/admin/sites/{site.id}/connectors/hubspot/test", follow_redirects=True)
    assert b"refused the credentials" in r.data and b"Check the token" in r.data


def test_bad_settings_are_named(as_owner, site, hubspot):
    r = post(as_owner, f"/admin/sites/{site.id}/connectors/new/hubspot", setup_form("ftp://nope"))
    assert r.status_code == 400 and b"Api_url: must be an http(s):// URL" in r.data
    r = post(as_owner, f"/admin/sites/{site.id}/connectors/new/hubspot", setup_form(hubspot.url, schedule_minutes="often"))
    assert r.status_code == 400 and b"whole number of minutes" in r.data
    assert get_connection(site.id, "hubspot") is None


def test_viewer_sees_but_cannot_change_connections(client, site, hubspot):
    make_user("viewer@shop.example", "viewer", [site.id])
    sign_in(client, "viewer@shop.example")
    assert client.get(f"/admin/sites/{site.id}/connectors").status_code == 200
    assert post(client, f"/admin/sites/{site.id}/connectors/new/hubspot", setup_form(hubspot.url)).status_code == 403
    assert get_connection(site.id, "hubspot") is None


def test_every_installed_connector_gets_a_settings_form(as_owner, site):
    from personalize.sync.connections import connector_catalog

    for name, cls in connector_catalog().classes.items():
        page = as_owner.get(f"/admin/sites/{site.id}/connectors/new/{name}").get_data(as_text=True)
        for setting in cls.settings:
            assert f'name="setting_{setting.name}"' in page, (name, setting.name)
            if setting.secret:
                assert f'name="setting_{setting.name}" type="password"' in page
