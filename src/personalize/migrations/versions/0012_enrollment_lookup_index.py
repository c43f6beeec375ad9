"""journeys: look a batch of people up by (profile, journey) and (profile, state).

The trigger path asks "which of these journeys has this batch of people entered lately?"
(cool-downs, goals) and "which of these people wait for this event?". With a profile-only
index beside the (journey, dedupe) and (state, due) ones, SQLite (which keeps no planner
statistics until it is told to) chose the journey or state index and read every entry of
each journey, every step that is due: each look-up grew with the tables, and events/s with
live journeys fell as they filled. Indexes that lead with the profile and hold the second
column win the planner's choice with or without statistics; the profile-only indexes are
their prefixes, so they go.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_journey_enrollments_profile_journey", "journey_enrollments", ["profile_id", "journey_id"], unique=False)
    op.drop_index("ix_journey_enrollments_profile", table_name="journey_enrollments")
    op.create_index("ix_journey_steps_profile_state", "journey_steps", ["profile_id", "state"], unique=False)
    op.drop_index("ix_journey_steps_profile", table_name="journey_steps")


def downgrade() -> None:
    op.create_index("ix_journey_enrollments_profile", "journey_enrollments", ["profile_id"], unique=False)
    op.drop_index("ix_journey_enrollments_profile_journey", table_name="journey_enrollments")
    op.create_index("ix_journey_steps_profile", "journey_steps", ["profile_id"], unique=False)
    op.drop_index("ix_journey_steps_profile_state", table_name="journey_steps")
