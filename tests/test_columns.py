"""Each record's columns are declared once (datacon/_columns.py); what derives from them agrees."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from datacon import SchemaConfig, StoredResponse, TableConfig
from datacon._columns import BY_KIND, CONVERSATIONS, ITEMS, LINKS, RECORDS, RESPONSES, Kind, Record
from datacon._validate import (
    _ITEM_FIELDS,
    _RESPONSE_FIELDS,
    ID_MAX,
    LONG_MAX,
    SHORT_MAX,
    check_item_fields,
    check_record,
    check_response_fields,
    check_str,
)
from datacon.backends._sql import SqlStore, render
from datacon.backends.base import NO_EXTRA
from datacon.backends.oracle import dialect_for, oracle_schema
from datacon.backends.postgres import PostgresDialect
from datacon.backends.redis.records import Codec
from datacon.errors import BackendError, InvalidInputError
from datacon.models import Conversation, ConversationItem, Link, NewConversationItem
from datacon.schema import CORE_COLUMNS
from datacon.transfer import jsonl

MODELS: dict[str, type[Any]] = {
    "conversation": Conversation,
    "item": ConversationItem,
    "link": Link,
    "response": StoredResponse,
}
T0 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
ITEMS_ALL = tuple(column.name for column in ITEMS)
RESPONSES_ALL = tuple(column.name for column in RESPONSES)


@pytest.mark.parametrize("kind", list(MODELS))
def test_each_model_has_exactly_its_declared_columns(kind: str) -> None:
    # The export format writes the models' attributes: they are the declared columns.
    assert {field.name for field in attrs.fields(MODELS[kind])} == set(BY_KIND[kind].names)


def test_the_export_format_documents_the_declared_columns() -> None:
    doc = jsonl.__doc__ or ""
    for kind, record in BY_KIND.items():
        line = re.search(rf"^- {kind}: (.+?)(?=^- |\n\n)", doc, re.M | re.S)
        assert line is not None, kind
        documented = re.findall(r"``(\w+)``", line.group(1))
        assert documented
        assert set(documented) == set(record.names)


def test_core_columns_are_the_declared_ones() -> None:
    assert {table: record.names for table, record in RECORDS.items()} == CORE_COLUMNS
    assert list(CORE_COLUMNS) == list(SchemaConfig().tables())
    assert CORE_COLUMNS["conversations"] == ("id", "created_at", "metadata")


def test_widths_are_the_declared_sizes_and_the_ddl_widths() -> None:
    assert (ID_MAX, SHORT_MAX, LONG_MAX) == (64, 32, 128)
    ddl = " ".join(render(SchemaConfig(), PostgresDialect()).create_tables)
    for record in (CONVERSATIONS, ITEMS, LINKS, RESPONSES):
        for column in record:
            if column.kind in (Kind.ID, Kind.TEXT):
                assert f'"{column.name}" VARCHAR({column.size})' in ddl


def test_ddl_follows_the_declared_kinds_and_nullability() -> None:
    sql = render(SchemaConfig(), PostgresDialect())
    assert '"item_type" VARCHAR(32) NOT NULL' in sql.create_tables[1]
    assert '"role" VARCHAR(32),' in sql.create_tables[1]
    assert '"conversation_id" VARCHAR(64) NOT NULL' in sql.create_tables[2]
    assert '"input" JSON' in sql.create_tables[3]
    # Oracle stores '' as NULL: a required text that may be empty is nullable there.
    schema = oracle_schema(None)
    oracle = render(schema, dialect_for(schema))
    assert '"ITEM_TYPE" VARCHAR2(32),' in oracle.create_tables[1]
    assert '"CONVERSATION_ID" VARCHAR2(64) NOT NULL' in oracle.create_tables[2]


def test_checks_follow_the_declared_columns() -> None:
    check_item_fields(NewConversationItem("", None))  # a required text may be empty
    with pytest.raises(InvalidInputError, match="role must not be empty"):
        check_item_fields(NewConversationItem("message", None, role=""))
    with pytest.raises(InvalidInputError, match="status is 33 characters long; the maximum is 32"):
        check_item_fields(NewConversationItem("message", None, status="s" * 33))
    with pytest.raises(InvalidInputError, match="model is 129 characters long; the maximum is 128"):
        check_response_fields(StoredResponse(model="m" * 129))
    with pytest.raises(InvalidInputError, match="conversation_id is 65 characters long"):
        check_response_fields(StoredResponse(conversation_id="c" * 65))
    check_record(LINKS, Link("conv_1", "msg_1", T0))
    with pytest.raises(InvalidInputError, match="item_id must not be empty"):
        check_record(LINKS, Link("conv_1", "", T0))
    with pytest.raises(InvalidInputError, match="added_at"):
        check_record(LINKS, Link("conv_1", "msg_1", datetime(2026, 1, 2)))  # naive on purpose
    with pytest.raises(InvalidInputError, match="metadata must be a JSON object or null"):
        check_record(CONVERSATIONS, Conversation("conv_1", T0, metadata=[1]))  # type: ignore[arg-type]


class _Text(str):
    """A str subclass: the usual-case test leaves it to the full checks."""


#: Values a text field may be given, good and bad (a str subclass, a non-str that equals nothing).
_FIELD_VALUES: list[Any] = [
    None,
    "",
    "x",
    "s" * 32,
    "s" * 33,
    "i" * 64,
    "i" * 65,
    "a\x00b",
    "é",
    "\udc80",
    "\u2028",
    5,
    b"user",
    _Text("user"),
]


def _full_checks(record: Any, checks: Any) -> str | None:
    """What check_str says of each field in turn (the checks before the usual-case test)."""
    for name, width, optional, empty_ok in checks:
        try:
            check_str(getattr(record, name), name, width, optional=optional, empty_ok=empty_ok)
        except InvalidInputError as exc:
            return str(exc)
    return None


def _said(check: Any, record: Any) -> str | None:
    try:
        check(record)
    except InvalidInputError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("field", ["response_id", "item_type", "role", "status"])
def test_item_field_checks_raise_as_check_str_for_every_value(field: str) -> None:
    # The generated usual-case test runs first; whatever it does not pass, the full checks decide.
    for value in _FIELD_VALUES:
        item = NewConversationItem("message", None, role="user", status="completed")
        setattr(item, field, value)
        assert _said(check_item_fields, item) == _full_checks(item, _ITEM_FIELDS), (field, value)


@pytest.mark.parametrize("field", ["conversation_id", "previous_response_id", "safety_identifier", "model"])
def test_response_field_checks_raise_as_check_str_for_every_value(field: str) -> None:
    for value in _FIELD_VALUES:
        response = StoredResponse(id="resp_1", model="gpt", safety_identifier="u1")
        setattr(response, field, value)
        assert _said(check_response_fields, response) == _full_checks(response, _RESPONSE_FIELDS), (field, value)


SKIPS = SchemaConfig(
    conversations=TableConfig("conversations", skip_columns={"created_at"}),
    conversation_items=TableConfig("conversation_items", skip_columns={"item_type", "content", "status"}),
    responses=TableConfig("responses", skip_columns={"input", "model", "raw_response"}),
)


def _store(schema: SchemaConfig) -> SqlStore:
    return SqlStore(None, PostgresDialect(), schema)  # type: ignore[arg-type]  # no I/O: rendering and codecs only


def test_sql_decoders_read_skipped_columns_as_their_declared_defaults() -> None:
    store = _store(SKIPS)
    assert store.sql.item_fields == ("id", "response_id", "role", "created_at")
    item = store.decode_item(("msg_1", None, "user", T0))
    assert (item.item_type, item.content, item.status, item.role, item.created_at) == ("", None, None, "user", T0)
    response = store.decode_response(("resp_1", "conv_1", None, T0, "u1"))
    assert (response.input, response.model, response.raw_response, response.safety_identifier) == ([], None, None, "u1")
    assert response.input is not store.decode_response(("r", None, None, T0, None)).input  # a fresh list each time
    before = datetime.now(UTC)
    conversation = store.decode_conversation(("conv_1", '{"a": 1}'))
    assert conversation.metadata == {"a": 1}
    assert conversation.created_at >= before  # a skipped timestamp reads as now


def test_sql_decoders_report_unreadable_rows_without_the_value() -> None:
    store = _store(SchemaConfig())
    with pytest.raises(BackendError, match=r"^Postgres item msg_1 has an unreadable column \(TypeError\)$"):
        store.decode_item(("msg_1", None, "message", None, "[]", None, "not a time"))
    with pytest.raises(BackendError, match="expected JSON object for conversation metadata, got JSON list"):
        store.decode_conversation(("conv_1", T0, "[1]"))


def test_sql_rows_decoders_give_what_the_row_decoder_gives_row_by_row() -> None:
    for schema in (SchemaConfig(), SKIPS):
        store = _store(schema)
        items = [
            ("msg_1", None, "message", "user", '[{"type":"input_text","text":"hi"}]', "completed", T0),
            ("msg_2", "resp_1", "function_call", None, ' {"name": "f"} ', None, T0),  # spaces: json.loads' path
            ("msg_3", None, "message", None, None, None, T0),  # SQL NULL content: its default
        ]
        rows = [tuple(v for f, v in zip(ITEMS_ALL, row, strict=True) if f in store.sql.item_fields) for row in items]
        decoded = store.decode_items(rows)
        assert decoded == [store.decode_item(row) for row in rows]
        assert [type(item) for item in decoded] == [ConversationItem] * 3
        responses = [
            ("resp_1", "conv_1", None, "[1]", T0, "u1", "gpt", "null"),
            ("resp_2", None, "resp_1", None, T0, None, None, None),
        ]
        rows = [
            tuple(v for f, v in zip(RESPONSES_ALL, row, strict=True) if f in store.sql.resp_fields) for row in responses
        ]
        assert store.decode_responses(rows) == [store.decode_response(row) for row in rows]
        if not schema.conversations.is_skipped("created_at"):
            rows = [("conv_1", T0, '{"a":1}'), ("conv_2", T0, None)]
            assert store.decode_conversations(rows) == [store.decode_conversation(row) for row in rows]
    assert _store(SchemaConfig()).decode_items([]) == []


def test_sql_rows_decoders_report_the_first_unreadable_row() -> None:
    store = _store(SchemaConfig())
    good = ("msg_1", None, "message", None, "[]", None, T0)
    with pytest.raises(BackendError, match=r"^Postgres item msg_2 has an unreadable column \(JSONDecodeError\)$"):
        store.decode_items(
            [good, ("msg_2", None, "message", None, "[1", None, T0), ("msg_3", None, "m", None, "[", None, 1)]
        )
    with pytest.raises(BackendError, match=r"^Postgres item msg_3 has an unreadable column \(TypeError\)$"):
        store.decode_items([good, ("msg_3", None, "message", None, "[]", None, "not a time")])


def test_sql_encoders_bind_the_present_columns() -> None:
    store = _store(SKIPS)
    response = StoredResponse(id="resp_1", input=[1], safety_identifier="u1", created_at=T0)
    assert store.encode_response(response) == {
        "id": "resp_1",
        "conversation_id": None,
        "previous_response_id": None,
        "created_at": T0,
        "safety_identifier": "u1",
    }
    full = _store(SchemaConfig())
    assert full.encode_conversation(Conversation("conv_1", T0, None))["metadata"] is None  # SQL NULL
    assert full.encode_conversation(Conversation("conv_1", T0, {"a": 1}))["metadata"] == '{"a":1}'
    assert full.encode_item(ConversationItem("m", None, "t", None, None, None, T0))["content"] == "null"


def test_redis_fields_follow_the_declared_columns_renames_and_skips() -> None:
    schema = SchemaConfig(
        conversation_items=TableConfig("conversation_items", columns={"content": "body"}, skip_columns={"status"})
    )
    codec = Codec(schema)
    assert set(codec.items.fields) == set(ITEMS.names)
    assert codec.items.fields["status"] is None
    item = ConversationItem("msg_1", None, "", "user", {"k": 1}, "done", T0)
    assert codec.item_fields(item, NO_EXTRA) == {
        "id": "msg_1",
        "item_type": "",
        "role": "user",
        "body": '{"k":1}',
        "created_at": "2026-01-02T03:04:05.000006+00:00",
    }
    assert codec.conversation_fields(Conversation("conv_1", T0, None), NO_EXTRA) == {
        "id": "conv_1",
        "created_at": "2026-01-02T03:04:05.000006+00:00",
    }
    assert codec.item("msg_1", codec.item_fields(item, NO_EXTRA)) == attrs.evolve(item, status=None)


@pytest.mark.parametrize("record", list(RECORDS.values()), ids=list(RECORDS))
def test_declared_names_are_identifiers_and_defaults_are_literals(record: Record) -> None:
    # The generated codecs rely on both (datacon._columns.compile_function).
    for column in record:
        assert column.name.isidentifier()
        assert column.default_when_skipped in (None, "", [])
