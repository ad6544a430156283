"""Logic every backend shares: chain walking, extra-column values, record defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from datacon.context import current_extra_columns
from datacon.errors import InvalidChainError
from datacon.models import ResponseChain, StoredResponse
from datacon.schema import TableConfig

__all__ = ["extra_values", "walk_chain"]


def walk_chain(start: str, fetch: Callable[[str], StoredResponse | None], max_depth: int | None) -> ResponseChain:
    """Follow ``previous_response_id`` from ``start``; the result is oldest first.

    Stops silently at a missing response; keeps the newest ``max_depth`` responses;
    raises ``InvalidChainError`` when a response is met twice within that depth.
    ``fetch`` is a dict lookup for backends that fetched the chain in one query.
    """
    seen: set[str] = set()
    chain: list[StoredResponse] = []
    current: str | None = start
    while current is not None:
        if max_depth is not None and len(chain) >= max_depth:
            break
        if current in seen:
            raise InvalidChainError(f"cycle detected at response {current}")
        response = fetch(current)
        if response is None:
            break
        seen.add(current)
        chain.append(response)
        current = response.previous_response_id
    chain.reverse()
    return ResponseChain(responses=chain)


def extra_values(table: TableConfig, overrides: Mapping[str, Any] | None = None) -> list[tuple[str, Any]]:
    """Values for ``table``'s extra columns, sorted by name.

    For each column: the hook-supplied value (if not ``None``), else ``default_value``
    (if not ``None``), else ``None`` (SQL NULL; Redis leaves the field out).
    """
    if not table.extra_columns:
        return []
    supplied = current_extra_columns() if overrides is None else overrides
    values: list[tuple[str, Any]] = []
    for name, column in table.sorted_extra_columns():
        value = supplied.get(name)
        if value is None:
            value = column.default_value
        values.append((name, value))
    return values
