"""An index for a case's best sightings (most good faces, then the most recent).

Case views list the few best sightings of each case on a page; without this index every
view sorted all of a case's sightings, hundreds for a frequent stranger.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_case_sightings_best",
        "case_sightings",
        ["case_id", "faces_used", "seen_at", "sighting_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_case_sightings_best", table_name="case_sightings")
