"""admin and insights: which sites an editor or viewer may see.

The dashboard's numbers (holdout, attribution, lift) are read from the events and
orders tables, so test and learn needs no table of its own.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_site_access",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["admin_users.id"], name=op.f("fk_admin_site_access_user_id_admin_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_admin_site_access_site_id_sites"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "site_id", name=op.f("pk_admin_site_access")),
    )
    op.create_index(op.f("ix_admin_site_access_site_id"), "admin_site_access", ["site_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_admin_site_access_site_id"), table_name="admin_site_access")
    op.drop_table("admin_site_access")
