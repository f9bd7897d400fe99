"""Photos of signed consent forms (补录 on site: the paper the person signed), encrypted.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consents.id"],
            name=op.f("fk_consent_forms_consent_id_consents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_consent_forms_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_forms")),
        sa.UniqueConstraint("consent_id", name=op.f("uq_consent_forms_consent_id")),
        # Ids are never reused (as 0011 made every table the audit log names).
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_consent_forms_person_id"), "consent_forms", ["person_id"])
    op.create_index(op.f("ix_consent_forms_key_id"), "consent_forms", ["key_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_consent_forms_key_id"), table_name="consent_forms")
    op.drop_index(op.f("ix_consent_forms_person_id"), table_name="consent_forms")
    op.drop_table("consent_forms")
