"""Conformance: ResponseStorage (SPEC §2), on every backend."""

from __future__ import annotations

import re
from datetime import timedelta, timezone

import pytest

from datacon import StoredResponse
from datacon.errors import ConflictError, InvalidChainError, InvalidInputError
from tests.conformance._util import at
from tests.support import Case


def _store(case: Case, prev: str | None = None, **fields: object) -> StoredResponse:
    response = StoredResponse.new(prev)
    for name, value in fields.items():
        setattr(response, name, value)
    case.responses.store_response(response)
    return response


def _chain_ids(case: Case, response_id: str, max_depth: int | None = None) -> list[str]:
    return [r.id for r in case.responses.get_response_chain(response_id, max_depth).responses]


def test_new_response_defaults() -> None:
    response = StoredResponse.new(None)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", response.id)
    assert response.previous_response_id is None
    assert response.input == []
    assert response.raw_response is None
    assert response.created_at.tzinfo is not None
    assert StoredResponse.new("prev").previous_response_id == "prev"


def test_store_returns_id_and_round_trips_every_field(case: Case) -> None:
    response = StoredResponse(
        id="resp_full",
        previous_response_id="resp_prev",
        input=[{"role": "user", "content": "Hello"}],
        created_at=at(0, micros=654321),
        safety_identifier="user-1",
        model="gpt-x",
        conversation_id="conv_1",
        raw_response={"output": [{"type": "message", "text": "hi"}], "usage": {"tokens": 3}},
    )
    assert case.responses.store_response(response) == "resp_full"
    got = case.responses.get_response("resp_full")
    assert got is not None
    assert got.id == "resp_full"
    assert got.previous_response_id == "resp_prev"
    assert got.input == response.input
    assert got.created_at == response.created_at
    assert got.safety_identifier == "user-1"
    assert got.model == (None if case.skipped("responses", "model") else "gpt-x")
    assert got.conversation_id == "conv_1"
    assert got.raw_response == response.raw_response


def test_defaults_round_trip(case: Case) -> None:
    response = _store(case)
    got = case.responses.get_response(response.id)
    assert got is not None
    assert got.input == []
    assert got.raw_response is None
    assert got.previous_response_id is None
    assert got.safety_identifier is None
    assert got.conversation_id is None


def test_created_at_is_normalised_to_utc(case: Case) -> None:
    plus_two = timezone(timedelta(hours=2))
    response = StoredResponse(id="resp_tz", created_at=at(0).astimezone(plus_two))
    case.responses.store_response(response)
    got = case.responses.get_response("resp_tz")
    assert got is not None
    assert got.created_at == at(0)
    assert got.created_at.utcoffset() == timedelta(0)


def test_naive_created_at_is_rejected(case: Case) -> None:
    response = StoredResponse(id="resp_naive")
    response.created_at = response.created_at.replace(tzinfo=None)
    with pytest.raises(InvalidInputError, match="timezone"):
        case.responses.store_response(response)
    assert case.responses.get_response("resp_naive") is None


def test_duplicate_response_conflicts_and_changes_nothing(case: Case) -> None:
    _store(case, id="resp_dup", model="first", input=["a"])
    with pytest.raises(ConflictError):
        _store(case, id="resp_dup", model="second", input=["b"])
    got = case.responses.get_response("resp_dup")
    assert got is not None
    assert got.input == ["a"]


def test_unserialisable_input_is_rejected_without_writing(case: Case) -> None:
    with pytest.raises(InvalidInputError, match="input"):
        _store(case, id="resp_bad", input=[object()])
    assert case.responses.get_response("resp_bad") is None
    with pytest.raises(InvalidInputError):
        _store(case, id="resp_nan", raw_response={"x": float("nan")})
    assert case.responses.get_response("resp_nan") is None


def test_get_and_delete_absent(case: Case) -> None:
    assert case.responses.get_response("resp_missing") is None
    case.responses.delete_response("resp_missing")  # no error


def test_delete_leaves_children_dangling(case: Case) -> None:
    first = _store(case)
    second = _store(case, first.id)
    case.responses.delete_response(first.id)
    assert case.responses.get_response(first.id) is None
    child = case.responses.get_response(second.id)
    assert child is not None
    assert child.previous_response_id == first.id
    assert _chain_ids(case, second.id) == [second.id]


def test_chain_oldest_first_and_depth_limits(case: Case) -> None:
    first = _store(case, input=["first"])
    second = _store(case, first.id, input=["second"])
    third = _store(case, second.id, input=["third"])
    chain = case.responses.get_response_chain(third.id)
    assert [r.input for r in chain.responses] == [["first"], ["second"], ["third"]]
    assert chain.metadata == {}
    assert _chain_ids(case, third.id, 2) == [second.id, third.id]  # the newest two, oldest first
    assert _chain_ids(case, third.id, 1) == [third.id]
    assert _chain_ids(case, third.id, 0) == []
    assert _chain_ids(case, third.id, 50) == [first.id, second.id, third.id]
    assert _chain_ids(case, second.id) == [first.id, second.id]


def test_long_chain_is_not_capped(case: Case) -> None:
    prev = None
    ids = []
    for _ in range(150):
        prev = _store(case, prev).id
        ids.append(prev)
    assert prev is not None
    assert _chain_ids(case, prev) == ids
    assert _chain_ids(case, prev, 120) == ids[-120:]


