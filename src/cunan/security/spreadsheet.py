"""Cells written to CSV/XLSX files made inert: no formula from registry data ever runs in Excel."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

#: A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice and
#: WPS: ``=HYPERLINK(...)``, ``+cmd|...``, ``-1+1``, ``@SUM(...)``; tab and CR hide the sign.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> str:
    """A cell's text, with a leading apostrophe when a spreadsheet would read it as a formula.

    Every export writes its cells through this (CSV, XLSX, problem reports, and the HTTP
    API's downloads), so a name like ``=HYPERLINK("http://evil.example","点我")`` typed into a
    roster is shown as text, never run, whatever file it ends up in.
    """
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def neutralise_row(values: Iterable[object]) -> list[str]:
    return [neutralise_cell(v) for v in values]


class OutputPathError(ValueError):
    """An output file cannot be written where the user asked; checked before any work."""


#: What each table output can be written as (by the file name's suffix).
TABLE_SUFFIXES = (".csv", ".xlsx")


def check_output_file(path: Path, *, suffixes: tuple[str, ...] = TABLE_SUFFIXES) -> None:
    """Refuse an output path that cannot take the file: a directory, a missing or read-only
    folder, an unsupported type. Called before the work, so nothing is done for nothing."""
    if path.is_dir():
        raise OutputPathError(
            f"{path}: 是一个文件夹 (is a directory); give a file name such as "
            f"{path / ('people' + suffixes[0])}"
        )
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise OutputPathError(
            f"{path}: 不支持的文件类型 (unsupported file type {suffix or '(none)'}); use "
            + " or ".join(suffixes)
        )
    parent = path.parent
    if not parent.is_dir():
        raise OutputPathError(f"{path}: 文件夹不存在 (folder {parent} does not exist)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: 没有写权限 (cannot write in folder {parent})")
