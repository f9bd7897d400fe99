"""The cases package asks storage repositories for its data: no SQL of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import cunan.cases

CASES_DIR = Path(cunan.cases.__file__).parent


def _imported_modules(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names


def test_no_cases_module_imports_sqlalchemy() -> None:
    offenders = {
        path.name: sorted(m for m in _imported_modules(path) if m.split(".")[0] == "sqlalchemy")
        for path in sorted(CASES_DIR.glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
    assert "service.py" in offenders  # the walk saw the package
