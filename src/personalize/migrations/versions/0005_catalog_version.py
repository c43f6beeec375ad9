"""catalogue version: a counter each site's product writes raise.

Web processes keep product cards (title, price, stock…) in memory, tagged with the
version they were read at, and compare it on every recommendation in the same query
that reads the visitor's history, so a changed product shows at once without the
cards being read each time.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sites", sa.Column("catalog_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("sites", "catalog_version")
