"""The fixed vocabularies stored in the registry tables."""

from __future__ import annotations

from enum import StrEnum


class PersonCategory(StrEnum):
    RESIDENT = "resident"  # 户籍
    TENANT = "tenant"  # 外来租住
    STAFF = "staff"
    VISITOR = "visitor"


class PersonStatus(StrEnum):
    ACTIVE = "active"
    DEPARTED = "departed"
    ARCHIVED = "archived"


class ConsentMethod(StrEnum):
    PAPER = "paper"
    DIGITAL = "digital"


class TemplateSource(StrEnum):
    ENROLMENT_PHOTO = "enrolment_photo"
    CAPTURED_CROP = "captured_crop"


class UserRole(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    LANDLORD = "landlord"
    AUDITOR = "auditor"
    #: A catering business's owner or safety officer: only their own business's gas alarms.
    BUSINESS = "business"
    #: A gas-alarm maintainer: only the businesses whose devices they maintain.
    MAINTAINER = "maintainer"


class TemplateChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
