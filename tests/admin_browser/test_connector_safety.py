"""What an editor sees when a connection's settings would send a request or read a file where they
must not: in a real browser, against the app over HTTP and a local server standing for an internal
service."""

from __future__ import annotations

import pytest

from personalize.admin.access import set_site_access
from personalize.admin.users import create_admin_user
from personalize.sync.connections import get_connection, save_connection, site_files_root
from personalize.sync.testing import ProviderServer

from .conftest import PASSWORD, sign_in, wait_for_text

pytestmark = pytest.mark.browser
TOKEN = "pat-na1-owners-token-browser"
MARKER = "INTERNAL-ANSWER-b41"


@pytest.fixture
def internal():
    server = ProviderServer()
    for method in ("GET", "POST"):
        server.on(method, "/.*", lambda req, m: (500, {"secret": MARKER}), required=False)
    with server:
        yield server


@pytest.fixture
def editor(ctx, site):
    user = create_admin_user("editor@shop.example", PASSWORD, "editor")
    set_site_access(user, {site.id})
    return "editor@shop.example"


def test_an_editor_cannot_send_the_owners_token_to_an_internal_address(app, admin_page, live_server, editor, site, internal):
    page, base = admin_page, live_server.url
    save_connection(site.id, "hubspot", {"access_token": TOKEN})
    app.config["OUTBOUND_ALLOWED_HOSTS"] = ""  # the server as shipped: it trusts nothing besides the providers
    sign_in(page, base, editor)
    page.goto(f"{base}/admin/sites/{site.id}/connectors/hubspot/settings")
    assert "Changing this removes the stored secrets" in page.locator("main").inner_text()
    for address, said in ((internal.url + "/steal", "127.0.0.1: use https://"),
                          ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is not a HubSpot API host; allowed: api.hubapi.com")):
        page.fill("#setting_api_url", address)
        page.click("#save-connection")
        wait_for_text(page, "[role=alert]", said)
    assert TOKEN not in page.content() and MARKER not in page.content()
    assert internal.requests == [], "no request, so no token, reached the internal server"
    assert get_connection(site.id, "hubspot").settings.get("api_url") is None


def test_an_address_the_operator_trusts_is_saved_without_the_old_token(app, admin_page, live_server, editor, site, internal):
    page, base = admin_page, live_server.url
    save_connection(site.id, "hubspot", {"access_token": TOKEN})
    sign_in(page, base, editor)
    page.goto(f"{base}/admin/sites/{site.id}/connectors/hubspot/settings")
    assert page.locator("#setting_access_token").get_attribute("placeholder").startswith("Stored (encrypted)")
    page.fill("#setting_api_url", internal.url)  # 127.0.0.1: trusted by the test server's OUTBOUND_ALLOWED_HOSTS
    page.click("#save-connection")
    wait_for_text(page, "main", "the stored secrets were removed: Private app access token (access_token)")
    assert page.locator("#setting_access_token").get_attribute("placeholder") == "Not set"
    page.click("#test-connection")
    wait_for_text(page, ".flash", "not set: Private app access token")
    assert MARKER not in page.content() and internal.requests == []


def test_a_files_folder_outside_the_sites_folder_is_refused_with_the_folder_named(admin_page, live_server, editor, site):
    page, base = admin_page, live_server.url
    root = site_files_root(site.id)
    sign_in(page, base, editor)
    page.goto(f"{base}/admin/sites/{site.id}/connectors/new/files")
    assert str(root) in page.locator("#files-root-folder").inner_text()
    page.fill("#setting_folder", "/etc")
    page.click("#save-connection")
    wait_for_text(page, "[role=alert]", "Folder: /etc is an absolute path; give a folder inside this site's files folder")
    assert str(root) in page.locator("[role=alert]").inner_text()
    (root / "exports").mkdir(parents=True)
    (root / "exports" / "contacts.csv").write_text("email\nann@example.com\n")
    page.fill("#setting_folder", "exports")
    page.click("#save-connection")
    page.click("#test-connection")
    wait_for_text(page, ".flash", f"Connection works: {root / 'exports'}: contacts.csv")
