"""Migration 0006 on a database with data: SQLite re-creates ``admin_users`` and ``sites``, and
nothing that points at them may be lost on the way (foreign keys cascade on delete)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from personalize.app import create_app
from personalize.db import current_revision, db, upgrade
from personalize.testing import app_config, fresh_database

NOW = datetime(2026, 1, 5, 12, 0, 0)


@pytest.fixture
def old_app(tmp_path):
    """An app whose database stands at 0005 with two shops' data, editors' site access and a removed account."""
    with fresh_database(tmp_path) as url:
        app = create_app(app_config(tmp_path, url, AUTO_MIGRATE=False))
        upgrade(app, "0005")
        with app.app_context():
            with db.engine.begin() as c:
                for uid, email, role in ((1, "owner@x.example", "owner"), (2, "ed@x.example", "editor"), (3, "gone@x.example", "viewer")):
                    c.execute(text("INSERT INTO admin_users (id, email, password_hash, role, created_at) VALUES (:i, :e, 'h', :r, :t)"),
                              {"i": uid, "e": email, "r": role, "t": NOW})
                for sid, name in ((1, "Shop one"), (2, "Shop two")):
                    c.execute(text("INSERT INTO sites (id, name, public_key, allowed_origins, settings, created_at, catalog_version) "
                                   "VALUES (:i, :n, :k, '[]', '{}', :t, 0)"), {"i": sid, "n": name, "k": f"pk_{sid}", "t": NOW})
                    c.execute(text("INSERT INTO api_keys (site_id, prefix, key_hash, label, created_at) VALUES (:s, 'sk_x', :h, '', :t)"),
                              {"s": sid, "h": f"{sid:064d}", "t": NOW})
                    c.execute(text("INSERT INTO profiles (site_id, attributes, created_at, last_seen_at) VALUES (:s, '{}', :t, :t)"),
                              {"s": sid, "t": NOW})
                c.execute(text("INSERT INTO admin_site_access (user_id, site_id, created_at) VALUES (2, 1, :t), (3, 2, :t)"), {"t": NOW})
                c.execute(text("DELETE FROM admin_users WHERE id = 3"))
                if c.dialect.name == "postgresql":  # the rows above name their ids; the sequences carry on after them
                    for table in ("admin_users", "sites"):
                        c.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 3)"))
            db.session.remove()
        yield app
        with app.app_context():
            db.engine.dispose()


def _count(table: str) -> int:
    return db.session.scalar(text(f"SELECT count(*) FROM {table}"))


def test_0006_keeps_every_row_and_ids_are_never_handed_out_again(old_app):
    with old_app.app_context():
        before = {t: _count(t) for t in ("admin_users", "admin_site_access", "sites", "api_keys", "profiles")}
        db.session.remove()
    assert before == {"admin_users": 2, "admin_site_access": 1, "sites": 2, "api_keys": 2, "profiles": 2}

    upgrade(old_app, "0006")
    assert current_revision(old_app) == "0006"
    with old_app.app_context():
        after = {t: _count(t) for t in before}
        assert after == before, "re-creating admin_users and sites must not cascade-delete what points at them"
        assert db.session.execute(text("SELECT user_id, site_id FROM admin_site_access")).all() == [(2, 1)]
        if db.engine.dialect.name == "sqlite":
            assert db.session.scalar(text("PRAGMA foreign_keys")) == 1, "foreign keys are on again once the migration ran"

        from personalize.admin.users import create_admin_user, remove_admin_user
        from personalize.models import AdminUser
        from personalize.sites import create_site

        newest = create_admin_user("new@x.example", "a long password", "owner")
        first_id = newest.id
        assert first_id > 2
        remove_admin_user(db.session.get(AdminUser, first_id))
        again = create_admin_user("again@x.example", "a long password", "owner")
        assert again.id > first_id, "a removed account's id is not handed to the next account"

        create_site("Shop one")  # the name of another site is no longer refused by the database
        assert db.session.scalar(text("SELECT count(*) FROM sites WHERE name = 'Shop one'")) == 2
