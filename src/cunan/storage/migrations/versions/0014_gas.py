"""The gas-alarm module: businesses, contacts, device models, devices, messages, per-minute
readings, online history, alarms and their events, the HTTP push inbox; cases get a kind;
accounts and API tokens may have the roles business and maintainer.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_OLD_ROLES = ("admin", "staff", "landlord", "auditor")
_NEW_ROLES = (*_OLD_ROLES, "business", "maintainer")
#: The CHECK constraints 0001 and 0008 created for the role columns (``native_enum=False``).
_ROLE_CHECKS = (("users", "ck_users_user_role"), ("api_tokens", "ck_api_tokens_api_token_role"))


def upgrade() -> None:
    op.create_table(
        "gas_device_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("maker", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("power", sa.String(length=16), nullable=False),
        sa.Column("offline_after_s", sa.Integer(), nullable=False),
        sa.Column("service_months", sa.Integer(), nullable=True),
        sa.Column("low_lel", sa.Float(), nullable=True),
        sa.Column("high_lel", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('detector', 'controller', 'valve', 'fan')",
            name=op.f("ck_gas_device_models_kind"),
        ),
        sa.CheckConstraint(
            "power IN ('mains', 'battery')", name=op.f("ck_gas_device_models_power")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_device_models")),
        sa.UniqueConstraint("code", name=op.f("uq_gas_device_models_code")),
    )
    op.create_table(
        "gas_push_inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("delivery_id", sa.String(length=128), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_push_inbox")),
        sa.UniqueConstraint(
            "source", "delivery_id", name=op.f("uq_gas_push_inbox_source_delivery_id")
        ),
    )
    with op.batch_alter_table("gas_push_inbox", schema=None) as batch_op:
        batch_op.create_index("ix_gas_push_inbox_pending", ["processed_at", "id"], unique=False)

    op.create_table(
        "gas_businesses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("village_id", sa.Integer(), nullable=False),
        sa.Column("house_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("licence_no", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'closed')", name=op.f("ck_gas_businesses_status")),
        sa.ForeignKeyConstraint(
            ["house_id"],
            ["houses.id"],
            name=op.f("fk_gas_businesses_house_id_houses"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["village_id"],
            ["villages.id"],
            name=op.f("fk_gas_businesses_village_id_villages"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_businesses")),
        sa.UniqueConstraint("licence_no", name=op.f("uq_gas_businesses_licence_no")),
    )
    with op.batch_alter_table("gas_businesses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gas_businesses_village_id"), ["village_id"], unique=False
        )

    op.create_table(
        "gas_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "role IN ('owner', 'safety_officer', 'maintainer_a', 'maintainer_b')",
            name=op.f("ck_gas_contacts_role"),
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["gas_businesses.id"],
            name=op.f("fk_gas_contacts_business_id_gas_businesses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_gas_contacts_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_contacts")),
        sa.UniqueConstraint("business_id", "role", name=op.f("uq_gas_contacts_business_id_role")),
    )
    with op.batch_alter_table("gas_contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gas_contacts_business_id"), ["business_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_gas_contacts_user_id"), ["user_id"], unique=False)

    op.create_table(
        "gas_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("gas_type", sa.String(length=16), nullable=True),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("installed_on", sa.Date(), nullable=True),
        sa.Column("replacement_due", sa.Date(), nullable=True),
        sa.Column("low_lel", sa.Float(), nullable=True),
        sa.Column("high_lel", sa.Float(), nullable=True),
        sa.Column("credential_hash", sa.String(length=64), nullable=True),
        sa.Column("broker_hash", sa.String(length=200), nullable=True),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_device_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_lel", sa.Float(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "gas_type IS NULL OR gas_type IN ('natural_gas', 'lpg')",
            name=op.f("ck_gas_devices_gas_type"),
        ),
        sa.CheckConstraint(
            "kind IN ('detector', 'controller', 'valve', 'fan')", name=op.f("ck_gas_devices_kind")
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["gas_businesses.id"],
            name=op.f("fk_gas_devices_business_id_gas_businesses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["gas_device_models.id"],
            name=op.f("fk_gas_devices_model_id_gas_device_models"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_devices")),
        sa.UniqueConstraint("serial", name=op.f("uq_gas_devices_serial")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("gas_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gas_devices_business_id"), ["business_id"], unique=False
        )

    op.create_table(
        "gas_device_status",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('online', 'offline')", name=op.f("ck_gas_device_status_state")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["gas_devices.id"],
            name=op.f("fk_gas_device_status_device_id_gas_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_device_status")),
    )
    with op.batch_alter_table("gas_device_status", schema=None) as batch_op:
        batch_op.create_index("ix_gas_device_status_device_at", ["device_id", "at"], unique=False)

    op.create_table(
        "gas_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lel", sa.Float(), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=True),
        sa.Column("battery_pct", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["gas_devices.id"],
            name=op.f("fk_gas_messages_device_id_gas_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_messages")),
        sa.UniqueConstraint(
            "device_id", "message_id", name=op.f("uq_gas_messages_device_id_message_id")
        ),
    )
    with op.batch_alter_table("gas_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_gas_messages_device_time", ["device_id", "device_time"], unique=False
        )
        batch_op.create_index("ix_gas_messages_received_at", ["received_at"], unique=False)

    op.create_table(
        "gas_reading_minutes",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("lel_min", sa.Float(), nullable=False),
        sa.Column("lel_max", sa.Float(), nullable=False),
        sa.Column("lel_sum", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["gas_devices.id"],
            name=op.f("fk_gas_reading_minutes_device_id_gas_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "minute", name=op.f("pk_gas_reading_minutes")),
    )
    op.create_table(
        "gas_alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("alarm_type", sa.String(length=24), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updates", sa.Integer(), nullable=False),
        sa.Column("first_lel", sa.Float(), nullable=True),
        sa.Column("peak_lel", sa.Float(), nullable=True),
        sa.Column("last_lel", sa.Float(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=100), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("next_escalation_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "alarm_type IN ('low', 'high', 'fault', 'tamper', 'valve_closed', 'low_battery', "
            "'offline', 'replacement_overdue')",
            name=op.f("ck_gas_alarms_alarm_type"),
        ),
        sa.CheckConstraint("state IN ('active', 'cleared')", name=op.f("ck_gas_alarms_state")),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["gas_businesses.id"],
            name=op.f("fk_gas_alarms_business_id_gas_businesses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_gas_alarms_case_id_cases"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["gas_devices.id"],
            name=op.f("fk_gas_alarms_device_id_gas_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_alarms")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("gas_alarms", schema=None) as batch_op:
        batch_op.create_index(
            "ix_gas_alarms_business_state", ["business_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_gas_alarms_next_escalation_at"), ["next_escalation_at"], unique=False
        )
        batch_op.create_index(
            "uq_gas_alarms_active",
            ["device_id", "alarm_type"],
            unique=True,
            sqlite_where=sa.text("state = 'active'"),
            postgresql_where=sa.text("state = 'active'"),
        )

    op.create_table(
        "gas_alarm_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.Column("lel", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["gas_alarms.id"],
            name=op.f("fk_gas_alarm_events_alarm_id_gas_alarms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_alarm_events")),
    )
    with op.batch_alter_table("gas_alarm_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gas_alarm_events_alarm_id"), ["alarm_id"], unique=False
        )

    # Plain ADD COLUMN, not a batch rebuild: rebuilding cases on SQLite would lose the
    # AUTOINCREMENT it was created with (ids of cases are never reused).
    op.add_column(
        "cases", sa.Column("kind", sa.String(length=8), server_default="face", nullable=False)
    )
    op.add_column("cases", sa.Column("gas_stage", sa.String(length=16), nullable=True))
    op.create_table(
        "gas_case_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("from_stage", sa.String(length=16), nullable=True),
        sa.Column("to_stage", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_gas_case_steps_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_case_steps")),
    )
    with op.batch_alter_table("gas_case_steps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gas_case_steps_case_id"), ["case_id"], unique=False)
    op.create_table(
        "gas_case_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("added_by", sa.String(length=100), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_gas_case_photos_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gas_case_photos")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("gas_case_photos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gas_case_photos_case_id"), ["case_id"], unique=False)
    _set_roles(_NEW_ROLES)


def downgrade() -> None:
    bind = op.get_bind()
    for table, _ in _ROLE_CHECKS:
        kept = bind.exec_driver_sql(
            f"SELECT count(*) FROM {table} WHERE role IN ('business', 'maintainer')"
        ).scalar()
        if kept:
            raise RuntimeError(
                f"cannot downgrade below 0014: table {table} has {kept} row(s) with role "
                "business or maintainer, which the older schema refuses; disable and delete "
                "those accounts/tokens (or change their role) first"
            )
    _set_roles(_OLD_ROLES)
    with op.batch_alter_table("gas_case_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gas_case_photos_case_id"))
    op.drop_table("gas_case_photos")
    with op.batch_alter_table("gas_case_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gas_case_steps_case_id"))
    op.drop_table("gas_case_steps")
    # Plain DROP COLUMN (SQLite 3.35+ and PostgreSQL), not a batch rebuild (see upgrade).
    op.execute("ALTER TABLE cases DROP COLUMN gas_stage")
    op.execute("ALTER TABLE cases DROP COLUMN kind")

    with op.batch_alter_table("gas_alarm_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gas_alarm_events_alarm_id"))

    op.drop_table("gas_alarm_events")
    with op.batch_alter_table("gas_alarms", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_gas_alarms_active",
            sqlite_where=sa.text("state = 'active'"),
            postgresql_where=sa.text("state = 'active'"),
        )
        batch_op.drop_index(batch_op.f("ix_gas_alarms_next_escalation_at"))
        batch_op.drop_index("ix_gas_alarms_business_state")

    op.drop_table("gas_alarms")
    op.drop_table("gas_reading_minutes")
    with op.batch_alter_table("gas_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_gas_messages_received_at")
        batch_op.drop_index("ix_gas_messages_device_time")

    op.drop_table("gas_messages")
    with op.batch_alter_table("gas_device_status", schema=None) as batch_op:
        batch_op.drop_index("ix_gas_device_status_device_at")

    op.drop_table("gas_device_status")
    with op.batch_alter_table("gas_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gas_devices_business_id"))

    op.drop_table("gas_devices")
    with op.batch_alter_table("gas_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gas_contacts_user_id"))
        batch_op.drop_index(batch_op.f("ix_gas_contacts_business_id"))

    op.drop_table("gas_contacts")
    with op.batch_alter_table("gas_businesses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gas_businesses_village_id"))

    op.drop_table("gas_businesses")
    with op.batch_alter_table("gas_push_inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_gas_push_inbox_pending")

    op.drop_table("gas_push_inbox")
    op.drop_table("gas_device_models")


def _set_roles(roles: tuple[str, ...]) -> None:
    """Replace the role CHECK of users and api_tokens with one accepting ``roles``."""
    bind = op.get_bind()
    condition = "role IN (" + ", ".join(f"'{r}'" for r in roles) + ")"
    for table, name in _ROLE_CHECKS:
        if bind.dialect.name == "sqlite":
            _sqlite_replace_check(bind, table, name, condition)
        else:
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition})")


def _sqlite_replace_check(
    bind: sa.engine.Connection, table: str, name: str, condition: str
) -> None:
    """SQLite cannot alter a CHECK: rebuild the table (the documented 12 steps) from its own
    CREATE TABLE text with only the CHECK changed, so everything else stays exactly as it
    was: users' ``AUTOINCREMENT`` (0011), its high-water mark in ``sqlite_sequence`` (ids of
    deleted accounts never come back), indexes and triggers. Foreign keys must be off (as
    ``cunan.storage.migrate`` runs migrations): dropping users with them on would delete
    every session and unlink every landlord and gas contact."""
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(f"table {table}: rebuild needs PRAGMA foreign_keys=OFF")
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar()
    check = re.compile(rf"CONSTRAINT {name} CHECK \(role IN \([^)]*\)\)")
    head = re.compile(rf'^CREATE TABLE ("?){table}\1 \(')
    if sql is None or not check.search(sql) or not head.search(sql):
        raise RuntimeError(f"table {table}: unexpected schema, cannot change its role CHECK")
    new_sql = head.sub(
        f"CREATE TABLE _new_{table} (",
        check.sub(f"CONSTRAINT {name} CHECK ({condition})", sql, 1),
        1,
    )
    extras = [
        row[0]
        for row in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') "
            "AND sql IS NOT NULL",
            (table,),
        )
    ]
    seq = (
        bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).scalar()
        if "AUTOINCREMENT" in sql
        else None
    )
    bind.exec_driver_sql(new_sql)
    bind.exec_driver_sql(f"INSERT INTO _new_{table} SELECT * FROM {table}")
    bind.exec_driver_sql(f"DROP TABLE {table}")
    bind.exec_driver_sql(f"ALTER TABLE _new_{table} RENAME TO {table}")
    for statement in extras:
        bind.exec_driver_sql(statement)
    if seq is not None:
        # DROP TABLE forgot the old high-water mark; the copy only set max(id).
        bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
        bind.exec_driver_sql(
            "INSERT INTO sqlite_sequence (name, seq) VALUES (?, "
            f"max(?, (SELECT coalesce(max(id), 0) FROM {table})))",
            (table, seq),
        )
