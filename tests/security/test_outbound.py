"""Outbound requests: where a connection's settings can make the server send a request, and a secret.

The tester's report: an editor pointed a HubSpot connection's API address at an internal server and
pressed *Test*; the server sent the owner's token there, followed a redirect, and showed the internal
answer's body in the error. These tests try that and its relatives — every spelling of an internal
address, each provider's hosts, the operator's setting, secrets bound to the address — at the unit
level, through ``save_connection``, through the admin pages and through the command line.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
from werkzeug.wrappers import Response

from personalize.sync.outbound import (
    OutboundPolicy,
    OutboundRefused,
    blocked_reason,
    ip_literal,
    parse_allowed_hosts,
)
from personalize.sync.testing import ProviderServer

TOKEN = "pat-na1-owners-secret-token"
MARKER = "INTERNAL-ANSWER-7c1f"

# --- the address classes -------------------------------------------------------------------------

BLOCKED = {
    "127.0.0.1": "loopback", "127.255.255.254": "loopback", "10.0.0.1": "private", "172.16.5.4": "private",
    "192.168.1.1": "private", "169.254.169.254": "link-local (cloud metadata)", "100.64.0.1": "shared (carrier-grade NAT)",
    "100.100.100.200": "shared (carrier-grade NAT)", "0.0.0.0": "unspecified", "224.0.0.1": "multicast",
    "239.255.255.250": "multicast", "255.255.255.255": "reserved", "240.0.0.1": "reserved", "192.0.0.192": "reserved (IETF protocol assignments)",
    "198.18.0.1": "reserved (benchmarking)", "192.0.2.1": "reserved (documentation)",
    "::1": "reserved (unspecified, loopback, IPv4-compatible)", "::": "reserved (unspecified, loopback, IPv4-compatible)",
    "::127.0.0.1": "reserved (unspecified, loopback, IPv4-compatible)",
    "fd00:ec2::254": "unique-local (private; cloud metadata)", "fc00::1": "unique-local (private; cloud metadata)",
    "fe80::1": "link-local", "fec0::1": "site-local", "ff02::1": "multicast", "2001:db8::1": "reserved (documentation)",
    "2001::1": "reserved (IETF protocol assignments, Teredo)",
    # IPv6 forms carrying an IPv4 address are judged by the address inside
    "::ffff:127.0.0.1": "loopback", "::ffff:169.254.169.254": "link-local (cloud metadata)", "::ffff:10.1.2.3": "private",
    "2002:7f00:1::1": "loopback", "64:ff9b::a9fe:a9fe": "link-local (cloud metadata)",
}
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:82a::200e", "::ffff:8.8.8.8", "2002:808:808::1"]


@pytest.mark.parametrize("address", sorted(BLOCKED))
def test_each_internal_address_class_is_refused(address):
    assert blocked_reason(ipaddress.ip_address(address)) == BLOCKED[address]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("spelling", ["2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "127.1", "017700000001", "127.0.1"])
def test_every_spelling_of_an_ipv4_address_is_read_as_the_resolver_reads_it(spelling):
    assert ip_literal(spelling) == ipaddress.IPv4Address("127.0.0.1") or ip_literal(spelling).is_loopback
    with pytest.raises(OutboundRefused, match="loopback address"):
        OutboundPolicy().check_url(f"https://{spelling}/")


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "https://[::ffff:127.0.0.1]:8080/",
    "https://[::ffff:7f00:1]/",
    "https://[0:0:0:0:0:ffff:a9fe:a9fe]/",
    "https://0/",
    "https://localhost/", "https://LOCALHOST./", "https://api.localhost/", "https://metadata/", "https://intranet/",
    "http://93.184.216.34/",  # plain http: only for trusted hosts
    "https://user:pass@93.184.216.34/", "https://93.184.216.34@127.0.0.1/",
    "ftp://93.184.216.34/", "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO",
])
def test_a_policy_for_any_public_host_refuses_internal_targets(url):
    with pytest.raises(OutboundRefused):
        OutboundPolicy().check_url(url)


def test_a_policy_for_any_public_host_allows_public_ones():
    for url in ("https://hooks.example.com/endpoint", "https://93.184.216.34:8443/x", "https://[2606:4700:4700::1111]/"):
        OutboundPolicy().check_url(url)


@pytest.mark.parametrize(("hosts", "provider", "ok", "refused"), [
    (("api.hubapi.com",), "HubSpot", ["https://api.hubapi.com/", "https://API.HubAPI.com./crm/v3"],
     ["https://api.hubapi.com.evil.example/", "https://evilapi.hubapi.com/", "https://x.api.hubapi.com/", "http://api.hubapi.com/",
      "https://api.hubapi.com:8443/", "https://api.hubapi.com@evil.example/", "https://127.0.0.1/", "https://api.example.com/"]),
    (("*.myshopify.com",), "Shopify", ["https://my-store.myshopify.com/admin/api/2026-01", "https://a1.myshopify.com/"],
     ["https://myshopify.com/", "https://a.b.myshopify.com/", "https://-x.myshopify.com/", "https://my-store.myshopify.com.evil.example/",
      "https://127.0.0.1:9#.myshopify.com/", "https://evil.example/#.myshopify.com", "https://my-store.myshopify.com:444/"]),
    (("*.api.mailchimp.com",), "Mailchimp", ["https://us20.api.mailchimp.com/3.0"],
     ["https://api.mailchimp.com/", "https://us20.api.mailchimp.com.evil.example/", "https://169.254.169.254/3.0"]),
])
def test_each_providers_hosts_and_nothing_else(hosts, provider, ok, refused):
    policy = OutboundPolicy(provider_hosts=hosts, provider=provider)
    for url in ok:
        policy.check_url(url)
    for url in refused:
        with pytest.raises(OutboundRefused):
            policy.check_url(url)
    with pytest.raises(OutboundRefused, match=f"api.example.com is not a {provider} API host; allowed: {re.escape(', '.join(hosts))}"):
        policy.check_url("https://api.example.com/")


def test_the_operators_setting_trusts_exactly_what_it_lists():
    rules = parse_allowed_hosts("crm-proxy.internal:8443, 127.0.0.1 *.test.internal [::1]:9000")
    assert [str(r) for r in rules] == ["crm-proxy.internal:8443", "127.0.0.1", "*.test.internal", "[::1]:9000"]
    policy = OutboundPolicy(provider_hosts=("api.hubapi.com",), provider="HubSpot", trusted=rules)
    for url in ("https://crm-proxy.internal:8443/", "http://127.0.0.1:5000/", "http://2130706433:5000/", "http://a.test.internal/",
                "http://[::1]:9000/"):
        policy.check_url(url)
    for url in ("https://crm-proxy.internal/", "http://localhost:5000/", "http://b.a.test.internal/", "http://[::1]:9001/"):
        with pytest.raises(OutboundRefused):
            policy.check_url(url)
    policy.check_addresses("crm-proxy.internal", 8443, ["10.0.0.7"])  # a trusted host may be private
    with pytest.raises(OutboundRefused):
        policy.check_addresses("crm-proxy.internal", 443, ["10.0.0.7"])
    assert parse_allowed_hosts("") == () and parse_allowed_hosts(["a.example", "b.example:1"])[1].port == 1
    for bad in ("*", "*:443", "host:port", "http://x.example", "a..b", "[::1]x", "x.example:70000"):
        with pytest.raises(ValueError, match="OUTBOUND_ALLOWED_HOSTS"):
            parse_allowed_hosts(bad)


def test_a_malformed_setting_stops_the_server_at_start(tmp_path):
    from personalize.app import create_app
    from personalize.config import ConfigError
    from personalize.testing import app_config

    for value, said in (("*", "would trust every host"), ("http://proxy.internal", "is not host:port")):
        with pytest.raises(ConfigError, match=f"OUTBOUND_ALLOWED_HOSTS: .*{re.escape(said)}"):
            create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/x.db", OUTBOUND_ALLOWED_HOSTS=value))


# --- through the product: save, test, sync ------------------------------------------------------


@pytest.fixture
def internal():
    """An internal service: it records what reaches it and answers with a marker in its body."""
    server = ProviderServer()
    for method in ("GET", "POST"):
        server.on(method, "/.*", lambda req, m: (500 if "fail" in req.path else 200, {"secret": MARKER, "auth": req.headers.get("Authorization", "")}),
                  required=False)
    with server:
        yield server


@pytest.fixture
def untrusting(app):
    """The server as shipped: OUTBOUND_ALLOWED_HOSTS empty."""
    app.config["OUTBOUND_ALLOWED_HOSTS"] = ""
    return app


def test_saving_an_address_outside_the_providers_hosts_is_refused_with_the_field_named(untrusting, ctx, site, internal):
    from personalize.sync.connections import ConnectionSettingsError, save_connection

    cases = [
        ("hubspot", {"access_token": TOKEN, "api_url": "https://api.example.com"}, "api_url",
         "api_url: api.example.com is not a HubSpot API host; allowed: api.hubapi.com"),
        ("hubspot", {"access_token": TOKEN, "api_url": internal.url + "/x"}, "api_url", "use https://"),
        ("hubspot", {"access_token": TOKEN, "api_url": "https://169.254.169.254/latest"}, "api_url", "not a HubSpot API host"),
        ("hubspot", {"access_token": TOKEN, "api_url": "https://[fd00:ec2::254]/"}, "api_url", "not a HubSpot API host"),
        ("hubspot", {"access_token": TOKEN, "api_url": "https://api.hubapi.com?x=1"}, "api_url", "without ? or #"),
        ("mailchimp", {"api_key": "k" * 20 + "-us20", "list_id": "l", "api_url": "https://2130706433/3.0"}, "api_url",
         "not a Mailchimp API host; allowed: *.api.mailchimp.com"),
        ("shopify", {"shop": "127.0.0.1:9#", "access_token": TOKEN}, "shop", "letters, digits and hyphens"),
        ("shopify", {"shop": "evil.example/x?", "access_token": TOKEN}, "shop", "letters, digits and hyphens"),
        ("shopify", {"shop": "my-store", "access_token": TOKEN, "api_url": "https://evil.example"}, "api_url", "not a Shopify API host"),
    ]
    for connector, settings, field, message in cases:
        with pytest.raises(ConnectionSettingsError, match=re.escape(message)) as info:
            save_connection(site.id, connector, settings)
        assert info.value.field == field
    save_connection(site.id, "shopify", {"shop": "My-Store", "access_token": TOKEN})
    save_connection(site.id, "shopify", {"shop": "my-store.myshopify.com", "access_token": TOKEN}, name="second")
    save_connection(site.id, "hubspot", {"access_token": TOKEN, "api_url": "https://api.hubapi.com"})
    assert internal.requests == []


def test_an_address_saved_while_trusted_is_refused_at_request_time_once_it_is_not(app, ctx, site, internal):
    """The guard is in the HTTP client, not only in the form: settings that were fine when saved (or got
    into the database another way) still cannot send a request where the policy does not allow."""
    from personalize.admin.connectors import check_connection
    from personalize.sync import engine
    from personalize.sync.connections import get_connection, save_connection

    save_connection(site.id, "hubspot", {"access_token": TOKEN, "api_url": internal.url})
    app.config["OUTBOUND_ALLOWED_HOSTS"] = ""
    ok, message = check_connection(get_connection(site.id, "hubspot"))
    assert not ok and "A setting is wrong" in message and "127.0.0.1: use https://" in message
    summary = engine.run_sync(site.id, "hubspot")
    assert summary["status"] == "failed" and summary["message"].startswith("settings problem:")
    assert "OUTBOUND_ALLOWED_HOSTS" in summary["message"]
    assert internal.requests == [], "nothing was sent, so no token left"


def test_the_testers_attack_through_the_admin_pages(untrusting, site, internal):
    """An editor who cannot see the HubSpot token changes only the API address and presses Test."""
    from admin.conftest import make_user, post, sign_in
    from personalize.sync.connections import get_connection, save_connection

    with untrusting.app_context():
        save_connection(site.id, "hubspot", {"access_token": TOKEN})
        make_user("editor@example.com", "editor", [site.id])
    client = untrusting.test_client()
    sign_in(client, "editor@example.com")
    port = internal.url.rsplit(":", 1)[1]
    for address, said in ((internal.url + "/steal", "Api_url: 127.0.0.1: use https://"),
                          (f"http://2130706433:{port}/", "Api_url: 127.0.0.1: use https://"),
                          ("https://169.254.169.254/", "Api_url: 169.254.169.254 is not a HubSpot API host; allowed: api.hubapi.com"),
                          ("https://[fd00:ec2::254]/", "Api_url: fd00:ec2::254 is not a HubSpot API host"),
                          ("https://[::ffff:127.0.0.1]/", "Api_url: ::ffff:7f00:1 is not a HubSpot API host"),
                          ("https://api.hubapi.com.evil.example/", "Api_url: api.hubapi.com.evil.example is not a HubSpot API host")):
        page = post(client, f"/admin/sites/{site.id}/connectors/hubspot/settings", {"setting_api_url": address, "enabled": "1"})
        assert page.status_code == 400, address
        assert said in page.get_data(as_text=True), address
    with untrusting.app_context():
        assert get_connection(site.id, "hubspot").settings.get("api_url") is None, "nothing was saved"
    answer = post(client, f"/admin/sites/{site.id}/connectors/hubspot/test", follow_redirects=True).get_data(as_text=True)
    assert TOKEN not in answer and MARKER not in answer
    assert internal.requests == []


def test_changing_the_address_clears_the_token_unless_a_new_one_comes_with_it(app, ctx, site, internal):
    from personalize.sync import engine
    from personalize.sync.connections import (
        cleared_secrets_notice,
        connection_settings,
        get_connection,
        public_settings,
        save_connection,
    )

    save_connection(site.id, "hubspot", {"access_token": TOKEN, "property_prefix": "pz_"})
    kept = save_connection(site.id, "hubspot", {"property_prefix": "seg_"})  # not an address: the token stays
    assert public_settings(kept)["access_token"] == "(set)" and cleared_secrets_notice(kept) == ""

    moved = save_connection(site.id, "hubspot", {"api_url": internal.url})
    assert public_settings(moved)["access_token"] == "(not set)"
    assert "access token (access_token)" in cleared_secrets_notice(moved) and "enter them again" in cleared_secrets_notice(moved)
    assert "access_token" not in connection_settings(get_connection(site.id, "hubspot"))
    summary = engine.run_sync(site.id, "hubspot")
    assert summary["status"] == "failed" and "not set: Private app access token (access_token)" in summary["message"]
    assert internal.requests == [], "the old token was not sent to the new address, nor was anything else"

    again = save_connection(site.id, "hubspot", {"api_url": "https://api.hubapi.com", "access_token": "pat-na1-new-token-for-hubspot"})
    assert public_settings(again)["access_token"] == "(set)" and cleared_secrets_notice(again) == ""


def test_secrets_are_not_used_when_the_address_changed_behind_the_forms_back(app, ctx, site, internal):
    """Settings changed without save_connection (a script, a restore of an old row): the stored token is
    bound to the address it was saved for, and is not handed to the connector."""
    from personalize.db import db
    from personalize.sync import engine
    from personalize.sync.connections import get_connection, save_connection

    save_connection(site.id, "hubspot", {"access_token": TOKEN, "api_url": "https://api.hubapi.com"})
    conn = get_connection(site.id, "hubspot")
    conn.settings = {**conn.settings, "api_url": internal.url}
    db.session.commit()
    summary = engine.run_sync(site.id, "hubspot")
    assert summary["status"] == "failed" and "not the one its secrets were saved for" in summary["message"]
    assert internal.requests == []


def test_the_admin_page_and_the_cli_say_the_secrets_were_cleared(app, site, internal, runner):
    from admin.conftest import make_user, post, sign_in
    from personalize.cli import cli
    from personalize.sync.connections import save_connection

    with app.app_context():
        save_connection(site.id, "hubspot", {"access_token": TOKEN})
        make_user("editor@example.com", "editor", [site.id])
    client = app.test_client()
    sign_in(client, "editor@example.com")
    form = client.get(f"/admin/sites/{site.id}/connectors/hubspot/settings").get_data(as_text=True)
    assert "Changing this removes the stored secrets" in form
    page = post(client, f"/admin/sites/{site.id}/connectors/hubspot/settings", {"setting_api_url": internal.url, "enabled": "1"},
                follow_redirects=True).get_data(as_text=True)
    assert "the stored secrets were removed: Private app access token (access_token)" in page and "enter them again" in page
    assert internal.requests == []

    assert runner.invoke(cli, ["create-site", "CLI shop"]).exit_code == 0
    assert runner.invoke(cli, ["connect", "CLI shop", "hubspot", "--set", f"access_token={TOKEN}"]).exit_code == 0
    moved = runner.invoke(cli, ["connect", "CLI shop", "hubspot", "--set", f"api_url={internal.url}"])
    assert moved.exit_code == 0, moved.output
    assert "access_token = (not set)" in moved.output and "the stored secrets were removed" in moved.stderr
    refused = runner.invoke(cli, ["connect", "CLI shop", "hubspot", "--set", "api_url=https://api.example.com"])
    assert refused.exit_code == 1 and "api_url: api.example.com is not a HubSpot API host; allowed: api.hubapi.com" in refused.output


def test_no_admin_message_or_run_log_repeats_an_answers_body(app, site, internal):
    """A trusted (test) server answering errors with a marker body: the marker reaches no page or log entry."""
    from admin.conftest import make_user, post, sign_in
    from personalize.sync import engine
    from personalize.sync.connections import save_connection

    with app.app_context():
        make_user("editor@example.com", "editor", [site.id])
        save_connection(site.id, "hubspot", {"access_token": TOKEN, "api_url": internal.url + "/fail"})
        save_connection(site.id, "mailchimp", {"api_key": "0123456789abcdef-us20", "list_id": "l1", "api_url": internal.url + "/3.0"})
        save_connection(site.id, "shopify", {"shop": "my-store", "access_token": TOKEN, "api_url": internal.url})
        internal.routes.insert(0, internal.routes[0].__class__("POST", re.compile("^/admin/api/.*$"),
                                                             lambda req, m: Response(f"<html>{MARKER}</html>", 200), False))
        summaries = [engine.run_sync(site.id, name, http_options={"max_retries": 0}) for name in ("hubspot", "mailchimp", "shopify")]
    client = app.test_client()
    sign_in(client, "editor@example.com")
    seen = [str(summaries)]
    for name in ("hubspot", "mailchimp", "shopify"):
        seen.append(post(client, f"/admin/sites/{site.id}/connectors/{name}/test", follow_redirects=True).get_data(as_text=True))
        seen.append(client.get(f"/admin/sites/{site.id}/connectors/{name}/settings").get_data(as_text=True))
    seen.append(client.get(f"/admin/sites/{site.id}/connectors").get_data(as_text=True))
    assert all(s["status"] == "failed" for s in summaries), summaries
    assert internal.requests, "the trusted test server was reached"
    assert not [s for s in seen if MARKER in s]
