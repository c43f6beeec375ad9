"""journeys: count each site's test emails per day (JOURNEY_TEST_SENDS_PER_DAY).

A test email goes out at once, to any address an editor types: without a cap, an editor
(or a stolen session) could use the shop's SMTP server to send as many as it lets through.
The count lives on the site's journey settings row, with the UTC day it counts, so every
web process counts together and one conditional UPDATE both checks and counts.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("journey_settings") as batch:
        batch.add_column(sa.Column("test_sends_day", sa.String(length=10), nullable=False, server_default=""))
        batch.add_column(sa.Column("test_sends", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("journey_settings") as batch:
        batch.drop_column("test_sends")
        batch.drop_column("test_sends_day")
