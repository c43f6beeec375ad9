"""contact lists: the recommendation list a person was last shown in the email block or in the
fields pushed to an email provider / CRM (product ids in order, rec_id, version), so a click
on position n opens what was shown there.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "contact_lists",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("rec_id", sa.String(length=64), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_contact_lists_profile_id_profiles"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_contact_lists_site_id_sites"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_lists")),
    )
    with op.batch_alter_table("contact_lists", schema=None) as batch_op:
        batch_op.create_index("ix_contact_lists_profile_channel", ["profile_id", "channel"], unique=False)
        batch_op.create_index(batch_op.f("ix_contact_lists_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contact_lists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_lists_site_id"))
        batch_op.drop_index("ix_contact_lists_profile_channel")
    op.drop_table("contact_lists")
