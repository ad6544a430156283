"""Conformance: records for web applications (SPEC §7.6), on every backend.

Records a backend returns become JSON-ready dicts and back; the shape is the export format's
record without its ``"type"`` key.
"""

from __future__ import annotations

import json

from datacon import Conversation, ConversationItem, NewConversation, NewConversationItem, StoredResponse
from datacon.transfer.jsonl import dump_record
from tests.conformance._util import at
from tests.support import Case


def _export_fields(record: Conversation | ConversationItem | StoredResponse) -> dict[str, object]:
    data: dict[str, object] = json.loads(dump_record(record))
    del data["type"]
    return data


def test_stored_records_to_dict_is_the_export_record_and_round_trips(case: Case) -> None:
    conv = case.conversations.create_conversation(NewConversation(metadata={"title": "żółw", "n": [1, 2]}))
    item = case.items.create_item(
        NewConversationItem(item_type="message", content=[{"type": "input_text", "text": "hi"}], role="user")
    )
    response = StoredResponse(input=[{"role": "user"}], created_at=at(1), model="m", raw_response={"a": None})
    case.responses.store_response(response)
    got_conv = case.conversations.get_conversation(conv.id)
    got_item = case.items.get_item(item.id)
    got_response = case.responses.get_response(response.id)
    assert got_conv is not None
    assert got_item is not None
    assert got_response is not None
    for record, cls in ((got_conv, Conversation), (got_item, ConversationItem), (got_response, StoredResponse)):
        data = record.to_dict()
        assert data == _export_fields(record)
        assert json.loads(record.to_json()) == data
        assert cls.from_dict(data) == record
        assert data["created_at"].endswith("Z")
        assert len(data["created_at"]) == len("2026-01-02T03:04:06.123456Z")
    assert got_response.to_dict()["created_at"] == "2026-01-02T03:04:06.123456Z"


def test_a_chain_from_the_backend_serialises_with_its_responses(case: Case) -> None:
    first = StoredResponse(created_at=at(0))
    second = StoredResponse(previous_response_id=first.id, created_at=at(1))
    case.responses.store_response(first)
    case.responses.store_response(second)
    chain = case.responses.get_response_chain(second.id)
    data = chain.to_dict()
    assert [r["id"] for r in data["responses"]] == [first.id, second.id]
    assert type(chain).from_dict(json.loads(chain.to_json())) == chain
