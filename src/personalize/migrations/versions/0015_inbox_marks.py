"""journeys: the catch-up skips what a living inbox heard.

Each event row says which process stored it (``events.stored_by``), and each process's journeys
inbox notes up to when it has handled everything that process stored (``journey_inbox_marks``):
the catch-up reads again only the events no mark covers (a process that died, an import).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("stored_by", sa.BigInteger(), nullable=True))
    op.create_table(
        "journey_inbox_marks",
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("handled_before", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token"),
    )


def downgrade() -> None:
    op.drop_table("journey_inbox_marks")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("stored_by")
