"""The attempt store's tables (SQLAlchemy 2 ORM declarations; the schema itself is made by the
Alembic migrations in ``simulator/records/migrations``, and a test checks the two agree).

Tables
------
``users``
    Trainees and instructors: ``account`` (on PostgreSQL also the person's login role name),
    ``display_name``, ``role``.
``credentials``
    The instructor password hash of an instructor (scrypt, see :mod:`simulator.records.security`).
    A table of its own so that on PostgreSQL trainees get no privilege on it at all.
``courses``, ``course_scenarios``, ``course_members``
    A course is an ordered list of scenario ids (``position`` 0, 1, ...) given to a group of users.
``writers``
    One row per process that writes attempts (host, pid, start time); a writer holds a lock that
    the operating system or the database server drops when the process dies (see
    :mod:`simulator.records.store`).
``attempts``
    One attempt: its ``owner`` (an account), the attempt record's ``header``, ``status``
    (``in_progress``, ``incomplete``, ``finished``), start and finish times, the writer that is
    writing it, and the count of its commands and events.
``attempt_commands``, ``attempt_events``
    The attempt record's commands (``t_s`` and the command's JSON form) and the simulation's
    events, numbered from 0 in the order they happened.
``scorecards``
    Every scorecard an attempt got: the ``original`` one at its end and each ``rescore`` with a
    newer scoring version, none ever overwritten.
``attempt_images``
    Acquired images kept on request, as PNG bytes.
``trusted_keys``
    Public keys of the stations whose exported result files this database accepts.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, CheckConstraint, DateTime, Double, ForeignKey, ForeignKeyConstraint, Index,
                        Integer, LargeBinary, MetaData, String, TypeDecorator)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names are spelled out so that the migrations and the ORM name them alike on every
#: backend (``compare_metadata`` then finds no difference).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ROLES = ("trainee", "instructor")
STATUSES = ("in_progress", "incomplete", "finished")
SCORECARD_KINDS = ("original", "rescore")
#: Longest account name: PostgreSQL's identifier limit (the account is a login role there).
ACCOUNT_MAX_CHARS = 63


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone: it is put back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store keeps UTC times only")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = metadata


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('trainee', 'instructor')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(ACCOUNT_MAX_CHARS), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Credential(Base):
    __tablename__ = "credentials"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CourseScenario(Base):
    __tablename__ = "course_scenarios"

    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    scenario_id: Mapped[str] = mapped_column(String(200))


class CourseMember(Base):
    __tablename__ = "course_members"

    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class Writer(Base):
    __tablename__ = "writers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (
        CheckConstraint("status IN ('in_progress', 'incomplete', 'finished')", name="status"),
        ForeignKeyConstraint(["owner"], ["users.account"], onupdate="CASCADE", name="fk_attempts_owner"),
        Index("ix_attempts_owner", "owner"),
        Index("ix_attempts_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_MAX_CHARS))
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id", ondelete="SET NULL"), nullable=True)
    scenario_id: Mapped[str] = mapped_column(String(200))
    header: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    writer_id: Mapped[int | None] = mapped_column(ForeignKey("writers.id", ondelete="SET NULL"), nullable=True)
    n_commands: Mapped[int] = mapped_column(Integer)
    n_events: Mapped[int] = mapped_column(Integer)
    #: Where an imported attempt came from (signing key id, the source's attempt id and start);
    #: unique, so one result file is imported once.
    origin: Mapped[str | None] = mapped_column(String(300), nullable=True, unique=True)


class AttemptCommand(Base):
    __tablename__ = "attempt_commands"

    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    t_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    command: Mapped[dict] = mapped_column(JSON)


class AttemptEvent(Base):
    __tablename__ = "attempt_events"

    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    t_s: Mapped[float] = mapped_column(Double)
    data: Mapped[dict] = mapped_column(JSON)


class ScorecardRow(Base):
    __tablename__ = "scorecards"
    __table_args__ = (
        CheckConstraint("kind IN ('original', 'rescore')", name="kind"),
        Index("ix_scorecards_attempt_id", "attempt_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    scoring_version: Mapped[int] = mapped_column(Integer)
    scorecard: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(ACCOUNT_MAX_CHARS), nullable=True)


class AttemptImage(Base):
    __tablename__ = "attempt_images"

    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    width_px: Mapped[int] = mapped_column(Integer)
    height_px: Mapped[int] = mapped_column(Integer)
    png: Mapped[bytes] = mapped_column(LargeBinary)


class TrustedKey(Base):
    __tablename__ = "trusted_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key_hex: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    added_by: Mapped[str | None] = mapped_column(String(ACCOUNT_MAX_CHARS), nullable=True)


#: The tables that hold one attempt's data (row security follows the attempt's owner).
ATTEMPT_CHILD_TABLES = ("attempt_commands", "attempt_events", "scorecards", "attempt_images")
