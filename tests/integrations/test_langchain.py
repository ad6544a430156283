"""DataconChatMessageHistory: LangChain's BaseChatMessageHistory on every backend, sync and async."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from datacon import ListParams, NewConversationItem, Storage, StorageHook, StorageOperation, create_storage
from datacon.aio import AsyncStorage
from datacon.errors import BackendUnavailableError, HookRejectedError, InvalidInputError
from datacon.hooks import BeforeHookResult
from datacon.integrations.langchain import DataconChatMessageHistory
from tests.support import BackendUnderTest

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def history(storage: Storage) -> Iterator[DataconChatMessageHistory]:
    with DataconChatMessageHistory("lc_history", storage) as opened:
        yield opened


def every_message() -> list[BaseMessage]:
    """One of each message type, with the fields that must survive."""
    return [
        SystemMessage("You are terse.", id="sys-1", additional_kwargs={"priority": 1}),
        HumanMessage("What is 6 x 7?", id="h-1", name="alice", additional_kwargs={"lang": "en"}),
        HumanMessage(
            content=[
                {"type": "text", "text": "and this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
            ]
        ),
        AIMessage(
            "",
            id="ai-1",
            tool_calls=[{"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call_1", "type": "tool_call"}],
            invalid_tool_calls=[
                {
                    "name": "broken",
                    "args": "{not json",
                    "id": "call_2",
                    "error": "bad json",
                    "type": "invalid_tool_call",
                }
            ],
            usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
            response_metadata={"model_name": "fake", "finish_reason": "tool_calls"},
        ),
        ToolMessage("42", tool_call_id="call_1", name="multiply", artifact={"raw": [6, 7]}, status="success"),
        ToolMessage("boom", tool_call_id="call_2", status="error"),
        FunctionMessage(content="legacy", name="old_function"),
        ChatMessage(content="a custom role", role="critic"),
        AIMessage("It is 42. 😊 O'Reilly; DROP TABLE x;--", id="ai-2"),
    ]


def test_is_a_chat_message_history(storage: Storage) -> None:
    assert isinstance(DataconChatMessageHistory("c", storage), BaseChatMessageHistory)


def test_every_message_type_round_trips(history: DataconChatMessageHistory) -> None:
    messages = every_message()
    history.add_messages(messages)
    assert history.messages == messages
    assert [type(m) for m in history.messages] == [type(m) for m in messages]


async def test_every_message_type_round_trips_async(history: DataconChatMessageHistory) -> None:
    messages = every_message()
    await history.aadd_messages(messages)
    assert await history.aget_messages() == messages
    assert history.messages == messages  # one store: the sync view agrees


def test_chunks_are_stored_as_their_messages(history: DataconChatMessageHistory) -> None:
    chunk = AIMessageChunk(content="Hel", id="run-1") + AIMessageChunk(
        content="lo",
        tool_call_chunks=[{"name": "f", "args": '{"x": 1}', "id": "c1", "index": 0, "type": "tool_call_chunk"}],
    )
    history.add_messages([chunk, ToolMessageChunk(content="out", tool_call_id="c1")])
    assert history.messages == [
        AIMessage("Hello", id="run-1", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1", "type": "tool_call"}]),
        ToolMessage("out", tool_call_id="c1"),
    ]
    assert [type(m) for m in history.messages] == [AIMessage, ToolMessage]


def test_add_message_helpers_append_in_order(history: DataconChatMessageHistory) -> None:
    history.add_user_message("hi")
    history.add_ai_message("hello")
    history.add_message(HumanMessage("bye"))
    assert history.messages == [HumanMessage("hi"), AIMessage("hello"), HumanMessage("bye")]


def test_clear(history: DataconChatMessageHistory, storage: Storage) -> None:
    history.add_messages(every_message())
    ids = [item.id for item in storage.items.list_items("lc_history", ListParams(limit=100))]
    history.clear()
    assert history.messages == []
    assert storage.conversations.get_conversation("lc_history") is None
    assert all(storage.items.get_item(item_id) is None for item_id in ids)  # no orphan records
    history.add_messages([HumanMessage("again")])
    assert history.messages == [HumanMessage("again")]


async def test_aclear(history: DataconChatMessageHistory) -> None:
    await history.aadd_messages([HumanMessage("a"), AIMessage("b")])
    await history.aclear()
    assert await history.aget_messages() == []


def test_histories_are_separate(storage: Storage) -> None:
    one, two = DataconChatMessageHistory("one", storage), DataconChatMessageHistory("two", storage)
    one.add_messages([HumanMessage("for one")])
    two.add_messages([HumanMessage("for two")])
    one.clear()
    assert one.messages == []
    assert two.messages == [HumanMessage("for two")]


def test_many_messages_over_several_pages(history: DataconChatMessageHistory) -> None:
    messages = [HumanMessage(f"m{n}") if n % 2 else AIMessage(f"m{n}") for n in range(2100)]
    history.add_messages(messages)
    assert history.messages == messages


def test_items_are_langchain_dicts_with_roles(history: DataconChatMessageHistory, storage: Storage) -> None:
    critic = ChatMessage(content="c", role="critic")
    history.add_messages([HumanMessage("q"), AIMessage("a"), SystemMessage("s"), critic])
    items = storage.items.list_items("lc_history", ListParams(limit=10))
    assert [(item.item_type, item.role) for item in items] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "system"),
        ("message", "critic"),
    ]
    assert items[0].content == {"type": "human", "data": HumanMessage("q").model_dump()}


def test_foreign_items_are_skipped(history: DataconChatMessageHistory, storage: Storage) -> None:
    history.add_messages([HumanMessage("mine")])
    storage.items.append_items("lc_history", [NewConversationItem("message", {"role": "user", "text": "other"})])
    assert history.messages == [HumanMessage("mine")]


def test_add_messages_is_atomic(history: DataconChatMessageHistory) -> None:
    with pytest.raises(InvalidInputError, match="BaseMessage"):
        history.add_messages([HumanMessage("fine"), cast(Any, "not a message")])
    assert history.messages == []


def test_empty_add_writes_nothing(history: DataconChatMessageHistory, storage: Storage) -> None:
    history.add_messages([])
    assert storage.conversations.get_conversation("lc_history") is None


def test_rejected_append_writes_nothing(backend: BackendUnderTest) -> None:
    class Reject(StorageHook):
        def before(self, operation: StorageOperation, context: Any, payload: Any) -> BeforeHookResult:
            if operation is StorageOperation.APPEND_ITEMS:
                return BeforeHookResult.reject("read only")
            return BeforeHookResult.cont()

    with create_storage(backend.config(hook=Reject())) as hooked:
        history = DataconChatMessageHistory("rejected", hooked)
        with pytest.raises(HookRejectedError):
            history.add_messages([HumanMessage("a"), AIMessage("b")])
        assert history.messages == []


@pytest.mark.parametrize("bad", ["x" * 65, ""])
def test_invalid_conversation_id(storage: Storage, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        DataconChatMessageHistory(bad, storage)


def test_given_storage_is_left_open(storage: Storage) -> None:
    history = DataconChatMessageHistory("given", storage)
    history.add_messages([HumanMessage("kept")])
    history.close()
    assert not storage.closed
    with pytest.raises(BackendUnavailableError, match="closed"):
        _ = history.messages
    assert DataconChatMessageHistory("given", storage).messages == [HumanMessage("kept")]


async def test_async_storage_given(storage: Storage) -> None:
    facade = AsyncStorage(storage)
    async with DataconChatMessageHistory("async_given", facade) as history:
        await history.aadd_messages([HumanMessage("x")])
        assert await history.aget_messages() == [HumanMessage("x")]
    assert not facade.closed


def test_url_opened_storage_is_closed(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/lc.db"
    with DataconChatMessageHistory("owned", url) as history:
        history.add_messages([HumanMessage("persisted")])
        opened = history._conversation.handle._sync
    assert opened is not None
    assert opened.closed
    with DataconChatMessageHistory("owned", url) as again:
        assert again.messages == [HumanMessage("persisted")]


def test_chat_loop_with_a_chat_model(storage: Storage) -> None:
    # The usual loop: the prompt gets the history, the turn is written back.
    model = GenericFakeChatModel(messages=iter([AIMessage("Paris"), AIMessage("About 2.1 million")]))
    chain = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{question}")]) | model
    for question in ("Capital of France?", "Its population?"):
        history = DataconChatMessageHistory("chat_1", storage)
        answer = chain.invoke({"history": history.messages, "question": question})
        history.add_messages([HumanMessage(question), answer])
    stored = DataconChatMessageHistory("chat_1", storage).messages
    assert [(type(m), m.content) for m in stored] == [
        (HumanMessage, "Capital of France?"),
        (AIMessage, "Paris"),
        (HumanMessage, "Its population?"),
        (AIMessage, "About 2.1 million"),
    ]


async def test_async_interface(history: DataconChatMessageHistory) -> None:
    # langchain-core's own test_async_interface (tests/unit_tests/chat_history), on datacon.
    await history.aadd_messages([HumanMessage(content="Hello"), HumanMessage(content="World")])
    assert await history.aget_messages() == [HumanMessage(content="Hello"), HumanMessage(content="World")]
    await history.aadd_messages([HumanMessage(content="!")])
    assert await history.aget_messages() == [
        HumanMessage(content="Hello"),
        HumanMessage(content="World"),
        HumanMessage(content="!"),
    ]
    await history.aclear()
    assert await history.aget_messages() == []


def test_add_message_then_add_messages(history: DataconChatMessageHistory) -> None:
    # langchain-core's test_add_message_implementation_only / test_bulk_message_implementation_only.
    history.add_message(HumanMessage(content="Hello"))
    history.add_message(HumanMessage(content="World"))
    history.add_messages([HumanMessage(content="Hello"), HumanMessage(content="World")])
    assert history.messages == [HumanMessage(content=text) for text in ("Hello", "World", "Hello", "World")]
