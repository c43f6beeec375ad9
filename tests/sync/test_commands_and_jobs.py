"""The sync commands as an operator runs them, the job registry and the scheduler, and the connector hook."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from personalize.cli import cli


def contacts_folder(root, n=3):
    """``exports`` with a contacts file, inside ``root`` (a site's files folder)."""
    folder = Path(root) / "exports"
    folder.mkdir(parents=True)
    with (folder / "contacts.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "email", "plan"])
        for i in range(n):
            writer.writerow([str(i), f"c{i}@example.com", "gold"])
    return folder


def ok(result):
    assert result.exit_code == 0, result.output
    return result.output


def files_folder_of(output: str) -> Path:
    """The site's files folder, as `personalize connect … files` tells the operator."""
    return Path(re.search(r"files folder of this site: (\S+)", output).group(1))


def test_connect_sync_and_read_the_log_from_the_command_line(runner, tmp_path):
    ok(runner.invoke(cli, ["create-site", "CLI shop"]))
    out = ok(runner.invoke(cli, ["connectors"]))
    for name in ("files", "shopify", "hubspot", "mailchimp"):
        assert f"\n{name}  (" in "\n" + out
    assert "API 2026-01" in out and "access_token (secret)" in out
    out = ok(runner.invoke(cli, ["connect", "CLI shop", "files", "--set", "folder=exports", "--schedule", "60"]))
    root = files_folder_of(out)
    assert f"folder: put the files in {root / 'exports'}" in out
    contacts_folder(root)
    result = runner.invoke(cli, ["sync", "CLI shop", "files"])
    out = ok(result)
    assert "succeeded: 3 records read, 3 stored, 0 skipped" in out
    assert "contacts: 3 records" in result.stderr, "progress goes to stderr"
    log = ok(runner.invoke(cli, ["sync-log", "CLI shop"]))
    assert " files pull succeeded: in 3, out 3, skipped 0" in log
    listing = ok(runner.invoke(cli, ["connections", "CLI shop"]))
    assert "files  (files, every 60 min; last sync succeeded" in listing


def test_secrets_come_from_the_environment_and_are_never_printed(runner, monkeypatch):
    ok(runner.invoke(cli, ["create-site", "Secret shop"]))
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-na1-very-secret")
    out = ok(runner.invoke(cli, ["connect", "Secret shop", "hubspot", "--set", "access_token=@env:HUBSPOT_TOKEN"]))
    assert "pat-na1-very-secret" not in out and "access_token = (set)" in out
    listing = ok(runner.invoke(cli, ["connections", "Secret shop"]))
    assert "pat-na1-very-secret" not in listing and "access_token=(set)" in listing
    refused = runner.invoke(cli, ["connect", "Secret shop", "mailchimp", "--set", "list_id=abc"], input="")
    assert refused.exit_code == 1 and "api_key: is required; pass --set api_key=@env:VARIABLE" in refused.output


def test_sync_of_an_unknown_connection_or_stream_is_a_clear_error(runner, tmp_path):
    ok(runner.invoke(cli, ["create-site", "Shop"]))
    result = runner.invoke(cli, ["sync", "Shop", "nope"])
    assert result.exit_code == 1 and "has no connection 'nope'" in result.output
    contacts_folder(files_folder_of(ok(runner.invoke(cli, ["connect", "Shop", "files", "--set", "folder=exports"]))))
    result = runner.invoke(cli, ["sync", "Shop", "files", "--stream", "invoices"])
    assert result.exit_code == 1 and "has no stream 'invoices'" in result.output


def test_a_failed_sync_exits_non_zero(runner, tmp_path):
    ok(runner.invoke(cli, ["create-site", "Shop"]))
    ok(runner.invoke(cli, ["connect", "Shop", "files", "--set", "folder=missing"]))
    result = runner.invoke(cli, ["sync", "Shop", "files"])
    assert result.exit_code == 1 and "settings problem" in result.output


def test_jobs_run_in_the_background_and_in_the_foreground_through_one_registry(app, ctx, tmp_path):
    from personalize import jobs
    from personalize.sites import create_site
    from personalize.sync.connections import save_connection, site_files_root

    site, _ = create_site("Jobs shop")
    contacts_folder(site_files_root(site.id))
    save_connection(site.id, "files", {"folder": "exports"}, schedule_minutes=30)
    background = jobs.submit("sync", site_id=site.id, connection="files", trigger="admin").result(timeout=30)
    assert background["status"] == "succeeded" and background["trigger"] == "admin"
    foreground = jobs.run("sync", site_id=site.id, connection="files", trigger="cli")
    assert foreground["status"] == "succeeded" and foreground["records_in"] == 0
    with pytest.raises(KeyError, match="no job 'nope'"):
        jobs.submit("nope")


def test_a_job_registered_first_does_not_hide_the_core_jobs(monkeypatch):
    from personalize import jobs

    monkeypatch.setattr(jobs, "REGISTRY", {})
    monkeypatch.setattr(jobs, "_builtins_loaded", False)
    jobs.register("sync", lambda **kw: "mine")
    jobs.register("extra", lambda **kw: "extra")
    assert jobs.job_function("push") is not None, "core jobs still load after a plugin registered one"
    assert jobs.job_function("sync")() == "mine", "an earlier registration keeps its place"


def test_the_scheduler_submits_due_syncs_only(app, ctx, tmp_path):
    from datetime import timedelta

    from personalize import jobs
    from personalize.models import utcnow
    from personalize.sites import create_site
    from personalize.sync.connections import save_connection
    from personalize.sync.tasks import due_connections

    site, _ = create_site("Scheduled shop")
    save_connection(site.id, "files", {"folder": "exports"}, schedule_minutes=30)
    assert due_connections() == [(site.id, "files")]
    scheduler = jobs.Scheduler(app, tick=3600)
    futures = scheduler.run_once()
    for future in futures:
        future.result(timeout=30)
    assert due_connections() == []
    assert due_connections(utcnow() + timedelta(minutes=31)) == [(site.id, "files")]


def test_hook_register_connectors(tmp_path):
    from personalize.app import create_app
    from personalize.sync.connections import connector_catalog
    from personalize.testing import app_config

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tiny_crm.py").write_text(
        "from personalize import hookimpl\n"
        "from personalize.connectors import Connector, Stream\n\n"
        "class TinyCrm(Connector):\n"
        "    name = 'tiny_crm'\n    kind = 'crm'\n    streams = (Stream('contacts', 'contact'),)\n\n"
        "class Broken(Connector):\n    name = 'broken one!'\n    kind = 'fax'\n\n"
        "@hookimpl\ndef register_connectors():\n    return [TinyCrm, Broken]\n"
    )
    app = create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/c.db", PLUGINS_DIR=str(plugins)))
    with app.app_context():
        catalog = connector_catalog()
    assert "tiny_crm" in catalog.classes and "shopify" in catalog.classes
    assert any("kind must be one of" in e for e in catalog.errors) and "broken one!" not in catalog.classes


def test_first_party_connectors_pass_the_conformance_checks():
    from personalize_files import FilesConnector
    from personalize_hubspot import HubSpotConnector
    from personalize_mailchimp import MailchimpConnector
    from personalize_shopify import ShopifyConnector

    from personalize.sync.testing import check_connector

    for cls in (FilesConnector, ShopifyConnector, HubSpotConnector, MailchimpConnector):
        assert check_connector(cls) == [], cls.name
        schema = cls.settings_schema()
        secret = [name for name, field in schema["properties"].items() if field.get("writeOnly")]
        assert all(cls.setting(name).secret for name in secret)
    assert {c.kind for c in (FilesConnector, ShopifyConnector, HubSpotConnector, MailchimpConnector)} == {"any", "shop", "crm", "email"}


def test_new_connector_scaffolds_a_package_whose_test_passes(tmp_path, runner):
    target = tmp_path / "personalize-acme-crm"
    out = ok(runner.invoke(cli, ["new-connector", "acme_crm", "--directory", str(target)]))
    assert "Created" in out
    assert (target / "personalize_acme_crm" / "__init__.py").exists()
    again = runner.invoke(cli, ["new-connector", "acme_crm", "--directory", str(target)])
    assert again.exit_code == 1 and "not empty" in again.output
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target / "tests")],
                            cwd=target, capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "PYTHONPATH": str(target)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
