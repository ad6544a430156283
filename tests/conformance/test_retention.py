"""Conformance: retention and erasure, ``Storage.prune`` and ``Storage.erase_identifier`` (SPEC 7.7).

Each test names the sentence of SPEC 7.7 it checks. Records "before" a cutoff are made first,
then the cutoff is read from the clock, then the records "after" it are made (conversations
and items take ``created_at`` from the clock; responses are given theirs).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import datacon
from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    PruneReport,
    StoredResponse,
)
from datacon._time import utc_now
from datacon.errors import InvalidInputError
from tests.support import Case

US = timedelta(microseconds=1)


def _cutoff() -> datetime:
    """A cutoff strictly after every record made so far and before every record made next."""
    time.sleep(0.002)
    cutoff = utc_now()
    time.sleep(0.002)
    return cutoff


def _world(case: Case) -> dict[str, Any]:
    """Old and new records: old conversation with two links (one item shared with the new
    conversation), an old never-linked item, old and new responses."""
    old_conv = case.conversations.create_conversation(NewConversation(metadata={"age": "old"}))
    shared = case.items.create_item(NewConversationItem("message", {"t": "shared"}, role="user"))
    only_old = case.items.create_item(NewConversationItem("message", {"t": "only old"}, role="user"))
    never = case.items.create_item(NewConversationItem("message", {"t": "never linked"}, role="user"))
    case.items.link_items(old_conv.id, [(shared.id, utc_now()), (only_old.id, utc_now())])
    old_resp = StoredResponse(created_at=utc_now() - timedelta(days=1), conversation_id=old_conv.id)
    case.responses.store_response(old_resp)
    cutoff = _cutoff()
    new_conv = case.conversations.create_conversation(NewConversation())
    case.items.link_item(new_conv.id, shared.id, utc_now())
    fresh = case.items.create_item(NewConversationItem("message", {"t": "new"}, role="user"))
    case.items.link_item(old_conv.id, fresh.id, utc_now())
    new_resp = StoredResponse(created_at=cutoff + timedelta(seconds=1))
    case.responses.store_response(new_resp)
    return {
        "cutoff": cutoff,
        "old_conv": old_conv.id,
        "new_conv": new_conv.id,
        "shared": shared.id,
        "only_old": only_old.id,
        "never": never.id,
        "fresh": fresh.id,
        "old_resp": old_resp.id,
        "new_resp": new_resp.id,
    }


def test_prune_report_is_exported_with_its_counts_and_dry_run() -> None:
    # "PruneReport (from datacon import PruneReport) has responses, conversations, links, items (ints) and dry_run"
    assert datacon.PruneReport is PruneReport
    assert "PruneReport" in datacon.__all__
    report = PruneReport(responses=1, conversations=2, links=3, items=4, dry_run=True)
    assert report.to_dict() == {"responses": 1, "conversations": 2, "links": 3, "items": 4, "dry_run": True}
    assert PruneReport.from_dict(report.to_dict()) == report
    assert report.total == 10
    with pytest.raises(AttributeError):
        report.items = 5  # type: ignore[misc]  # frozen


def test_prune_deletes_old_responses_and_conversations_with_their_links(case: Case) -> None:
    # "deletes responses and conversations created before the cutoff (conversations with their links)"
    w = _world(case)
    report = case.storage.prune(w["cutoff"])
    assert isinstance(report, PruneReport)
    assert (report.responses, report.conversations, report.links) == (1, 1, 3)
    assert case.responses.get_response(w["old_resp"]) is None
    assert case.responses.get_response(w["new_resp"]) is not None
    assert case.conversations.get_conversation(w["old_conv"]) is None
    assert case.conversations.get_conversation(w["new_conv"]) is not None
    for item in ("shared", "only_old", "fresh"):
        assert not case.items.is_item_linked(w["old_conv"], w[item])
    assert case.items.list_items(w["old_conv"], ListParams(10)) == []


def test_prune_then_deletes_old_items_that_no_conversation_links_any_more(case: Case) -> None:
    # "then items created before the cutoff that no conversation links any more"
    # "Items that were never linked count as unlinked."
    w = _world(case)
    report = case.storage.prune(w["cutoff"])
    assert report.items == 2
    assert case.items.get_item(w["only_old"]) is None  # its only conversation was pruned
    assert case.items.get_item(w["never"]) is None  # never linked
    # Not before the cutoff: kept although its conversation is gone.
    assert case.items.get_item(w["fresh"]) is not None


def test_prune_keeps_an_old_item_linked_to_a_surviving_conversation(case: Case) -> None:
    # "nothing still referenced is deleted (an item linked to a surviving conversation survives)"
    w = _world(case)
    case.storage.prune(w["cutoff"])
    assert case.items.get_item(w["shared"]) is not None
    assert [item.id for item in case.items.list_items(w["new_conv"], ListParams(10))] == [w["shared"]]


def test_prune_keeps_an_old_item_linked_to_a_conversation_id_that_does_not_exist(case: Case) -> None:
    # Links are not checked against conversations (SPEC 2): such a link is not the prune's to
    # delete, and the item it names stays referenced.
    item = case.items.create_item(NewConversationItem("message", {"t": 1}))
    case.items.link_item("conv_never_created", item.id, utc_now())
    cutoff = _cutoff()
    assert case.storage.prune(cutoff, dry_run=True).items == 0
    assert case.storage.prune(cutoff).items == 0
    assert case.items.get_item(item.id) is not None
    assert case.items.is_item_linked("conv_never_created", item.id)


def test_prune_dry_run_counts_what_it_would_delete_and_deletes_nothing(case: Case) -> None:
    # "a dry run counts what it would delete and deletes nothing"
    w = _world(case)
    dry = case.storage.prune(w["cutoff"], dry_run=True)
    assert dry == PruneReport(responses=1, conversations=1, links=3, items=2, dry_run=True)
    assert case.conversations.get_conversation(w["old_conv"]) is not None
    assert case.responses.get_response(w["old_resp"]) is not None
    assert case.items.get_item(w["never"]) is not None
    assert case.items.is_item_linked(w["old_conv"], w["only_old"])
    real = case.storage.prune(w["cutoff"])
    assert real == PruneReport(responses=1, conversations=1, links=3, items=2, dry_run=False)


def test_prune_before_is_strict(case: Case) -> None:
    # '"Before" is strict (created_at < cutoff)'
    cutoff = datetime(2025, 6, 1, 12, 0, 0, 654321, tzinfo=UTC)
    at_cutoff = StoredResponse(created_at=cutoff)
    just_before = StoredResponse(created_at=cutoff - US)
    case.responses.store_response(at_cutoff)
    case.responses.store_response(just_before)
    conv = case.conversations.create_conversation(NewConversation())
    assert case.storage.prune(cutoff).responses == 1
    assert case.responses.get_response(at_cutoff.id) is not None
    assert case.responses.get_response(just_before.id) is None
    # A conversation made exactly at the cutoff stays; one microsecond later it goes.
    assert case.storage.prune(conv.created_at).conversations == 0
    assert case.conversations.get_conversation(conv.id) is not None
    assert case.storage.prune(conv.created_at + US).conversations == 1
    assert case.conversations.get_conversation(conv.id) is None


def test_prune_takes_an_age_as_a_timedelta(case: Case) -> None:
    # "prune(older_than: datetime | timedelta, ...)": the cutoff is now minus the age.
    old = StoredResponse(created_at=utc_now() - timedelta(days=31))
    recent = StoredResponse(created_at=utc_now() - timedelta(days=29))
    case.responses.store_response(old)
    case.responses.store_response(recent)
    assert case.storage.prune(timedelta(days=30)).responses == 1
    assert case.responses.get_response(old.id) is None
    assert case.responses.get_response(recent.id) is not None


@pytest.mark.parametrize(
    "bad",
    [datetime(2025, 1, 1), "2025-01-01T00:00:00Z", 30, timedelta(days=-1), datetime(1800, 1, 1, tzinfo=UTC)],
    ids=["naive", "string", "int", "negative-age", "out-of-range"],
)
def test_prune_refuses_a_naive_or_malformed_cutoff(case: Case, bad: object) -> None:
    # "a naive cutoff -> InvalidInputError"
    response = StoredResponse(created_at=utc_now() - timedelta(days=400))
    case.responses.store_response(response)
    with pytest.raises(InvalidInputError):
        case.storage.prune(bad)
    with pytest.raises(InvalidInputError):
        case.storage.prune(timedelta(days=1), batch_size=0)
    assert case.responses.get_response(response.id) is not None


def test_prune_works_in_bounded_batches(case: Case) -> None:
    # "Works in bounded batches": every batch reports progress; the totals are the same.
    conv_ids = [case.conversations.create_conversation(NewConversation()).id for _ in range(5)]
    items = [case.items.create_item(NewConversationItem("message", {"n": n})) for n in range(7)]
    case.items.link_items(conv_ids[0], [(item.id, utc_now()) for item in items[:3]])
    for n in range(6):
        case.responses.store_response(StoredResponse(created_at=utc_now() - timedelta(hours=n + 1)))
    cutoff = _cutoff()
    seen: list[PruneReport] = []
    dry = case.storage.prune(cutoff, dry_run=True, batch_size=2, progress=seen.append)
    assert dry == PruneReport(responses=6, conversations=5, links=3, items=7, dry_run=True)
    # At least one call per batch of 2: 3 of responses, 3 of conversations, 4 of items.
    assert len(seen) >= 10
    assert seen[-1] == dry
    totals = [report.total for report in seen]
    assert totals == sorted(totals)
    seen.clear()
    report = case.storage.prune(cutoff, batch_size=2, progress=seen.append)
    assert report == PruneReport(responses=6, conversations=5, links=3, items=7)
    assert len(seen) >= 10
    assert seen[-1] == report


class _Interrupted(Exception):
    pass


def test_prune_is_safe_to_rerun_after_an_interruption(case: Case) -> None:
    # "safe to re-run": an interrupted prune leaves what it did not reach, a second run finishes.
    w = _world(case)
    for n in range(4):
        case.responses.store_response(StoredResponse(created_at=w["cutoff"] - timedelta(hours=n + 1)))
    calls = 0

    def stop_after_two(report: PruneReport) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        case.storage.prune(w["cutoff"], batch_size=2, progress=stop_after_two)
    first = 4  # two batches of two responses were deleted before the interruption
    rest = case.storage.prune(w["cutoff"])
    assert rest == PruneReport(responses=5 - first, conversations=1, links=3, items=2)
    assert case.storage.prune(w["cutoff"]) == PruneReport()
    assert case.items.get_item(w["shared"]) is not None


def _people(case: Case) -> dict[str, Any]:
    """alice has two conversations, one also named by bob's response; items shared across them."""
    alice_only = case.conversations.create_conversation(NewConversation())
    with_bob = case.conversations.create_conversation(NewConversation())
    elsewhere = case.conversations.create_conversation(NewConversation())
    mine = case.items.create_item(NewConversationItem("message", {"t": "mine"}))
    kept = case.items.create_item(NewConversationItem("message", {"t": "also elsewhere"}))
    in_bob = case.items.create_item(NewConversationItem("message", {"t": "bob's conversation"}))
    case.items.link_items(alice_only.id, [(mine.id, utc_now()), (kept.id, utc_now())])
    case.items.link_item(elsewhere.id, kept.id, utc_now())
    case.items.link_item(with_bob.id, in_bob.id, utc_now())
    alice = [
        StoredResponse(safety_identifier="alice", conversation_id=alice_only.id),
        StoredResponse(safety_identifier="alice", conversation_id=alice_only.id),
        StoredResponse(safety_identifier="alice", conversation_id=with_bob.id),
        StoredResponse(safety_identifier="alice"),
        StoredResponse(safety_identifier="alice", conversation_id="conv_never_created"),
    ]
    bob = StoredResponse(safety_identifier="bob", conversation_id=with_bob.id)
    anonymous = StoredResponse(conversation_id=alice_only.id)
    for response in [*alice, bob, anonymous]:
        case.responses.store_response(response)
    return {
        "alice_only": alice_only.id,
        "with_bob": with_bob.id,
        "elsewhere": elsewhere.id,
        "mine": mine.id,
        "kept": kept.id,
        "in_bob": in_bob.id,
        "alice": [r.id for r in alice],
        "bob": bob.id,
        "anonymous": anonymous.id,
    }


