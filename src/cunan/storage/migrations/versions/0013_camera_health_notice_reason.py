"""Camera health as the camera processes report it; the public notice's legal reason.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "camera_health",
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("last_frame_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["camera_id"],
            ["cameras.id"],
            name=op.f("fk_camera_health_camera_id_cameras"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("camera_id", name=op.f("pk_camera_health")),
    )
    op.add_column("cameras", sa.Column("public_notice_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+ and PostgreSQL), not a batch rebuild: rebuilding
    # cameras on SQLite would write its schema anew and lose the AUTOINCREMENT that 0011
    # gave it (0011's upgrade then refuses the table it no longer recognises).
    op.execute("ALTER TABLE cameras DROP COLUMN public_notice_reason")
    op.drop_table("camera_health")
