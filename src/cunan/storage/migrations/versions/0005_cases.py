"""Cases: grouped unknown sightings, their verification, and quiet faces (visitors, false alarms).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model_id", sa.String(length=100), nullable=False),
        sa.Column("village_id", sa.Integer(), nullable=True),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("first_seen_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("sightings_count", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("assigned_to", sa.Integer(), nullable=True),
        sa.Column("assigned_by", sa.String(length=100), nullable=True),
        sa.Column("assigned_at", _TS, nullable=True),
        sa.Column("deadline_at", _TS, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("outcome_by", sa.String(length=100), nullable=True),
        sa.Column("outcome_at", _TS, nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("visitor_until", _TS, nullable=True),
        sa.Column("escalation_reason", sa.Text(), nullable=True),
        sa.Column("closed_at", _TS, nullable=True),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'assigned', 'closed', 'merged')", name=op.f("ck_cases_status")
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('enrol', 'visitor', 'person', 'false_alarm', "
            "'escalate')",
            name=op.f("ck_cases_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["village_id"],
            ["villages.id"],
            name=op.f("fk_cases_village_id_villages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["assigned_to"],
            ["users.id"],
            name=op.f("fk_cases_assigned_to_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_cases_person_id_people"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["cases.id"],
            name=op.f("fk_cases_merged_into_id_cases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    op.create_index("ix_cases_status", "cases", ["status"])
    op.create_table(
        "case_sightings",
        sa.Column("sighting_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=True),
        sa.Column("camera_name", sa.String(length=200), nullable=False),
        sa.Column("seen_at", _TS, nullable=False),
        sa.Column("faces_used", sa.Integer(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=True),
        sa.Column("alerted", sa.Boolean(), nullable=False),
        sa.Column("suppressed_by", sa.String(length=16), nullable=True),
        sa.Column("added_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["sighting_id"],
            ["sightings.id"],
            name=op.f("fk_case_sightings_sighting_id_sightings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_sightings_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sighting_id", name=op.f("pk_case_sightings")),
    )
    op.create_index(op.f("ix_case_sightings_case_id"), "case_sightings", ["case_id"])
    op.create_table(
        "case_quiet_faces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model_id", sa.String(length=100), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.CheckConstraint(
            "kind IN ('visitor', 'negative')", name=op.f("ck_case_quiet_faces_kind")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_quiet_faces_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_quiet_faces")),
    )
    op.create_index(op.f("ix_case_quiet_faces_case_id"), "case_quiet_faces", ["case_id"])


def downgrade() -> None:
    op.drop_table("case_quiet_faces")
    op.drop_table("case_sightings")
    op.drop_table("cases")
