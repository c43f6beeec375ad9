"""docs/writing-connectors.md, followed word for word: its files are what `new-connector` writes,
and the package they make installs, is listed by `personalize plugins`, and syncs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from personalize.sync.scaffold import render
from personalize.sync.testing import ProviderServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-connectors.md"
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>[^ ]+) -->\n```\w*\n(?P<body>.*?)\n```\n", re.S)


def documented_files() -> dict[str, str]:
    return {m["path"]: m["body"] + "\n" for m in FILE_BLOCK.finditer(DOC.read_text())}


def test_the_guide_shows_exactly_what_new_connector_writes():
    assert documented_files() == render("acme_crm")


@pytest.fixture
def acme_api():
    contacts = [
        {"id": 7, "email": "kim@example.com", "first_name": "Kim", "stage": "customer", "updated_at": "2026-01-05T09:00:00"},
        {"id": 8, "email": "lou@example.com", "first_name": "Lou", "stage": "lead", "updated_at": "2026-01-06T09:00:00"},
    ]

    def page(request, match):
        assert request.headers["Authorization"] == "Bearer acme-secret"
        if request.args.get("page") == "2":
            return {"contacts": contacts[1:], "next_page": None}
        return {"contacts": contacts[:1], "next_page": "2"}

    with ProviderServer() as server:
        server.on("GET", "/me", lambda request, match: {"name": "Docs test"})
        server.on("GET", "/contacts", page)
        yield server
        server.verify()


def test_the_documented_connector_installs_is_listed_and_syncs(tmp_path, acme_api, monkeypatch):
    from click.testing import CliRunner

    from personalize.cli import cli
    from personalize.testing import TEST_DATABASE_ENV, fresh_database

    project = tmp_path / "personalize-acme-crm"
    for rel, body in documented_files().items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(body)
    # The guide says `pip install -e '.[test]'`; the test installs the same package into a folder of its
    # own and puts that on the path, so the shared environment stays as it was. Entry points are found the
    # same way. (The package's own tests are the scaffold's, run by test_new_connector_scaffolds_….)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(project)],
                   check=True, capture_output=True, timeout=120)
    monkeypatch.syspath_prepend(str(target))
    with fresh_database(tmp_path) as url:
        for name, value in {"PERSONALIZE_INSTANCE_PATH": str(tmp_path / "instance"), "PERSONALIZE_DATABASE_URL": url,
                            "PERSONALIZE_AUTO_MIGRATE": "true", "ACME_TOKEN": "acme-secret",
                            # the guide: a test server on this machine is reached once the operator trusts it
                            "PERSONALIZE_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv(TEST_DATABASE_ENV, raising=False)
        runner = CliRunner()

        def personalize(*args):
            result = runner.invoke(cli, list(args))
            assert result.exit_code == 0, result.output
            return result.stdout

        plugins = personalize("plugins")
        assert re.search(r"^acme_crm 0\.1\.0  \(package personalize-acme-crm\)\n    hooks: register_connectors$", plugins, re.M)
        assert "acme_crm  (crm, Acme Crm 0.1.0, API v1)" in personalize("connectors")
        assert "PERSONALIZE_OUTBOUND_ALLOWED_HOSTS=127.0.0.1" in DOC.read_text(), "the guide says how to reach a local test server"
        personalize("create-site", "My shop")
        personalize("connect", "My shop", "acme_crm", "--set", f"api_url={acme_api.url}", "--set", "api_token=@env:ACME_TOKEN")
        out = personalize("sync", "My shop", "acme_crm")
        assert "succeeded: 2 records read, 2 stored, 0 skipped" in out
        assert "acme_crm pull succeeded: in 2, out 2" in personalize("sync-log", "My shop")
