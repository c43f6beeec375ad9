"""purchase propensity on each customer's scores: the chance of an order in the next 30 days,
and the likeliest categories to be bought in them.

Both columns are NULL until the scores are computed again (``personalize scores``,
the admin's "recompute scores", or the scheduler).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("profile_scores") as batch:
        batch.add_column(sa.Column("order_propensity", sa.Float(), nullable=True))
        batch.add_column(sa.Column("category_propensity", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("profile_scores") as batch:
        batch.drop_column("category_propensity")
        batch.drop_column("order_propensity")
