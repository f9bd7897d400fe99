"""Initial registry schema: places, people, consent, tenancies, face data, users.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "template_changes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum(
                "added",
                "removed",
                name="template_change",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_template_changes")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "villages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_villages")),
        sa.UniqueConstraint("name", name=op.f("uq_villages_name")),
    )
    op.create_table(
        "grid_areas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("village_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["village_id"],
            ["villages.id"],
            name=op.f("fk_grid_areas_village_id_villages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_areas")),
        sa.UniqueConstraint("village_id", "name", name=op.f("uq_grid_areas_village_id_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column(
            "role",
            sa.Enum(
                "admin",
                "staff",
                "landlord",
                "auditor",
                name="user_role",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("village_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["village_id"],
            ["villages.id"],
            name=op.f("fk_users_village_id_villages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "landlords",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("village_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_landlords_user_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["village_id"],
            ["villages.id"],
            name=op.f("fk_landlords_village_id_villages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_landlords")),
        sa.UniqueConstraint("user_id", name=op.f("uq_landlords_user_id")),
    )
    op.create_table(
        "houses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("village_id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("landlord_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_id"],
            ["grid_areas.id"],
            name=op.f("fk_houses_area_id_grid_areas"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["landlord_id"],
            ["landlords.id"],
            name=op.f("fk_houses_landlord_id_landlords"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["village_id"],
            ["villages.id"],
            name=op.f("fk_houses_village_id_villages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_houses")),
        sa.UniqueConstraint("village_id", "address", name=op.f("uq_houses_village_id_address")),
    )
    with op.batch_alter_table("houses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_houses_landlord_id"), ["landlord_id"], unique=False)

    op.create_table(
        "households",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("house_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("registration_number", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["house_id"],
            ["houses.id"],
            name=op.f("fk_households_house_id_houses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_households")),
        sa.UniqueConstraint("house_id", "name", name=op.f("uq_households_house_id_name")),
    )
    op.create_table(
        "rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("house_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.CheckConstraint("capacity >= 1", name=op.f("ck_rooms_capacity_positive")),
        sa.ForeignKeyConstraint(
            ["house_id"], ["houses.id"], name=op.f("fk_rooms_house_id_houses"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rooms")),
        sa.UniqueConstraint("house_id", "label", name=op.f("uq_rooms_house_id_label")),
    )
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("village_id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("id_number", sa.String(length=32), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column(
            "category",
            sa.Enum(
                "resident",
                "tenant",
                "staff",
                "visitor",
                name="person_category",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "departed",
                "archived",
                name="person_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("is_minor", sa.Boolean(), nullable=False),
        sa.Column("non_face_alternative", sa.Boolean(), nullable=False),
        sa.Column("non_face_note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_people_household_id_households"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["village_id"],
            ["villages.id"],
            name=op.f("fk_people_village_id_villages"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("village_id", "id_number", name=op.f("uq_people_village_id_id_number")),
    )
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_people_household_id"), ["household_id"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("collected_by", sa.String(length=200), nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "method",
            sa.Enum(
                "paper",
                "digital",
                name="consent_method",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("guardian_name", sa.String(length=200), nullable=True),
        sa.Column("guardian_relation", sa.String(length=50), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawal_recorded_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_consents_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_person_id"), ["person_id"], unique=False)

    op.create_table(
        "enrolment_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_enrolment_photos_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolment_photos")),
    )
    with op.batch_alter_table("enrolment_photos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrolment_photos_key_id"), ["key_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_enrolment_photos_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "tenancies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("landlord_id", sa.Integer(), nullable=True),
        sa.Column("move_in", sa.Date(), nullable=False),
        sa.Column("expected_end", sa.Date(), nullable=True),
        sa.Column("move_out", sa.Date(), nullable=True),
        sa.Column("reported_by", sa.String(length=200), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("move_out_reported_by", sa.String(length=200), nullable=True),
        sa.Column("move_out_reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "move_out IS NULL OR move_out >= move_in", name=op.f("ck_tenancies_move_out_after_in")
        ),
        sa.ForeignKeyConstraint(
            ["landlord_id"],
            ["landlords.id"],
            name=op.f("fk_tenancies_landlord_id_landlords"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_tenancies_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_tenancies_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenancies")),
    )
    with op.batch_alter_table("tenancies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tenancies_person_id"), ["person_id"], unique=False)
        batch_op.create_index(
            "ix_tenancies_room_dates", ["room_id", "move_in", "move_out"], unique=False
        )

    op.create_table(
        "face_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=True),
        sa.Column("model_id", sa.String(length=100), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "enrolment_photo",
                "captured_crop",
                name="template_source",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("quality_face_width_px", sa.Float(), nullable=True),
        sa.Column("quality_sharpness", sa.Float(), nullable=True),
        sa.Column("quality_frontalness", sa.Float(), nullable=True),
        sa.Column("quality_brightness", sa.Float(), nullable=True),
        sa.Column("detector_score", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consents.id"],
            name=op.f("fk_face_templates_consent_id_consents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_face_templates_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"],
            ["enrolment_photos.id"],
            name=op.f("fk_face_templates_photo_id_enrolment_photos"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_face_templates")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("face_templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_face_templates_key_id"), ["key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_face_templates_model_id"), ["model_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_face_templates_person_id"), ["person_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("face_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_face_templates_person_id"))
        batch_op.drop_index(batch_op.f("ix_face_templates_model_id"))
        batch_op.drop_index(batch_op.f("ix_face_templates_key_id"))

    op.drop_table("face_templates")
    with op.batch_alter_table("tenancies", schema=None) as batch_op:
        batch_op.drop_index("ix_tenancies_room_dates")
        batch_op.drop_index(batch_op.f("ix_tenancies_person_id"))

    op.drop_table("tenancies")
    with op.batch_alter_table("enrolment_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrolment_photos_person_id"))
        batch_op.drop_index(batch_op.f("ix_enrolment_photos_key_id"))

    op.drop_table("enrolment_photos")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_person_id"))

    op.drop_table("consents")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_people_household_id"))

    op.drop_table("people")
    op.drop_table("rooms")
    op.drop_table("households")
    with op.batch_alter_table("houses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_houses_landlord_id"))

    op.drop_table("houses")
    op.drop_table("landlords")
    op.drop_table("users")
    op.drop_table("grid_areas")
    op.drop_table("villages")
    op.drop_table("template_changes")
