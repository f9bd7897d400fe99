"""Duties: departure reports and landlords' "please confirm" tasks.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "departure_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenancy_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("move_out", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("reported_by", sa.String(length=200), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenancy_id"],
            ["tenancies.id"],
            name=op.f("fk_departure_reports_tenancy_id_tenancies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_departure_reports_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_departure_reports")),
        sa.UniqueConstraint("tenancy_id", name=op.f("uq_departure_reports_tenancy_id")),
    )
    op.create_index(op.f("ix_departure_reports_person_id"), "departure_reports", ["person_id"])
    op.create_table(
        "confirmation_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenancy_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("landlord_id", sa.Integer(), nullable=True),
        sa.Column("not_seen_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("days_not_seen", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'closed')", name=op.f("ck_confirmation_tasks_status")
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('still_living', 'departed', 'sighted', "
            "'tenancy_ended')",
            name=op.f("ck_confirmation_tasks_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["tenancy_id"],
            ["tenancies.id"],
            name=op.f("fk_confirmation_tasks_tenancy_id_tenancies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_confirmation_tasks_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["landlord_id"],
            ["landlords.id"],
            name=op.f("fk_confirmation_tasks_landlord_id_landlords"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_confirmation_tasks")),
    )
    op.create_index(op.f("ix_confirmation_tasks_person_id"), "confirmation_tasks", ["person_id"])
    op.create_index(
        op.f("ix_confirmation_tasks_landlord_id"), "confirmation_tasks", ["landlord_id"]
    )
    op.create_index(
        "uq_confirmation_tasks_open_tenancy",
        "confirmation_tasks",
        ["tenancy_id"],
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index("uq_confirmation_tasks_open_tenancy", table_name="confirmation_tasks")
    op.drop_index(op.f("ix_confirmation_tasks_landlord_id"), table_name="confirmation_tasks")
    op.drop_index(op.f("ix_confirmation_tasks_person_id"), table_name="confirmation_tasks")
    op.drop_table("confirmation_tasks")
    op.drop_index(op.f("ix_departure_reports_person_id"), table_name="departure_reports")
    op.drop_table("departure_reports")
