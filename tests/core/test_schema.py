"""Migrations and models agree, and the embedded default creates its database on start."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from personalize import schema  # noqa: F401  (every table)
from personalize.app import create_app
from personalize.db import current_revision, db


def test_migrations_match_the_models(app):
    with app.app_context(), db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), db.metadata)
    assert diff == [], f"models changed without a migration: {diff}"


def test_embedded_default_creates_sqlite_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("PERSONALIZE_DATABASE_URL", raising=False)
    app = create_app({"INSTANCE_PATH": str(tmp_path / "inst")})
    assert (tmp_path / "inst" / "personalize.db").exists()
    assert current_revision(app) is not None
    assert app.test_client().get("/api/v1/health").json == {"status": "ok", "database": "ok"}


def test_settings_from_instance_file_and_environment(tmp_path, monkeypatch):
    inst = tmp_path / "inst"
    inst.mkdir()
    (inst / "personalize.toml").write_text('max_events_per_batch = 20\nrecommendation_limit_max = 12\n')
    monkeypatch.setenv("PERSONALIZE_RECOMMENDATION_LIMIT_MAX", "30")
    app = create_app({"INSTANCE_PATH": str(inst)})
    assert app.config["MAX_EVENTS_PER_BATCH"] == 20
    assert app.config["RECOMMENDATION_LIMIT_MAX"] == 30, "the environment wins over the file"


def test_bad_settings_are_named(tmp_path, monkeypatch):
    import pytest

    from personalize.config import ConfigError

    inst = tmp_path / "inst"
    inst.mkdir()
    (inst / "personalize.toml").write_text('max_events = 20\n')
    with pytest.raises(ConfigError, match="unknown setting 'max_events'"):
        create_app({"INSTANCE_PATH": str(inst)})
    (inst / "personalize.toml").write_text("")
    monkeypatch.setenv("PERSONALIZE_MAX_EVENTS_PER_BATCH", "lots")
    with pytest.raises(ConfigError, match="PERSONALIZE_MAX_EVENTS_PER_BATCH must be a number"):
        create_app({"INSTANCE_PATH": str(inst)})


def test_secret_key_persists_across_restarts(tmp_path):
    a = create_app({"INSTANCE_PATH": str(tmp_path)})
    b = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert a.config["SECRET_KEY"] == b.config["SECRET_KEY"] and len(a.config["SECRET_KEY"]) >= 32
