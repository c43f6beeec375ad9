"""profiles: the key the holdout and the experiments' arms are decided by.

Until now a request was put in the holdout or an arm by whatever identifier it carried: the
widget's visitor id on a page, the email or customer id on a server's request. One person could
so be in two groups. ``assignment_key`` is set once, when a profile is created, from the identity
it was created by (see :func:`personalize.profiles.identity.assignment_key`), and every request
that reaches the profile is decided by it.

Existing profiles get the same key a new one would have: their first widget visitor id (so a
widget visitor stays in the group they were in), else ``email:<address>`` (trimmed, lower-cased),
else ``customer_id:<id>``, else ``<kind>:<id>`` of their first other identity. A profile with no
identity at all (no request can reach it) keeps none.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_FIRST = ("(SELECT {value} FROM identities i WHERE i.profile_id = profiles.id{kind} "
          "ORDER BY i.id LIMIT 1)")


def upgrade() -> None:
    op.add_column("profiles", sa.Column("assignment_key", sa.String(length=360), nullable=True))
    steps = [
        _FIRST.format(value="i.value", kind=" AND i.kind = 'visitor'"),
        _FIRST.format(value="'email:' || lower(trim(i.value))", kind=" AND i.kind = 'email'"),
        "'email:' || lower(trim(profiles.email))",
        _FIRST.format(value="'customer_id:' || i.value", kind=" AND i.kind = 'customer_id'"),
        "'customer_id:' || profiles.customer_id",
        _FIRST.format(value="i.kind || ':' || i.value", kind=""),
    ]
    for found in steps:  # the first that gives a key wins (each step fills only the rows still without one)
        op.execute(f"UPDATE profiles SET assignment_key = {found} WHERE assignment_key IS NULL")


def downgrade() -> None:
    op.drop_column("profiles", "assignment_key")  # SQLite 3.35+ drops a column in place (no table copy)
