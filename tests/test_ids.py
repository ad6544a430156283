"""Id formats (SPEC §1), including upstream's core.rs id tests."""

from __future__ import annotations

import re
import threading

import pytest

from datacon import make_item_id
from datacon.ids import new_conversation_id, new_response_id

CROCKFORD = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def test_conversation_ids() -> None:
    ids = {new_conversation_id() for _ in range(100)}
    assert len(ids) == 100
    for conversation_id in ids:
        assert re.fullmatch(r"conv_[0-9a-f]{50}", conversation_id)
        assert len(conversation_id) == 55


@pytest.mark.parametrize(
    ("item_type", "prefix"),
    [
        ("message", "msg"),
        ("reasoning", "rs"),
        ("mcp_call", "mcp"),
        ("mcp_list_tools", "mcpl"),
        ("function_call", "fc"),
        ("custom_type", "cus"),
        ("ab", "ab"),
        ("żółwik", "żół"),
        ("", "itm"),
    ],
)
def test_item_id_prefixes(item_type: str, prefix: str) -> None:
    item_id = make_item_id(item_type)
    assert item_id.startswith(prefix + "_")
    assert re.fullmatch(r"[0-9a-f]{50}", item_id[len(prefix) + 1 :])
    assert len(item_id) == len(prefix) + 51


def test_item_ids_are_unique() -> None:
    assert len({make_item_id("message") for _ in range(100)}) == 100


def test_response_ids_are_ulids_sorted_by_creation() -> None:
    ids = [new_response_id() for _ in range(2000)]
    assert all(CROCKFORD.fullmatch(i) for i in ids)
    assert len(set(ids)) == 2000
    assert ids == sorted(ids)  # monotonic even within one millisecond


def test_response_ids_unique_across_threads() -> None:
    results: list[list[str]] = []

    def mint() -> None:
        results.append([new_response_id() for _ in range(500)])

    threads = [threading.Thread(target=mint) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [i for batch in results for i in batch]
    assert len(set(everything)) == 4000
    for batch in results:
        assert batch == sorted(batch)
