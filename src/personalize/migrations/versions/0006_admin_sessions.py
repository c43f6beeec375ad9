"""admin sessions kept on the server; admin ids never reused; site names no longer unique.

* ``admin_sessions``: one row per signed-in browser. The cookie carries a random token,
  the row only its SHA-256 hash; signing out, a password change or removing the account
  deletes rows, and a row past its idle or absolute lifetime is refused.
* ``admin_users`` is re-created on SQLite with ``AUTOINCREMENT``: SQLite otherwise hands
  the highest id out again once its account is removed, and a new account must never be
  taken for an old one. The rows are kept. (Ids of accounts removed before this
  migration may still come back once; no session from before it is accepted any more,
  so nothing can mistake them.) PostgreSQL's sequences never reuse an id.
* ``sites.name`` loses its unique constraint: refusing a name that another tenant's site
  already has told an admin which names exist on sites they may not see. The admin
  pages now refuse a duplicate only among the sites the admin can see.

On SQLite the two tables are re-created (copied, dropped, renamed). ``personalize.db.upgrade``
runs migrations with foreign keys off, because dropping a table while they are on
deletes every row that points at it (``ON DELETE CASCADE``): all of a site's data, or
every editor's site access. This migration refuses to run if they are on.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _refuse_sqlite_with_foreign_keys_on() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "migration 0006 re-creates tables on SQLite and must run with foreign keys off "
            "(dropping a table would delete the rows that point at it); run it with `personalize db upgrade`"
        )


def upgrade() -> None:
    _refuse_sqlite_with_foreign_keys_on()
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("admin_users", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass
    with op.batch_alter_table("sites") as batch_op:
        batch_op.drop_constraint("uq_sites_name", type_="unique")
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.Column("pending_secrets", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["admin_users.id"], name=op.f("fk_admin_sessions_user_id_admin_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_admin_sessions_token_hash")),
    )
    op.create_index(op.f("ix_admin_sessions_user_id"), "admin_sessions", ["user_id"], unique=False)


def downgrade() -> None:
    _refuse_sqlite_with_foreign_keys_on()
    op.drop_index(op.f("ix_admin_sessions_user_id"), table_name="admin_sessions")
    op.drop_table("admin_sessions")
    named_twice = op.get_bind().execute(sa.text("SELECT name FROM sites GROUP BY name HAVING count(*) > 1")).scalars().all()
    if named_twice:
        raise RuntimeError(f"cannot go back before 0006: several sites share a name ({', '.join(map(repr, named_twice))}); rename them first")
    with op.batch_alter_table("sites") as batch_op:
        batch_op.create_unique_constraint(op.f("uq_sites_name"), ["name"])
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("admin_users", recreate="always"):
            pass
