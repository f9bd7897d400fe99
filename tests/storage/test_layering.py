"""Duties, stats, audit, notify, leases and the pipeline store build no SQL of their own."""

from __future__ import annotations

import ast
from pathlib import Path

import cunan

SRC = Path(cunan.__file__).parent
MODULES = sorted(
    [
        *(SRC / "duties").glob("*.py"),
        *(SRC / "stats").glob("*.py"),
        *(SRC / "audit").glob("*.py"),
        *(SRC / "notify").glob("*.py"),
        *(SRC / "gas").glob("registry*.py"),
        SRC / "pipeline" / "leases.py",
        SRC / "pipeline" / "store.py",
    ]
)
#: Holding the caller's transaction is fine (``AuditLog.record(session=...)``); building
#: statements, reading tables or catching driver errors is the repositories' work.
ALLOWED = {"sqlalchemy.orm.Session"}


def _sqlalchemy_names(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_services_import_no_sql_building_names() -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(_sqlalchemy_names(path) - ALLOWED) for path in MODULES
    }
    assert {name: found for name, found in offenders.items() if found} == {}
    # The walk saw the modules whose queries moved.
    assert {
        "duties/departures.py",
        "stats/service.py",
        "pipeline/leases.py",
        "pipeline/store.py",
        "gas/registry.py",
        "gas/registry_import.py",
    } <= set(offenders)


def test_the_check_sees_sql_imports(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import sqlalchemy.exc\nfrom sqlalchemy import select\nfrom sqlalchemy.orm import Session\n"
    )
    assert _sqlalchemy_names(source) - ALLOWED == {"sqlalchemy.exc", "sqlalchemy.select"}