def test_erase_identifier_deletes_every_response_with_that_identifier(case: Case) -> None:
    # "deletes every response with that safety_identifier"
    p = _people(case)
    report = case.storage.erase_identifier("alice")
    assert report.responses == 5
    assert all(case.responses.get_response(rid) is None for rid in p["alice"])
    assert case.responses.list_identifier_responses("alice") == []
    assert case.responses.get_response(p["bob"]) is not None
    assert case.responses.get_response(p["anonymous"]) is not None


def test_erase_identifier_deletes_the_conversations_no_other_identifier_names(case: Case) -> None:
    # "the conversations those responses name that no other identifier's response names (with their links)"
    p = _people(case)
    report = case.storage.erase_identifier("alice")
    assert (report.conversations, report.links) == (1, 2)
    assert case.conversations.get_conversation(p["alice_only"]) is None
    assert not case.items.is_item_linked(p["alice_only"], p["mine"])
    # Named by bob's response too: kept, with its links. Never named by alice: kept.
    assert case.conversations.get_conversation(p["with_bob"]) is not None
    assert case.items.is_item_linked(p["with_bob"], p["in_bob"])
    assert case.conversations.get_conversation(p["elsewhere"]) is not None


def test_erase_identifier_deletes_the_items_no_longer_linked_anywhere(case: Case) -> None:
    # "and the items no longer linked anywhere that were linked to those conversations"
    p = _people(case)
    report = case.storage.erase_identifier("alice")
    assert report.items == 1
    assert case.items.get_item(p["mine"]) is None
    assert case.items.get_item(p["kept"]) is not None  # still linked to another conversation
    assert case.items.is_item_linked(p["elsewhere"], p["kept"])
    assert case.items.get_item(p["in_bob"]) is not None


