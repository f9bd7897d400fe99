"""Statistics as an XLSX workbook: text cells made inert (no formula runs), numbers as numbers."""

from __future__ import annotations

import io
from collections.abc import Sequence

from cunan.security.spreadsheet import neutralise_cell


class Percent(float):
    """A fraction (0.25) shown as a percentage (25.0%) in the workbook."""


#: A cell: text, a whole number, a fraction (or :class:`Percent`), or empty.
Cell = str | int | float | None
#: A sheet: its title and its rows.
Sheet = tuple[str, Sequence[Sequence[Cell]]]


def statistics_workbook(sheets: Sequence[Sheet]) -> bytes:
    """The sheets as an XLSX file. Text goes through :func:`neutralise_cell` like every
    export (a camera name typed as ``=HYPERLINK(...)`` stays text) and is typed as a string;
    numbers stay numbers so the figures can be summed in Excel or WPS."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    workbook = openpyxl.Workbook(write_only=True)
    for title, rows in sheets:
        sheet = workbook.create_sheet(_sheet_title(title))
        for row in rows:
            cells = []
            for value in row:
                if value is None:
                    cell = WriteOnlyCell(sheet, value=None)
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    cell = WriteOnlyCell(sheet, value=value)
                    if isinstance(value, Percent):
                        cell.number_format = "0.0%"
                else:
                    cell = WriteOnlyCell(sheet, value=neutralise_cell(value))
                    # The explicit type keeps the cell plain text whatever it starts with.
                    cell.data_type = "s"
                cells.append(cell)
            sheet.append(cells)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _sheet_title(title: str) -> str:
    """A title Excel accepts: none of ``[]:*?/\\``, at most 31 characters."""
    cleaned = "".join(" " if ch in "[]:*?/\\" else ch for ch in title).strip()
    return (cleaned or "sheet")[:31]
