"""The plugin system: built-ins, entry points, a plugins folder, an allow-list, broken plugins."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from personalize import hookspecs
from personalize.app import create_app
from personalize.plugins import load_plugins
from personalize.testing import app_config

HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "personalize_spec"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugin-hooks.md"

GOOD = '''
from personalize import hookimpl

@hookimpl
def register_commands(cli):
    import click

    @cli.command("hello-plugin")
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from a plugin")
'''


def test_builtins_are_loaded_and_listed():
    registry = load_plugins()
    described = {p["name"]: p for p in registry.describe()}
    assert described["personalize.builtins.rules"]["source"] == "built-in"
    assert "modify_recommendations" in described["personalize.builtins.rules"]["hooks"]
    assert registry.errors == []


def test_plugins_folder_and_allow_list(tmp_path):
    (tmp_path / "greeter.py").write_text(GOOD)
    (tmp_path / "other.py").write_text(GOOD)
    names = {p["name"] for p in load_plugins(str(tmp_path)).describe()}
    assert {"greeter", "other"} <= names
    names = {p["name"] for p in load_plugins(str(tmp_path), allow_list="greeter").describe()}
    assert "greeter" in names and "other" not in names
    assert "personalize.builtins.rules" in names, "built-ins are never filtered out"


def test_broken_plugins_are_reported_by_name_and_skipped(tmp_path):
    (tmp_path / "crashes.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "typo.py").write_text("from personalize import hookimpl\n\n@hookimpl\ndef event_recieved(site_id, event):\n    pass\n")
    (tmp_path / "fine.py").write_text(GOOD)
    registry = load_plugins(str(tmp_path))
    errors = {e.name: e.error for e in registry.errors}
    assert "boom at import" in errors["crashes"]
    assert "event_recieved" in errors["typo"], "a hook that does not exist fails loudly"
    assert "fine" in {p["name"] for p in registry.describe()}


def test_server_starts_despite_a_broken_plugin(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "crashes.py").write_text("import no_such_module\n")
    app = create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db", PLUGINS_DIR=str(plugins)))
    assert app.test_client().get("/api/v1/health").status_code == 200
    assert [e.name for e in app.extensions["personalize.plugins"].errors] == ["crashes"]


def test_every_hook_is_documented():
    text = DOCS.read_text()
    documented = set(re.findall(r"^## `?(\w+)\(", text, flags=re.M))
    missing = [h for h in HOOKS if h not in documented]
    assert not missing, f"hooks missing from docs/plugin-hooks.md: {missing}"
    unknown = documented - set(HOOKS)
    assert not unknown, f"docs/plugin-hooks.md documents hooks that do not exist: {unknown}"


def test_every_hook_has_a_test():
    tests = "\n".join(p.read_text() for p in Path(__file__).resolve().parents[1].rglob("test_*.py"))
    missing = [h for h in HOOKS if f"def test_hook_{h}(" not in tests]
    assert not missing, f"hooks without a test_hook_<name>: {missing}"


def test_every_hook_has_a_docstring():
    for name in HOOKS:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


def test_hook_register_commands(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from personalize.cli import cli

    (tmp_path / "greeter.py").write_text(GOOD)
    registry = load_plugins(str(tmp_path))
    registry.hook.register_commands(cli=cli)
    try:
        result = CliRunner().invoke(cli, ["hello-plugin"])
        assert result.exit_code == 0 and "hello from a plugin" in result.output
    finally:
        cli.commands.pop("hello-plugin", None)


def test_hook_register_blueprints(tmp_path):
    (tmp_path / "pages.py").write_text(
        "from flask import Blueprint\nfrom personalize import hookimpl\n"
        "bp = Blueprint('pages_plugin', __name__)\n"
        "@bp.get('/-/hello')\ndef hello():\n    return {'hello': 'plugin'}\n"
        "@hookimpl\ndef register_blueprints():\n    return [bp]\n"
    )
    app = create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db", PLUGINS_DIR=str(tmp_path)))
    assert app.test_client().get("/-/hello").json == {"hello": "plugin"}


def test_hook_startup(tmp_path):
    (tmp_path / "boot.py").write_text(
        "from personalize import hookimpl\n@hookimpl\ndef startup(app):\n    app.config['BOOTED_BY_PLUGIN'] = app.config['VERSION']\n"
    )
    app = create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db", PLUGINS_DIR=str(tmp_path)))
    assert app.config["BOOTED_BY_PLUGIN"] == app.config["VERSION"]


def test_hook_model_trained(app, trained):
    from personalize import hookimpl
    from personalize.recommend.service import train_site

    seen = []

    class Listener:
        @hookimpl
        def model_trained(self, site_id, summary):
            seen.append((site_id, summary["n_items"], Path(summary["path"]).exists()))

    app.extensions["personalize.plugins"].pm.register(Listener())
    train_site(trained.id)
    assert seen == [(trained.id, 8, True)]


@pytest.mark.parametrize("name", HOOKS)
def test_hooks_are_called_with_keywords_only(name):
    spec = inspect.signature(getattr(hookspecs, name))
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in spec.parameters.values())


# -- plugin settings: [plugins.NAME] in personalize.toml, PERSONALIZE_PLUGIN_<NAME>_<KEY> ------------------

SETTINGS_PLUGIN = '''
from personalize import hookimpl

@hookimpl
def startup(app, plugin_config):
    app.config["PLUGIN_SEEN_{name}"] = plugin_config("{name}")
'''


def _settings_plugin(folder: Path, name: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(SETTINGS_PLUGIN.replace("{name}", name))


def test_hook_startup_hands_plugins_their_settings(tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    _settings_plugin(plugins, "crm_sync")
    (tmp_path / "crm.token").write_text("tok-from-a-file\n")
    (tmp_path / "personalize.toml").write_text(
        '[plugins.crm_sync]\n'
        'region = "eu"\n'
        'batch = 50\n'
        'api_key = {"$env" = "CRM_API_KEY"}\n'
        'token = {"$file" = "crm.token"}\n'
        'endpoints = [{"$env" = "CRM_PRIMARY"}, "https://backup.example"]\n'
    )
    monkeypatch.setenv("CRM_API_KEY", "key-from-the-environment")
    monkeypatch.setenv("CRM_PRIMARY", "https://primary.example")
    monkeypatch.setenv("PERSONALIZE_PLUGIN_CRM_SYNC_REGION", "us")  # the environment wins over the file
    monkeypatch.setenv("PERSONALIZE_PLUGIN_CRM_SYNC_TIMEOUT", "30")
    app = create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db", PLUGINS_DIR=str(plugins)))
    assert app.config["PLUGIN_SEEN_crm_sync"] == {
        "region": "us", "batch": 50, "api_key": "key-from-the-environment", "token": "tok-from-a-file",
        "endpoints": ["https://primary.example", "https://backup.example"], "timeout": "30",
    }


def test_a_plugin_without_settings_gets_an_empty_table_and_old_startup_hooks_still_work(tmp_path):
    plugins = tmp_path / "plugins"
    _settings_plugin(plugins, "quiet")
    (plugins / "old.py").write_text("from personalize import hookimpl\n@hookimpl\ndef startup(app):\n    app.config['OLD_STARTUP'] = True\n")
    app = create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db", PLUGINS_DIR=str(plugins)))
    assert app.config["PLUGIN_SEEN_quiet"] == {}
    assert app.config["OLD_STARTUP"] is True


def test_one_plugins_variables_are_not_another_plugins(tmp_path, monkeypatch):
    """``shop`` and ``shop_tools`` both exist: PERSONALIZE_PLUGIN_SHOP_TOOLS_TOKEN belongs to shop_tools only."""
    plugins = tmp_path / "plugins"
    _settings_plugin(plugins, "shop")
    _settings_plugin(plugins, "shop_tools")
    monkeypatch.setenv("PERSONALIZE_PLUGIN_SHOP_TOOLS_TOKEN", "t1")
    monkeypatch.setenv("PERSONALIZE_PLUGIN_SHOP_LIMIT", "3")
    app = create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db", PLUGINS_DIR=str(plugins)))
    assert app.config["PLUGIN_SEEN_shop"] == {"limit": "3"}
    assert app.config["PLUGIN_SEEN_shop_tools"] == {"token": "t1"}


@pytest.mark.parametrize(("table", "message"), [
    ('api_key = {"$env" = "NOT_SET_ANYWHERE_42"}', "plugins.crm_sync.api_key: environment variable 'NOT_SET_ANYWHERE_42' is not set"),
    ('token = {"$file" = "missing.token"}', "plugins.crm_sync.token: cannot read"),
    ('token = {"$file" = "x", "$env" = "Y"}', "plugins.crm_sync.token: a table with $-keys must be"),
])
def test_a_missing_plugin_secret_stops_the_start_naming_it(tmp_path, table, message):
    from personalize.config import ConfigError

    (tmp_path / "personalize.toml").write_text(f"[plugins.crm_sync]\n{table}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db"))


def test_plugins_settings_must_be_tables(tmp_path):
    from personalize.config import ConfigError

    (tmp_path / "personalize.toml").write_text('plugins = "crm_sync"\n')
    with pytest.raises(ConfigError, match=re.escape("[plugins.NAME]")):
        create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db"))


def test_settings_for_a_plugin_that_is_not_loaded_are_reported(tmp_path, caplog):
    (tmp_path / "personalize.toml").write_text('[plugins.crm_synk]\nregion = "eu"\n')
    with caplog.at_level("WARNING", logger="personalize.app"):
        create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db"))
    assert "plugin 'crm_synk', which is not loaded" in caplog.text


def test_personalize_plugins_lists_setting_names_never_values(runner, tmp_path, monkeypatch):
    from personalize.cli import cli

    plugins = tmp_path / "plugins"
    _settings_plugin(plugins, "crm_sync")
    monkeypatch.setenv("PERSONALIZE_PLUGINS_DIR", str(plugins))
    monkeypatch.setenv("PERSONALIZE_PLUGIN_CRM_SYNC_API_KEY", "very-secret-value")
    result = runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "settings: api_key" in result.output
    assert "very-secret-value" not in result.output
