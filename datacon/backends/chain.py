"""Walking a response chain by ``previous_response_id``, for backends that fetch one at a time."""

from __future__ import annotations

from collections.abc import Callable

from datacon.errors import InvalidChainError
from datacon.models import ResponseChain, StoredResponse

__all__ = ["walk_chain"]


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