def test_erase_identifier_dry_run_counts_and_deletes_nothing(case: Case) -> None:
    # "dry_run" (as for prune): counts what it would delete and deletes nothing.
    p = _people(case)
    dry = case.storage.erase_identifier("alice", dry_run=True)
    assert dry == PruneReport(responses=5, conversations=1, links=2, items=1, dry_run=True)
    assert len(case.responses.list_identifier_responses("alice")) == 5
    assert case.conversations.get_conversation(p["alice_only"]) is not None
    assert case.items.get_item(p["mine"]) is not None
    assert case.storage.erase_identifier("alice") == PruneReport(responses=5, conversations=1, links=2, items=1)


def test_erase_identifier_is_safe_to_rerun_and_batched(case: Case) -> None:
    # Bounded batches and re-runs, as for prune: a second erasure finds nothing left.
    p = _people(case)
    seen: list[PruneReport] = []
    report = case.storage.erase_identifier("alice", batch_size=1, progress=seen.append)
    assert report == PruneReport(responses=5, conversations=1, links=2, items=1)
    assert len(seen) >= 6  # one conversation batch, five response batches
    assert case.storage.erase_identifier("alice") == PruneReport()
    assert case.storage.erase_identifier("nobody", dry_run=True) == PruneReport(dry_run=True)
    assert case.responses.get_response(p["bob"]) is not None


def test_erase_identifier_refuses_a_bad_identifier(case: Case) -> None:
    for bad in (None, 7, "x" * 10_000):
        with pytest.raises(InvalidInputError):
            case.storage.erase_identifier(bad)
    with pytest.raises(InvalidInputError):
        case.storage.erase_identifier("alice", dry_run="yes")
