"""Tables of journeys: definitions and their versions, each person's entries, the durable
state of every step an entry reaches, the site's channel settings and the trigger cursors."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db
from ..models import BigId, utcnow
from ..profiles import models as _profile_models  # noqa: F401  (their tables belong to the same schema)


class Journey(db.Model):
    """A journey of one site: a trigger, steps, a goal and a control group (docs/journeys.md).

    ``definition`` is the working copy the builder edits; ``version`` is the number of the
    published definition people enter (0: never published). Publishing stores the working
    copy as a new :class:`JourneyVersion`, which is never changed afterwards.
    """

    __tablename__ = "journeys"
    __table_args__ = (UniqueConstraint("site_id", "key", name="uq_journeys_site_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    #: draft (never active), active, paused (nobody enters, nobody moves on), stopped (everyone left)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    definition: Mapped[dict] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class JourneyVersion(db.Model):
    """A published definition; people in flight may still be on an older one."""

    __tablename__ = "journey_versions"
    __table_args__ = (UniqueConstraint("journey_id", "version", name="uq_journey_versions_journey_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class JourneyEnrollment(db.Model):
    """One entry of one person into a journey.

    ``dedupe`` makes an entry unique per trigger occurrence (or per person, for journeys
    entered once), and ``active_profile`` (the profile id while the entry runs, NULL after)
    keeps a person in a journey at most once at a time: both are unique per journey, so two
    processes that see the same trigger cannot both enter the person.
    """

    __tablename__ = "journey_enrollments"
    __table_args__ = (
        UniqueConstraint("journey_id", "dedupe", name="uq_journey_enrollments_journey_dedupe"),
        UniqueConstraint("journey_id", "active_profile", name="uq_journey_enrollments_journey_active"),
        Index("ix_journey_enrollments_profile_journey", "profile_id", "journey_id"),  # cool-downs and goals: these people in these journeys
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    dedupe: Mapped[str] = mapped_column(String(200))
    active_profile: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source: Mapped[str] = mapped_column(String(120))
    control: Mapped[bool] = mapped_column(Boolean, default=False)
    #: active, completed (went through every step), goal (reached the goal), exited (an exit rule or stop)
    status: Mapped[str] = mapped_column(String(16), default="active")
    exit_reason: Mapped[str] = mapped_column(String(120), default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    entered_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    goal_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class JourneyStep(db.Model):
    """The durable state of one step of one entry: what runs when, and what it did.

    A row is created when the entry reaches the step, with the time it is due. Runners
    claim due rows in batches (the claim moves ``due_at`` to the end of a lease, so a
    runner that dies leaves them due again), run them and mark them ``done`` together with
    the row of the next step, in one transaction. ``(enrollment_id, step_id)`` is unique:
    a step of an entry is reached once, and its action is attempted under one
    ``idempotency_key`` however often it is retried.
    """

    __tablename__ = "journey_steps"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id", name="uq_journey_steps_enrollment_step"),
        Index("ix_journey_steps_state_due", "state", "due_at"),
        Index("ix_journey_steps_journey_step", "journey_id", "step_id"),
        Index("ix_journey_steps_profile_state", "profile_id", "state"),  # waits for an event: these people's due steps
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # no foreign keys to sites and journeys: the entry's cascades (a deleted journey or site deletes its
    # entries, and their steps with them) cover them, and on PostgreSQL each such key would lock the one
    # journey and site row for every step written, which runners writing at once queue on
    site_id: Mapped[int] = mapped_column(Integer)
    journey_id: Mapped[int] = mapped_column(Integer)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("journey_enrollments.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    #: due (waiting for its time, or claimed until ``due_at``), done
    state: Mapped[str] = mapped_column(String(8), default="due")
    #: what it did once done: acted, waited, yes/no/a…, received, timed_out, control, skipped_cap, skipped_consent,
    #: skipped_recent, failed, exited, goal, cancelled
    outcome: Mapped[str] = mapped_column(String(24), default="")
    due_at: Mapped[datetime] = mapped_column(DateTime)
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: set when what the step waits for happened (an awaited event), so it runs now
    signal: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    entered_at: Mapped[datetime] = mapped_column(DateTime)
    done_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class JourneySettings(db.Model):
    """A site's journey channels: the SMTP server (password encrypted), sender, links and
    time zone, the consent rule, and the secret webhooks are signed with (encrypted)."""

    __tablename__ = "journey_settings"
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    #: smtp (send), or record (render each message and keep it on its step, send nothing: trying journeys out)
    delivery: Mapped[str] = mapped_column(String(8), default="smtp")
    smtp_host: Mapped[str] = mapped_column(String(255), default="")
    smtp_port: Mapped[int] = mapped_column(Integer, default=587)
    smtp_security: Mapped[str] = mapped_column(String(16), default="starttls")
    smtp_username: Mapped[str] = mapped_column(String(255), default="")
    #: Fernet-encrypted (personalize.sync.secrets), never shown back
    smtp_password: Mapped[str] = mapped_column(Text, default="")
    from_email: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="")
    shop_url: Mapped[str] = mapped_column(String(500), default="")
    server_url: Mapped[str] = mapped_column(String(500), default="")
    postal_address: Mapped[str] = mapped_column(String(500), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    consent: Mapped[str] = mapped_column(String(16), default="opt_in")
    webhook_secret: Mapped[str] = mapped_column(Text, default="")
    #: test emails sent on ``test_sends_day`` (UTC, YYYY-MM-DD): at most JOURNEY_TEST_SENDS_PER_DAY a day
    test_sends_day: Mapped[str] = mapped_column(String(10), default="", server_default="")
    test_sends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class JourneyCursor(db.Model):
    """How far the catch-up of a trigger source (events, segment changes) has read, by row id."""

    __tablename__ = "journey_cursors"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class JourneyInboxMark(db.Model):
    """Up to when a process's journeys inbox has handled every event that process stored
    (``events.stored_by`` = ``token``): the catch-up does not read those again."""

    __tablename__ = "journey_inbox_marks"
    token: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    handled_before: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


__all__ = ["Journey", "JourneyCursor", "JourneyInboxMark", "JourneyEnrollment", "JourneySettings", "JourneyStep", "JourneyVersion"]
