"""The whole schema: imports every table module so ``Base.metadata`` knows all tables."""

from cunan.storage import (
    audit_tables,
    auth_tables,
    case_tables,
    duty_tables,
    gas_tables,
    notify_tables,
    pipeline_tables,
    tables,
)
from cunan.storage.tables import Base

#: Every table of the current schema (what the migrations must produce).
METADATA = Base.metadata

__all__ = [
    "METADATA",
    "audit_tables",
    "auth_tables",
    "case_tables",
    "duty_tables",
    "gas_tables",
    "notify_tables",
    "pipeline_tables",
    "tables",
]
