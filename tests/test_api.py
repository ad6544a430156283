"""The public surface (SPEC §1), the Storage bundle, errors, and the one converter."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import datacon
import datacon.errors as errors
from datacon import (
    Conversation,
    ConversationItem,
    ListParams,
    NewConversation,
    RequestContext,
    ResponseChain,
    SortOrder,
    StoredResponse,
    create_storage,
    current_request_context,
    request_context,
)
from datacon._serde import converter

SPEC_NAMES = [
    "create_storage",
    "Storage",
    "StorageFactoryConfig",
    "HistoryBackend",
    "PostgresConfig",
    "RedisConfig",
    "OracleConfig",
    "SqliteConfig",
    "SchemaConfig",
    "TableConfig",
    "ColumnDef",
    "NewConversation",
    "Conversation",
    "NewConversationItem",
    "ConversationItem",
    "StoredResponse",
    "ResponseChain",
    "ListParams",
    "SortOrder",
    "StorageHook",
    "StorageOperation",
    "BeforeHookResult",
    "RequestContext",
    "request_context",
    "current_request_context",
    "make_item_id",
]


def test_spec_names_are_exported() -> None:
    for name in SPEC_NAMES:
        assert hasattr(datacon, name), name
        assert name in datacon.__all__, name


def test_error_hierarchy_and_pickling() -> None:
    assert issubclass(errors.ConfigError, errors.DataconError)
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.InvalidInputError, ValueError)
    for cls in (
        errors.ConflictError,
        errors.InvalidChainError,
        errors.HookRejectedError,
        errors.MigrationRequiredError,
        errors.BackendError,
    ):
        assert issubclass(cls, errors.DataconError)
    assert issubclass(errors.BackendUnavailableError, errors.BackendError)
    assert issubclass(errors.PoolTimeoutError, errors.BackendUnavailableError)
    assert issubclass(errors.PoolTimeoutError, TimeoutError)
    samples: list[Exception] = [
        errors.ConfigError("bad", "postgres.db_url"),
        errors.HookRejectedError("nope"),
        errors.MigrationRequiredError("pending", ("ALTER TABLE x", "INSERT INTO _schema_versions")),
        errors.ConflictError("dup"),
    ]
    for exc in samples:
        copy = pickle.loads(pickle.dumps(exc))  # noqa: S301 - round-tripping our own object
        assert type(copy) is type(exc)
        assert str(copy) == str(exc)
    migration = pickle.loads(pickle.dumps(samples[2]))  # noqa: S301
    assert migration.statements == ("ALTER TABLE x", "INSERT INTO _schema_versions")


def test_storage_bundle_unpacks_and_closes() -> None:
    storage = create_storage()
    responses, conversations, items = storage
    assert responses is storage.responses
    assert conversations is storage.conversations
    assert items is storage.items
    assert "memory" in repr(storage)
    with storage as same:
        assert same is storage
    assert storage.closed
    storage.close()  # idempotent


def test_fresh_memory_stores_do_not_share_data() -> None:
    with create_storage() as first, create_storage() as second:
        conv = first.conversations.create_conversation(NewConversation())
        assert second.conversations.get_conversation(conv.id) is None


def test_request_context_bag() -> None:
    ctx = RequestContext({"tenant": "acme"}, user="u1")
    assert ctx.get("tenant") == "acme"
    assert ctx.get("missing") is None
    ctx.set("tenant", "globex")
    assert ctx.data() == {"tenant": "globex", "user": "u1"}
    assert "user" in ctx
    assert current_request_context() is None
    with request_context(ctx) as current:
        assert current is ctx
        assert current_request_context() is ctx
        with request_context({"tenant": "inner"}):
            inner = current_request_context()
            assert inner is not None
            assert inner.get("tenant") == "inner"
        assert current_request_context() is ctx
    assert current_request_context() is None


def test_sort_order_and_list_params() -> None:
    assert SortOrder("asc") is SortOrder.ASC
    assert ListParams(5) == ListParams(limit=5, order=SortOrder.ASC, after=None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
aware = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@given(
    id_=st.text(min_size=1, max_size=64),
    prev=st.none() | st.text(max_size=10),
    value=json_values,
    created=aware,
)
def test_converter_round_trips_responses(id_: str, prev: str | None, value: Any, created: datetime) -> None:
    response = StoredResponse(id=id_, previous_response_id=prev, input=value, created_at=created, raw_response=value)
    data = converter.unstructure(response)
    assert isinstance(data["created_at"], str)
    assert data["created_at"].endswith("Z")
    assert converter.structure(data, StoredResponse) == response


@given(metadata=st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4), created=aware)
def test_converter_round_trips_conversations_and_items(metadata: dict[str, Any] | None, created: datetime) -> None:
    conv = Conversation(id="conv_x", created_at=created, metadata=metadata)
    assert converter.structure(converter.unstructure(conv), Conversation) == conv
    item = ConversationItem("msg_1", None, "message", "user", metadata, "completed", created)
    assert converter.structure(converter.unstructure(item), ConversationItem) == item
    chain = ResponseChain([StoredResponse(id="r", created_at=created)])
    assert converter.structure(converter.unstructure(chain), ResponseChain) == chain


def test_converter_datetimes_are_utc_with_microseconds() -> None:
    when = datetime(2026, 5, 6, 7, 8, 9, 10, tzinfo=timezone(timedelta(hours=-5)))
    text = converter.unstructure(when)
    assert text == "2026-05-06T12:08:09.000010Z"
    assert converter.structure(text, datetime) == when
