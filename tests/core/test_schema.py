"""Migrations and models agree, and the embedded default creates its database on start."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from personalize import schema  # noqa: F401  (every table)
from personalize.app import create_app
from personalize.db import current_revision, db, upgrade


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


def _migrate(app, direction: str, revision: str) -> None:
    from alembic import command

    from personalize.db import alembic_config

    with app.app_context():
        cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
        with db.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            getattr(command, direction)(cfg, revision)


def _columns(app, table: str) -> set[str]:
    from sqlalchemy import inspect

    with app.app_context(), db.engine.connect() as connection:
        return {c["name"] for c in inspect(connection).get_columns(table)}


def test_propensity_migration_keeps_the_scores_both_ways(tmp_path):
    """0007 adds the propensity columns to stored scores (NULL until the next computation) and
    takes them away again, on SQLite and on PostgreSQL, without losing a score row."""
    from sqlalchemy import text

    from personalize.testing import app_config, fresh_database

    with fresh_database(tmp_path) as url:
        app = create_app(app_config(tmp_path, url, AUTO_MIGRATE=False))
        upgrade(app, "0006")  # with SQLite's foreign keys off, as 0006 needs
        with app.app_context(), db.engine.begin() as c:
            c.execute(text("INSERT INTO sites (id, name, public_key, allowed_origins, settings, created_at) "
                           "VALUES (1, 'Shop', 'pk_test', '[]', '{}', '2024-01-01 00:00:00')"))
            c.execute(text("INSERT INTO profiles (id, site_id, attributes, created_at, last_seen_at) "
                           "VALUES (5, 1, '{}', '2024-01-01 00:00:00', '2024-01-01 00:00:00')"))
            c.execute(text("INSERT INTO profile_scores VALUES (5, 1, 3, 120.5, 40.17, 12.0, 200.0, 4, 3, 3, '433', "
                           "'Loyal customers', 80.0, 0.2, 1.5, 60.0, 1, 'Frequent buyers', '2024-01-01 00:00:00')"))
        assert "order_propensity" not in _columns(app, "profile_scores")

        _migrate(app, "upgrade", "0007")
        assert {"order_propensity", "category_propensity"} <= _columns(app, "profile_scores")
        with app.app_context(), db.engine.begin() as c:
            assert c.execute(text("SELECT rfm, order_propensity, category_propensity FROM profile_scores")).all() == [("433", None, None)]
            c.execute(text("UPDATE profile_scores SET order_propensity = 0.42"))

        _migrate(app, "downgrade", "0006")
        assert not {"order_propensity", "category_propensity"} & _columns(app, "profile_scores")
        with app.app_context(), db.engine.connect() as c:
            assert c.execute(text("SELECT profile_id, rfm, total_spent FROM profile_scores")).all() == [(5, "433", 120.5)]

        _migrate(app, "upgrade", "head")
        assert {"order_propensity", "category_propensity"} <= _columns(app, "profile_scores")
        with app.app_context():
            db.engine.dispose()
