"""Values of a table's extra columns (the hook's value, else the column default, else NULL)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datacon.schema import TableConfig

__all__ = ["extra_values"]


def extra_values(table: TableConfig, supplied: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Values for ``table``'s extra columns, sorted by name.

    For each column: the value in ``supplied`` (the hook's, if not ``None``), else ``default_value``
    (if not ``None``), else ``None`` (SQL NULL; Redis leaves the field out).
    """
    if not table.extra_columns:
        return []
    values: list[tuple[str, Any]] = []
    for name, column in table.sorted_extra_columns():
        value = supplied.get(name)
        if value is None:
            value = column.default_value
        values.append((name, value))
    return values
