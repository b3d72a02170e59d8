"""The first schema: users, credentials, courses, writers, attempts and their commands, events,
scorecards and images, trusted keys.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(63), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _when("created_at"),
        sa.CheckConstraint("role IN ('trainee', 'instructor')", name="ck_users_role"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("account", name="uq_users_account"),
    )
    op.create_table(
        "credentials",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        _when("changed_at"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_credentials_user_id", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name="pk_credentials"),
    )
    op.create_table(
        "courses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_courses"),
        sa.UniqueConstraint("name", name="uq_courses_name"),
    )
    op.create_table(
        "course_scenarios",
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("scenario_id", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"], name="fk_course_scenarios_course_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("course_id", "position", name="pk_course_scenarios"),
    )
    op.create_table(
        "course_members",
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"], name="fk_course_members_course_id", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_course_members_user_id", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("course_id", "user_id", name="pk_course_members"),
    )
    op.create_table(
        "writers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        _when("started_at"),
        _when("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_writers"),
    )
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(63), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=True),
        sa.Column("scenario_id", sa.String(200), nullable=False),
        sa.Column("header", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _when("started_at"),
        _when("finished_at", nullable=True),
        sa.Column("writer_id", sa.Integer(), nullable=True),
        sa.Column("n_commands", sa.Integer(), nullable=False),
        sa.Column("n_events", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(300), nullable=True),
        sa.CheckConstraint("status IN ('in_progress', 'incomplete', 'finished')", name="ck_attempts_status"),
        sa.ForeignKeyConstraint(["owner"], ["users.account"], name="fk_attempts_owner", onupdate="CASCADE"),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"], name="fk_attempts_course_id", ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["writer_id"], ["writers.id"], name="fk_attempts_writer_id", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_attempts"),
        sa.UniqueConstraint("origin", name="uq_attempts_origin"),
    )
    op.create_index("ix_attempts_owner", "attempts", ["owner"])
    op.create_index("ix_attempts_status", "attempts", ["status"])
    op.create_table(
        "attempt_commands",
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("t_s", sa.Double(), nullable=True),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["attempts.id"], name="fk_attempt_commands_attempt_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("attempt_id", "seq", name="pk_attempt_commands"),
    )
    op.create_table(
        "attempt_events",
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("t_s", sa.Double(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["attempts.id"], name="fk_attempt_events_attempt_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("attempt_id", "seq", name="pk_attempt_events"),
    )
    op.create_table(
        "scorecards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scoring_version", sa.Integer(), nullable=False),
        sa.Column("scorecard", sa.JSON(), nullable=False),
        _when("created_at"),
        sa.Column("created_by", sa.String(63), nullable=True),
        sa.CheckConstraint("kind IN ('original', 'rescore')", name="ck_scorecards_kind"),
        sa.ForeignKeyConstraint(["attempt_id"], ["attempts.id"], name="fk_scorecards_attempt_id", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_scorecards"),
    )
    op.create_index("ix_scorecards_attempt_id", "scorecards", ["attempt_id"])
    op.create_table(
        "attempt_images",
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("width_px", sa.Integer(), nullable=False),
        sa.Column("height_px", sa.Integer(), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["attempts.id"], name="fk_attempt_images_attempt_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("attempt_id", "index", name="pk_attempt_images"),
    )
    op.create_table(
        "trusted_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("public_key_hex", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        _when("added_at"),
        sa.Column("added_by", sa.String(63), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_trusted_keys"),
    )


def downgrade() -> None:
    for table in ("trusted_keys", "attempt_images", "scorecards", "attempt_events", "attempt_commands", "attempts",
                  "writers", "course_members", "course_scenarios", "courses", "credentials", "users"):
        op.drop_table(table)
