"""Case events set aside by the consumer, with their error, so staff can list and replay them.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: The consumer name 0005-era code acknowledged set-aside events under (and nothing else).
_OLD_PARKED_CONSUMER = "cases.parked"
_UNKNOWN_REASON = "not recorded (set aside before migration 0006; see the log of that day)"


def upgrade() -> None:
    op.create_table(
        "case_parked_events",
        sa.Column("event_id", _BIGINT, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["event_outbox.id"],
            name=op.f("fk_case_parked_events_event_id_event_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_case_parked_events")),
    )
    # Events already set aside were only acknowledged under "cases.parked", without their
    # error: keep them listable and replayable, the reason marked as unknown.
    op.get_bind().execute(
        sa.text(
            "INSERT INTO case_parked_events (event_id, attempts, error, parked_at) "
            "SELECT event_id, NULL, :reason, acked_at FROM event_acks WHERE consumer = :old"
        ),
        {"reason": _UNKNOWN_REASON, "old": _OLD_PARKED_CONSUMER},
    )
    op.get_bind().execute(
        sa.text("DELETE FROM event_acks WHERE consumer = :old"), {"old": _OLD_PARKED_CONSUMER}
    )


def downgrade() -> None:
    # Back to the 0005 bookkeeping: an acknowledgement under "cases.parked" per parked event.
    op.get_bind().execute(
        sa.text(
            "INSERT INTO event_acks (consumer, event_id, acked_at) "
            "SELECT :old, event_id, parked_at FROM case_parked_events"
        ),
        {"old": _OLD_PARKED_CONSUMER},
    )
    op.drop_table("case_parked_events")
