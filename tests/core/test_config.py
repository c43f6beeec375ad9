"""Settings from the instance file and the environment, secrets from files (container secrets) or other variables."""

from __future__ import annotations

import re

import pytest

from personalize.app import create_app
from personalize.config import ConfigError, environment_variable_known, load_settings
from personalize.testing import app_config


def test_a_setting_is_read_from_the_file_its_file_variable_names(tmp_path):
    secret = tmp_path / "secret_key"
    secret.write_text("s3cr3t-from-a-container-secret\n")
    workers = tmp_path / "workers"
    workers.write_text("7")
    settings = load_settings(tmp_path, {"PERSONALIZE_SECRET_KEY_FILE": str(secret), "PERSONALIZE_WORKERS_FILE": str(workers)})
    assert settings["SECRET_KEY"] == "s3cr3t-from-a-container-secret"  # without the newline `echo` adds
    assert settings["WORKERS"] == 7


def test_a_setting_given_twice_or_from_a_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="both PERSONALIZE_SECRET_KEY and PERSONALIZE_SECRET_KEY_FILE"):
        load_settings(tmp_path, {"PERSONALIZE_SECRET_KEY": "a", "PERSONALIZE_SECRET_KEY_FILE": str(tmp_path / "k")})
    with pytest.raises(ConfigError, match=re.escape("PERSONALIZE_SECRET_KEY_FILE: cannot read")):
        load_settings(tmp_path, {"PERSONALIZE_SECRET_KEY_FILE": str(tmp_path / "nowhere")})


def test_instance_file_values_may_come_from_the_environment_or_a_file(tmp_path):
    (tmp_path / "encryption.key").write_text("fernet-ish-key\n")
    (tmp_path / "personalize.toml").write_text(
        'secret_key = {"$env" = "SHOP_SECRET"}\n'
        'encryption_key = {"$file" = "encryption.key"}\n'
        'threads = {"$env" = "SHOP_THREADS"}\n'
    )
    settings = load_settings(tmp_path, {"SHOP_SECRET": "from-env", "SHOP_THREADS": "3"})
    assert settings["SECRET_KEY"] == "from-env"
    assert settings["ENCRYPTION_KEY"] == "fernet-ish-key"
    assert settings["THREADS"] == 3, "a number from a variable is a number, as from PERSONALIZE_THREADS"
    with pytest.raises(ConfigError, match="secret_key: environment variable 'SHOP_SECRET' is not set"):
        load_settings(tmp_path, {})


def test_the_app_uses_a_secret_key_from_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "key"
    secret.write_text("the-shared-session-key")
    monkeypatch.setenv("PERSONALIZE_SECRET_KEY_FILE", str(secret))
    app = create_app(app_config(tmp_path, f"sqlite:///{tmp_path}/p.db"))
    assert app.config["SECRET_KEY"] == "the-shared-session-key"


@pytest.mark.parametrize(("variable", "known"), [
    ("PERSONALIZE_DATABASE_URL", True), ("PERSONALIZE_SECRET_KEY_FILE", True), ("PERSONALIZE_INSTANCE_PATH", True),
    ("PERSONALIZE_PLUGIN_SHOPIFY_APP_SECRET", True), ("PERSONALIZE_DATABASE_ULR", False), ("PERSONALIZE_PLUGIN_", False),
    ("PERSONALIZE_NOT_A_SETTING_FILE", False), ("DATABASE_URL", False),
])
def test_known_environment_variables(variable, known):
    assert environment_variable_known(variable) is known