def test_chain_of_missing_start_is_empty(case: Case) -> None:
    assert _chain_ids(case, "resp_nowhere") == []


def test_chain_stops_at_a_missing_previous(case: Case) -> None:
    orphan = _store(case, "resp_never_stored")
    child = _store(case, orphan.id)
    assert _chain_ids(case, child.id) == [orphan.id, child.id]


def test_self_cycle_is_an_invalid_chain(case: Case) -> None:
    _store(case, "resp_self", id="resp_self")
    with pytest.raises(InvalidChainError, match="resp_self"):
        case.responses.get_response_chain("resp_self")


def test_longer_cycle_is_an_invalid_chain(case: Case) -> None:
    _store(case, "resp_c", id="resp_a")
    _store(case, "resp_a", id="resp_b")
    _store(case, "resp_b", id="resp_c")
    with pytest.raises(InvalidChainError):
        case.responses.get_response_chain("resp_c")
    with pytest.raises(InvalidChainError):
        case.responses.get_response_chain("resp_c", 10)
    # Within a depth shorter than the cycle nothing repeats, so there is no error (upstream).
    assert _chain_ids(case, "resp_c", 3) == ["resp_a", "resp_b", "resp_c"]


def test_negative_max_depth_is_rejected(case: Case) -> None:
    with pytest.raises(InvalidInputError, match="max_depth"):
        case.responses.get_response_chain("resp_x", -1)


#: The documented maximum of every count (docs/api.md): 2**31 - 1.
COUNT_MAX = 2**31 - 1


@pytest.mark.parametrize("count", [COUNT_MAX + 1, 2**63 - 1, 2**63, 2**64, 10**400])
def test_counts_above_the_maximum_are_rejected(case: Case, count: int) -> None:
    _store(case, id="resp_big", safety_identifier="user_big")
    with pytest.raises(InvalidInputError, match=f"max_depth must be at most {COUNT_MAX}"):
        case.responses.get_response_chain("resp_big", count)
    with pytest.raises(InvalidInputError, match=f"limit must be at most {COUNT_MAX}"):
        case.responses.list_identifier_responses("user_big", count)


def test_the_maximum_count_is_accepted(case: Case) -> None:
    first = _store(case, safety_identifier="user_max", created_at=at(1))
    second = _store(case, first.id, safety_identifier="user_max", created_at=at(2))
    assert _chain_ids(case, second.id, COUNT_MAX) == [first.id, second.id]
    listed = case.responses.list_identifier_responses("user_max", COUNT_MAX)
    assert [r.id for r in listed] == [second.id, first.id]


def test_responses_may_name_absent_records(case: Case) -> None:
    response = _store(case, "resp_ghost", conversation_id="conv_ghost")
    got = case.responses.get_response(response.id)
    assert got is not None
    assert got.conversation_id == "conv_ghost"


def test_identifier_listing_newest_first_with_limits(case: Case) -> None:
    r1 = _store(case, safety_identifier="user1", created_at=at(1))
    r2 = _store(case, safety_identifier="user1", created_at=at(3))
    r3 = _store(case, safety_identifier="user1", created_at=at(2))
    _store(case, safety_identifier="user2", created_at=at(4))
    _store(case, created_at=at(5))
    listed = case.responses.list_identifier_responses("user1")
    assert [r.id for r in listed] == [r2.id, r3.id, r1.id]
    assert [r.id for r in case.responses.list_identifier_responses("user1", 2)] == [r2.id, r3.id]
    assert case.responses.list_identifier_responses("user1", 0) == []
    assert case.responses.list_identifier_responses("nobody") == []
    with pytest.raises(InvalidInputError, match="limit"):
        case.responses.list_identifier_responses("user1", -1)


def test_identifier_listing_ties_break_by_id_descending(case: Case) -> None:
    ids = ["resp_t1", "resp_t3", "resp_t2"]
    for response_id in ids:
        _store(case, id=response_id, safety_identifier="tied", created_at=at(7))
    assert [r.id for r in case.responses.list_identifier_responses("tied")] == ["resp_t3", "resp_t2", "resp_t1"]


def test_identifier_delete_counts_and_spares_others(case: Case) -> None:
    a = _store(case, safety_identifier="user1")
    b = _store(case, safety_identifier="user1")
    keep = _store(case, safety_identifier="user2")
    plain = _store(case)
    assert case.responses.delete_identifier_responses("user1") == 2
    assert case.responses.get_response(a.id) is None
    assert case.responses.get_response(b.id) is None
    assert case.responses.delete_identifier_responses("user1") == 0
    assert [r.id for r in case.responses.list_identifier_responses("user2")] == [keep.id]
    assert case.responses.get_response(plain.id) is not None


def test_deleted_response_leaves_identifier_listing(case: Case) -> None:
    a = _store(case, safety_identifier="user9", created_at=at(1))
    b = _store(case, safety_identifier="user9", created_at=at(2))
    case.responses.delete_response(a.id)
    assert [r.id for r in case.responses.list_identifier_responses("user9")] == [b.id]
    assert case.responses.delete_identifier_responses("user9") == 1
