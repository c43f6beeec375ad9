"""segments and scores: profile attributes, merges and signing secrets; rule segments,
their members and change outbox; computed scores; the contact policy and its log.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# 64-bit ids on PostgreSQL; SQLite only auto-increments INTEGER PRIMARY KEY
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "contact_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("per_day", sa.Integer(), nullable=True),
        sa.Column("per_week", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_contact_policies_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_policies")),
        sa.UniqueConstraint("site_id", "channel", name="uq_contact_policies_site_channel"),
    )
    op.create_table(
        "score_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_score_runs_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_runs")),
    )
    op.create_index(op.f("ix_score_runs_site_id"), "score_runs", ["site_id"], unique=False)
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("rebuilt_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_segments_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("site_id", "key", name="uq_segments_site_key"),
    )
    op.create_table(
        "signing_secrets",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_signing_secrets_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_signing_secrets")),
    )
    op.create_table(
        "contact_log",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", BIG_ID, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_contact_log_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_contact_log_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_log")),
    )
    op.create_index(
        "ix_contact_log_profile", "contact_log", ["profile_id", "channel", "sent_at"], unique=False
    )
    op.create_table(
        "profile_attributes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("vtype", sa.String(length=1), nullable=False),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("value_num", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_profile_attributes_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_profile_attributes_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_attributes")),
        sa.UniqueConstraint("profile_id", "name", name="uq_profile_attributes_profile_name"),
    )
    op.create_index(
        "ix_profile_attributes_site_name", "profile_attributes", ["site_id", "name"], unique=False
    )
    op.create_table(
        "profile_merges",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("kept_profile_id", BIG_ID, nullable=False),
        sa.Column("merged_profile_id", BIG_ID, nullable=False),
        sa.Column("signal", sa.String(length=32), nullable=False),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("merged_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["kept_profile_id"],
            ["profiles.id"],
            name=op.f("fk_profile_merges_kept_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_profile_merges_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_merges")),
    )
    op.create_index(
        op.f("ix_profile_merges_kept_profile_id"),
        "profile_merges",
        ["kept_profile_id"],
        unique=False,
    )
    op.create_index("ix_profile_merges_site_merged", "profile_merges", ["site_id", "merged_profile_id"], unique=False)
    op.create_table(
        "profile_scores",
        sa.Column("profile_id", BIG_ID, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("total_spent", sa.Float(), nullable=False),
        sa.Column("avg_order", sa.Float(), nullable=False),
        sa.Column("recency_days", sa.Float(), nullable=False),
        sa.Column("tenure_days", sa.Float(), nullable=False),
        sa.Column("r_score", sa.Integer(), nullable=False),
        sa.Column("f_score", sa.Integer(), nullable=False),
        sa.Column("m_score", sa.Integer(), nullable=False),
        sa.Column("rfm", sa.String(length=3), nullable=False),
        sa.Column("rfm_segment", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("attrition", sa.Float(), nullable=False),
        sa.Column("expected_orders", sa.Float(), nullable=False),
        sa.Column("potential", sa.Float(), nullable=False),
        sa.Column("cluster", sa.Integer(), nullable=False),
        sa.Column("cluster_name", sa.String(length=80), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_profile_scores_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_profile_scores_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_profile_scores")),
    )
    op.create_index("ix_profile_scores_site", "profile_scores", ["site_id"], unique=False)
    op.create_table(
        "segment_changes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", BIG_ID, nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_segment_changes_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_changes_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_segment_changes_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_changes")),
    )
    op.create_index(
        op.f("ix_segment_changes_profile_id"), "segment_changes", ["profile_id"], unique=False
    )
    op.create_index(
        "ix_segment_changes_site_id", "segment_changes", ["site_id", "id"], unique=False
    )
    op.create_table(
        "segment_members",
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", BIG_ID, nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_segment_members_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_members_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("segment_id", "profile_id", name=op.f("pk_segment_members")),
    )
    op.create_index("ix_segment_members_profile", "segment_members", ["profile_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_segment_members_profile", table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_index("ix_segment_changes_site_id", table_name="segment_changes")
    op.drop_index(op.f("ix_segment_changes_profile_id"), table_name="segment_changes")
    op.drop_table("segment_changes")
    op.drop_index("ix_profile_scores_site", table_name="profile_scores")
    op.drop_table("profile_scores")
    op.drop_index("ix_profile_merges_site_merged", table_name="profile_merges")
    op.drop_index(op.f("ix_profile_merges_kept_profile_id"), table_name="profile_merges")
    op.drop_table("profile_merges")
    op.drop_index("ix_profile_attributes_site_name", table_name="profile_attributes")
    op.drop_table("profile_attributes")
    op.drop_index("ix_contact_log_profile", table_name="contact_log")
    op.drop_table("contact_log")
    op.drop_table("signing_secrets")
    op.drop_table("segments")
    op.drop_index(op.f("ix_score_runs_site_id"), table_name="score_runs")
    op.drop_table("score_runs")
    op.drop_table("contact_policies")
