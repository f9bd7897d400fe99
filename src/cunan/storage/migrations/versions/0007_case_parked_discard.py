"""Parked case events can be discarded: who, when and why stay on the parked record.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns only: a plain ALTER TABLE on both engines, existing rows stay parked.
    op.add_column(
        "case_parked_events", sa.Column("discarded_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "case_parked_events", sa.Column("discarded_by", sa.String(length=100), nullable=True)
    )
    op.add_column("case_parked_events", sa.Column("discard_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    # Discarded events become plain parked events again (listed, replayable); the audit
    # entries of their discarding remain.
    with op.batch_alter_table("case_parked_events") as batch:
        batch.drop_column("discard_reason")
        batch.drop_column("discarded_by")
        batch.drop_column("discarded_at")
