"""DataconSession against the OpenAI Agents SDK's own session behaviours, on every backend.

The behaviours are those the SDK's tests check for its built-in sessions
(tests/memory/test_session.py, test_session_limit.py and
tests/extensions/memory/test_redis_session.py in openai-agents-python), ported to
DataconSession; the ones about SQLite files, Redis TTLs and connection internals have no
counterpart here. Runs use the SDK's ScriptedModel: no network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator, Sequence
from typing import Any, cast

import anyio
import pytest
from agents import Agent, RunConfig, Runner, SessionSettings, TResponseInputItem, set_tracing_disabled
from agents.memory import Session
from agents.result import RunResultBase
from agents.testing import ScriptedModel, assistant_message

from datacon import NewConversationItem, Storage, StorageHook, StorageOperation, create_storage
from datacon.aio import AsyncStorage
from datacon.errors import BackendUnavailableError, ConfigError, HookRejectedError, InvalidInputError
from datacon.hooks import BeforeHookResult
from datacon.integrations.openai_agents import DataconSession
from tests.support import BackendUnderTest

pytestmark = pytest.mark.anyio

set_tracing_disabled(True)  # no trace export (it would try the network)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the SDK's Runner runs on asyncio


@pytest.fixture
def session(storage: Storage) -> Iterator[DataconSession]:
    with DataconSession("sdk_session", storage) as opened:
        yield opened


def _run_sync(agent: Agent[Any], data: Any, **kwargs: Any) -> RunResultBase:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return Runner.run_sync(agent, data, **kwargs)
    finally:
        loop.close()


async def run_agent(method: str, agent: Agent[Any], data: Any, **kwargs: Any) -> RunResultBase:
    """The SDK tests' helper: Runner.run, Runner.run_sync (in a thread) or Runner.run_streamed."""
    if method == "run":
        return await Runner.run(agent, data, **kwargs)
    if method == "run_sync":
        return await asyncio.to_thread(_run_sync, agent, data, **kwargs)
    result = Runner.run_streamed(agent, data, **kwargs)
    async for _event in result.stream_events():
        pass
    return result


def messages(*contents: str, role: str = "user") -> list[TResponseInputItem]:
    return [cast(TResponseInputItem, {"role": role, "content": content}) for content in contents]


def contents(items: list[TResponseInputItem]) -> list[Any]:
    return [item.get("content") for item in items]


async def add_foreign_item(storage: Storage, session_id: str) -> None:
    """An item that is no SDK item (a JSON string), written to the session's conversation by
    another program: the counterpart of the SDK tests' corrupt rows."""
    await anyio.to_thread.run_sync(
        lambda: storage.items.append_items(session_id, [NewConversationItem("message", "not an item")])
    )


# --- The protocol and the Runner ---------------------------------------------------------


def test_is_an_sdk_session(storage: Storage) -> None:
    session = DataconSession("proto", storage)
    assert isinstance(session, Session)
    assert session.session_id == "proto"


RUNNERS = ["run", "run_sync", "run_streamed"]


@pytest.mark.parametrize("method", RUNNERS)
async def test_runner_memory_basic(session: DataconSession, method: str) -> None:
    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    model.enqueue([assistant_message("San Francisco")])
    first = await run_agent(method, agent, "What city is the Golden Gate Bridge in?", session=session)
    assert first.final_output == "San Francisco"
    model.enqueue([assistant_message("California")])
    second = await run_agent(method, agent, "What state is it in?", session=session)
    assert second.final_output == "California"
    last_input = model.calls[-1].input
    assert isinstance(last_input, list)
    assert [item.get("content") for item in last_input][0::2] == [
        "What city is the Golden Gate Bridge in?",
        "What state is it in?",
    ]
    assert last_input[1]["content"][0]["text"] == "San Francisco"
    stored = await session.get_items()
    assert len(stored) == 4
    assert stored[:3] == last_input


@pytest.mark.parametrize("method", RUNNERS)
async def test_runner_different_sessions(storage: Storage, method: str) -> None:
    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    one, two = DataconSession("session_1", storage), DataconSession("session_2", storage)
    model.enqueue([assistant_message("I like cats")])
    await run_agent(method, agent, "I like cats", session=one)
    model.enqueue([assistant_message("I like dogs")])
    await run_agent(method, agent, "I like dogs", session=two)
    model.enqueue([assistant_message("Yes, you mentioned cats")])
    result = await run_agent(method, agent, "What did I say I like?", session=one)
    assert result.final_output == "Yes, you mentioned cats"
    last_input = model.calls[-1].input
    assert isinstance(last_input, list)
    assert "I like dogs" not in [item.get("content") for item in last_input]
    assert contents(await two.get_items())[0] == "I like dogs"


@pytest.mark.parametrize("method", RUNNERS)
async def test_runner_appends_list_input(session: DataconSession, method: str) -> None:
    history = messages("Earlier message") + messages("Saved reply", role="assistant")
    await session.add_items(history)
    model = ScriptedModel()
    model.enqueue([assistant_message("This should run")])
    new_input = messages("Test message")
    await run_agent(method, Agent(name="test", model=model), new_input, session=session)
    assert model.calls[-1].input == history + new_input


@pytest.mark.parametrize("method", RUNNERS)
async def test_runner_session_input_callback(session: DataconSession, method: str) -> None:
    history = messages("Hello there.") + messages("Hi, I'm here to assist you.", role="assistant")
    await session.add_items(history)

    def only_user(old: list[TResponseInputItem], new: list[TResponseInputItem]) -> list[TResponseInputItem]:
        return [item for item in old if item.get("role") == "user"] + new

    model = ScriptedModel()
    model.enqueue([assistant_message("I'm gpt-4o")])
    new_input = messages("What your name?")
    config = RunConfig(session_input_callback=only_user)
    await run_agent(method, Agent(name="test", model=model), new_input, session=session, run_config=config)
    assert model.calls[-1].input == [history[0], new_input[0]]


async def test_runner_repeating_history_does_not_grow_session(session: DataconSession) -> None:
    def repeat_first(old: list[TResponseInputItem], new: list[TResponseInputItem]) -> list[TResponseInputItem]:
        return [*old, old[0], *new] if old else new

    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    for turn in range(3):
        model.enqueue([assistant_message(f"assistant {turn}")])
        await Runner.run(
            agent, f"user {turn}", session=session, run_config=RunConfig(session_input_callback=repeat_first)
        )
    stored = await session.get_items()
    assert [item.get("content") for item in stored if item.get("role") == "user"] == ["user 0", "user 1", "user 2"]
    assert len(stored) == 6


@pytest.mark.parametrize("method", RUNNERS)
async def test_runner_session_limit(session: DataconSession, method: str) -> None:
    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    for turn in (1, 2, 3):
        model.enqueue([assistant_message(f"Reply {turn}")])
        await run_agent(method, agent, f"Message {turn}", session=session)
    assert len(await session.get_items()) == 6
    model.enqueue([assistant_message("Reply 4")])
    config = RunConfig(session_settings=SessionSettings(limit=2))
    await run_agent(method, agent, "Message 4", session=session, run_config=config)
    last_input = model.calls[-1].input
    assert isinstance(last_input, list)
    assert len(last_input) == 3
    assert last_input[0].get("content") == "Message 3"
    assert last_input[1]["content"][0]["text"] == "Reply 3"
    assert last_input[2].get("content") == "Message 4"


async def test_runner_session_limit_drops_unmatched_function_call_output(session: DataconSession) -> None:
    history = cast(
        list[TResponseInputItem],
        [
            {"role": "user", "content": "What is the weather?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "It is sunny.", "annotations": []}],
            },
        ],
    )
    await session.add_items(history)
    assert await session.get_items(limit=2) == history[-2:]
    model = ScriptedModel()
    model.enqueue([assistant_message("Tomorrow is sunny too.")])
    config = RunConfig(session_settings=SessionSettings(limit=2))
    await Runner.run(Agent(name="test", model=model), "What about tomorrow?", session=session, run_config=config)
    assert model.calls[-1].input == [history[-1], {"role": "user", "content": "What about tomorrow?"}]


@pytest.mark.parametrize("limit", [0, None, 100])
async def test_runner_session_limit_zero_none_larger(session: DataconSession, limit: int | None) -> None:
    model = ScriptedModel()
    agent = Agent(name="test", model=model)
    for turn in (1, 2):
        model.enqueue([assistant_message(f"Reply {turn}")])
        await Runner.run(agent, f"Message {turn}", session=session)
    model.enqueue([assistant_message("Reply 3")])
    config = RunConfig(session_settings=SessionSettings(limit=limit))
    await Runner.run(agent, "Message 3", session=session, run_config=config)
    last_input = model.calls[-1].input
    assert isinstance(last_input, list)
    assert len(last_input) == (1 if limit == 0 else 5)
    assert last_input[-1].get("content") == "Message 3"


async def test_runner_with_session_settings_override(storage: Storage) -> None:
    session = DataconSession("override", storage, session_settings=SessionSettings(limit=100))
    await session.add_items(messages(*(f"Turn {i}" for i in range(10))))
    model = ScriptedModel()
    model.enqueue([assistant_message("Got it")])
    config = RunConfig(session_settings=SessionSettings(limit=2))
    await Runner.run(Agent(name="test", model=model), "New question", session=session, run_config=config)
    last_input = model.calls[-1].input
    assert isinstance(last_input, list)
    assert [item.get("content") for item in last_input] == ["Turn 8", "Turn 9", "New question"]


class RejectAppends(StorageHook):
    def before(self, operation: StorageOperation, context: Any, payload: Any) -> BeforeHookResult:
        if operation is StorageOperation.APPEND_ITEMS:
            return BeforeHookResult.reject("no appends here")
        return BeforeHookResult.cont()


async def test_runner_add_items_failure_propagates_in_streamed(backend: BackendUnderTest) -> None:
    # A hook rejects the append: the stream raises instead of hanging (the SDK's issue 2130).
    with create_storage(backend.config(hook=RejectAppends())) as hooked:
        session = DataconSession("streamed_failure", hooked)
        model = ScriptedModel()
        model.enqueue([assistant_message("never reached")])
        result = Runner.run_streamed(Agent(name="test", model=model), "Hello", session=session)
        with pytest.raises(HookRejectedError, match="no appends here"), anyio.fail_after(5):
            async for _event in result.stream_events():
                pass


# --- Direct operations (the SDK's SQLiteSession and RedisSession tests) -------------------


async def test_direct_add_get_clear(session: DataconSession) -> None:
    await session.add_items(messages("Hello") + messages("Hi there!", role="assistant"))
    retrieved = await session.get_items()
    assert [(item.get("role"), item.get("content")) for item in retrieved] == [
        ("user", "Hello"),
        ("assistant", "Hi there!"),
    ]
    await session.clear_session()
    assert await session.get_items() == []


async def test_pop_item(session: DataconSession) -> None:
    assert await session.pop_item() is None
    await session.add_items(messages("Hello") + messages("Hi there!", role="assistant") + messages("How are you?"))
    assert len(await session.get_items()) == 3
    popped = await session.pop_item()
    assert popped == {"role": "user", "content": "How are you?"}
    assert contents(await session.get_items()) == ["Hello", "Hi there!"]
    assert await session.pop_item() == {"role": "assistant", "content": "Hi there!"}
    assert await session.pop_item() == {"role": "user", "content": "Hello"}
    assert await session.pop_item() is None
    assert await session.get_items() == []


async def test_pop_item_only_affects_its_session(storage: Storage) -> None:
    one, two = DataconSession("session_1", storage), DataconSession("session_2", storage)
    await one.add_items(messages("Session 1 message"))
    await two.add_items(messages("Session 2 message 1", "Session 2 message 2"))
    popped = await two.pop_item()
    assert popped is not None
    assert popped.get("content") == "Session 2 message 2"
    assert contents(await one.get_items()) == ["Session 1 message"]
    assert contents(await two.get_items()) == ["Session 2 message 1"]


async def test_pop_item_skips_foreign_newest(session: DataconSession, storage: Storage) -> None:
    await session.add_items(messages("valid"))
    await add_foreign_item(storage, session.session_id)
    assert await session.pop_item() == {"role": "user", "content": "valid"}
    assert await session.get_items() == []


async def test_pop_item_none_after_dropping_only_foreign_items(session: DataconSession, storage: Storage) -> None:
    await add_foreign_item(storage, session.session_id)
    assert await session.pop_item() is None
    assert await session.get_items() == []
    page = storage.items.list_items_page(session.session_id, _all())
    assert page.data == []


async def test_get_items_with_limit(session: DataconSession) -> None:
    items: list[TResponseInputItem] = []
    for n in (1, 2, 3):
        items += messages(f"Message {n}") + messages(f"Response {n}", role="assistant")
    await session.add_items(items)
    assert contents(await session.get_items()) == contents(items)
    assert contents(await session.get_items(limit=2)) == ["Message 3", "Response 3"]
    assert contents(await session.get_items(limit=4)) == ["Message 2", "Response 2", "Message 3", "Response 3"]
    assert await session.get_items(limit=10) == items
    assert await session.get_items(limit=0) == []


async def test_get_items_limit_skips_foreign_newest(session: DataconSession, storage: Storage) -> None:
    await session.add_items(messages("valid 0") + messages("valid 1", role="assistant") + messages("valid 2"))
    await add_foreign_item(storage, session.session_id)
    assert contents(await session.get_items(limit=2)) == ["valid 1", "valid 2"]
    assert contents(await session.get_items()) == ["valid 0", "valid 1", "valid 2"]


async def test_session_settings_limit_skips_foreign_newest(storage: Storage) -> None:
    session = DataconSession("settings_limit", storage, session_settings=SessionSettings(limit=2))
    await session.add_items(messages("valid 0", "valid 1", "valid 2"))
    await add_foreign_item(storage, session.session_id)
    assert contents(await session.get_items()) == ["valid 1", "valid 2"]


async def test_get_items_limit_returns_fewer_when_history_is_short(session: DataconSession) -> None:
    await session.add_items(messages("only"))
    assert contents(await session.get_items(limit=5)) == ["only"]


async def test_get_items_limit_beyond_one_page(session: DataconSession) -> None:
    items = messages(*(f"m{n}" for n in range(1205)))
    await session.add_items(items)
    assert await session.get_items() == items
    assert await session.get_items(limit=1100) == items[-1100:]


async def test_add_empty_items_list(session: DataconSession, storage: Storage) -> None:
    await session.add_items([])
    assert await session.get_items() == []
    assert storage.conversations.get_conversation(session.session_id) is None


async def test_unicode_content(session: DataconSession) -> None:
    items = messages("こんにちは") + messages("😊👍", role="assistant") + messages("Привет")
    await session.add_items(items)
    assert await session.get_items() == items


async def test_special_characters_and_sql_injection(session: DataconSession) -> None:
    items = messages(
        "O'Reilly",
        "DROP TABLE sessions;",
        '"SELECT * FROM users WHERE name = "admin";"',
        "Robert'); DROP TABLE students;--",
        "Normal message",
    )
    await session.add_items(items)
    assert await session.get_items() == items


async def test_data_integrity_with_problematic_strings(session: DataconSession) -> None:
    problematic = [
        "",
        "null",
        "\\u0000 escaped nul",
        "line1\nline2\ttab",
        '{"not": "json"',
        "a" * 10_000,
        "🧪" * 100,
        "%s %d {} {{}}",
        "KEYS * ; FLUSHALL",
    ]
    items = messages(*problematic)
    await session.add_items(items)
    assert await session.get_items() == items


async def test_concurrent_adds_from_threads(session: DataconSession) -> None:
    items = messages(*(f"Message {i}" for i in range(10)))

    def add(item: TResponseInputItem) -> None:
        asyncio.run(session.add_items([item]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(add, items))
    assert set(contents(await session.get_items())) == {f"Message {i}" for i in range(10)}


async def test_concurrent_pops_return_each_item_once(session: DataconSession) -> None:
    items = messages(*(f"m{i}" for i in range(12)))
    await session.add_items(items)
    popped = await asyncio.gather(*(session.pop_item() for _ in range(16)))
    got = [str(item.get("content")) for item in popped if item is not None]
    assert sorted(got) == sorted(map(str, contents(items)))  # each item exactly once, four pops found none
    assert await session.get_items() == []


async def test_failed_add_items_writes_nothing(session: DataconSession, storage: Storage) -> None:
    bad = [*messages("fine"), cast(TResponseInputItem, {"role": "user", "content": object()})]
    with pytest.raises(InvalidInputError):
        await session.add_items(bad)
    assert await session.get_items() == []
    await session.add_items(messages("after failure"))
    assert contents(await session.get_items()) == ["after failure"]


async def test_non_dict_item_is_refused(session: DataconSession) -> None:
    with pytest.raises(InvalidInputError, match="must be a dict"):
        await session.add_items(cast(list[TResponseInputItem], ["not a dict"]))
    assert await session.get_items() == []


async def test_add_items_is_one_atomic_append(backend: BackendUnderTest) -> None:
    seen: list[StorageOperation] = []

    class Record(StorageHook):
        def before(self, operation: StorageOperation, context: Any, payload: Any) -> BeforeHookResult:
            seen.append(operation)
            return BeforeHookResult.cont()

    with create_storage(backend.config(hook=Record())) as hooked:
        session = DataconSession("atomic", hooked)
        await session.add_items(messages("a", "b", "c"))
        await session.add_items(messages("d"))
    writes = [op for op in seen if op not in {StorageOperation.GET_CONVERSATION}]
    assert writes == [
        StorageOperation.CREATE_CONVERSATION,
        StorageOperation.APPEND_ITEMS,
        StorageOperation.APPEND_ITEMS,
    ]


async def test_rejected_append_writes_nothing(backend: BackendUnderTest) -> None:
    with create_storage(backend.config(hook=RejectAppends())) as hooked:
        session = DataconSession("rejected", hooked)
        with pytest.raises(HookRejectedError):
            await session.add_items(messages("a", "b"))
        assert await session.get_items() == []


# --- Session settings ---------------------------------------------------------------------


def test_session_settings_default(storage: Storage) -> None:
    session = DataconSession("default_settings", storage)
    assert isinstance(session.session_settings, SessionSettings)
    assert session.session_settings.limit is None


def test_session_settings_constructor_and_dict(storage: Storage) -> None:
    assert DataconSession("s", storage, session_settings=SessionSettings(limit=5)).session_settings == SessionSettings(
        5
    )
    from_dict = DataconSession("s", storage, session_settings={"limit": 0}).session_settings
    assert isinstance(from_dict, SessionSettings)
    assert from_dict.limit == 0
    with pytest.raises(TypeError, match="Unknown session settings: limitt"):
        DataconSession("s", storage, session_settings={"limitt": 1})


async def test_get_items_uses_session_settings_limit(storage: Storage) -> None:
    session = DataconSession("settings_limit", storage, session_settings=SessionSettings(limit=3))
    await session.add_items(messages(*(f"Message {i}" for i in range(5))))
    assert contents(await session.get_items()) == ["Message 2", "Message 3", "Message 4"]
    assert contents(await session.get_items(limit=2)) == ["Message 3", "Message 4"]  # explicit wins


async def test_negative_limit_is_invalid(session: DataconSession) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        await session.get_items(limit=-1)


# --- datacon's own promises (SPEC 7.10) ---------------------------------------------------


async def test_items_are_stored_exactly_as_given(session: DataconSession, storage: Storage) -> None:
    item = cast(
        TResponseInputItem,
        {
            "id": "msg_sdk_1",  # the SDK's own id: content, not datacon's item id
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "x", "annotations": [], "logprobs": []}],
            "nested": {"numbers": [1, 2.5, -3], "flag": True, "none": None},
        },
    )
    await session.add_items([item, item])  # the same item twice: two items
    assert await session.get_items() == [item, item]
    stored = storage.items.list_items(session.session_id, _all())
    assert [record.content for record in stored] == [item, item]
    assert all(record.id != "msg_sdk_1" for record in stored)
    assert stored[0].id != stored[1].id
    assert (stored[0].item_type, stored[0].role, stored[0].status) == ("message", "assistant", "completed")


async def test_conversation_record_follows_the_items(session: DataconSession, storage: Storage) -> None:
    assert storage.conversations.get_conversation(session.session_id) is None
    await session.add_items(messages("hi"))
    assert storage.conversations.get_conversation(session.session_id) is not None
    await session.clear_session()
    assert storage.conversations.get_conversation(session.session_id) is None
    await session.add_items(messages("again"))  # recreated after a clear
    assert storage.conversations.get_conversation(session.session_id) is not None
    assert contents(await session.get_items()) == ["again"]


async def test_existing_conversation_is_used(storage: Storage) -> None:
    from datacon import NewConversation

    storage.conversations.create_conversation(NewConversation(id="conv_existing", metadata={"user": "u1"}))
    session = DataconSession("conv_existing", storage)
    await session.add_items(messages("hi"))
    conversation = storage.conversations.get_conversation("conv_existing")
    assert conversation is not None
    assert conversation.metadata == {"user": "u1"}


async def test_pop_and_clear_delete_unshared_records(session: DataconSession, storage: Storage) -> None:
    await session.add_items(messages("a", "b", "c"))
    ids = [record.id for record in storage.items.list_items(session.session_id, _all())]
    # "b" is linked to a second conversation too: its record stays.
    storage.items.link_item(
        "other_conversation", ids[1], storage.items.list_items(session.session_id, _all())[1].created_at
    )
    assert await session.pop_item() == messages("c")[0]
    assert storage.items.get_item(ids[2]) is None
    await session.clear_session()
    assert storage.items.get_item(ids[0]) is None
    assert storage.items.get_item(ids[1]) is not None
    assert [item.id for item in storage.items.list_items("other_conversation", _all())] == [ids[1]]


@pytest.mark.parametrize("bad", ["x" * 65, ""])
def test_invalid_session_id(storage: Storage, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        DataconSession(bad, storage)


def test_storage_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match="storage must be"):
        DataconSession("s", cast(Any, 42))


def test_bad_url_fails_at_construction() -> None:
    with pytest.raises(ConfigError):
        DataconSession("s", "nosuch://x")


async def test_given_storage_is_left_open(storage: Storage) -> None:
    session = DataconSession("given", storage)
    await session.add_items(messages("kept"))
    session.close()
    session.close()  # idempotent
    assert not storage.closed
    with pytest.raises(BackendUnavailableError, match="closed"):
        await session.get_items()
    with pytest.raises(BackendUnavailableError, match="closed"):
        await session.add_items([])  # closed is checked before the empty fast path
    assert [item.content for item in storage.items.list_items("given", _all())] == messages("kept")


async def test_async_storage_is_accepted_and_left_open(storage: Storage) -> None:
    facade = AsyncStorage(storage)
    async with DataconSession("async_given", facade) as session:
        await session.add_items(messages("hi"))
        assert contents(await session.get_items()) == ["hi"]
    assert not facade.closed


async def test_url_opened_storage_is_closed_by_aclose(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/agents.db"
    session = DataconSession("owned", url)
    await session.add_items(messages("persisted"))
    opened = session._conversation.handle._sync
    assert opened is not None
    await session.aclose()
    assert opened.closed
    with pytest.raises(BackendUnavailableError):
        await session.get_items()
    async with DataconSession("owned", url) as again:  # a new session reads what the first wrote
        assert contents(await again.get_items()) == ["persisted"]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_works_under_trio(storage: Storage) -> None:
    session = DataconSession("trio_session", storage)
    await session.add_items(messages("one", "two"))
    assert contents(await session.get_items(limit=1)) == ["two"]
    assert await session.pop_item() == messages("two")[0]
    await session.clear_session()
    assert await session.get_items() == []


def _all() -> Any:
    from datacon import ListParams

    return ListParams(limit=10_000)


@pytest.mark.parametrize("operation", ["add", "pop", "clear"])
async def test_cancellation_waits_for_the_mutation(backend: BackendUnderTest, operation: str) -> None:
    # The SDK's test_mutation_cancellation_waits_for_authoritative_outcome: once a write has
    # started, cancelling the caller (twice) does not end the call before the write is done,
    # and its outcome is visible when the cancellation arrives.
    applied, release = threading.Event(), threading.Event()

    class PauseAfter(StorageHook):
        def after(self, operation: StorageOperation, context: Any, payload: Any, result: Any, extra: Any) -> None:
            if operation in {StorageOperation.APPEND_ITEMS, StorageOperation.DELETE_CONVERSATION} and pause[0]:
                applied.set()
                release.wait(10)

    pause = [False]
    with create_storage(backend.config(hook=PauseAfter())) as storage:
        session = DataconSession("cancelled", storage)
        await session.add_items(messages("once"))
        if operation == "pop":
            unlink = storage.raw.items.unlink_items

            def paused_unlink(conversation_id: str, item_ids: Sequence[str]) -> list[str]:
                removed = unlink(conversation_id, item_ids)
                applied.set()
                release.wait(10)
                return removed

            storage.raw.items.unlink_items = paused_unlink  # type: ignore[method-assign]
        pause[0] = True
        call = {
            "add": lambda: session.add_items(messages("twice")),
            "pop": session.pop_item,
            "clear": session.clear_session,
        }
        task = asyncio.create_task(call[operation]())
        try:
            await asyncio.to_thread(applied.wait, 10)
            task.cancel()
            await asyncio.sleep(0)
            task.cancel()
            await asyncio.sleep(0.05)
            assert not task.done()
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            release.set()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        pause[0] = False
        expected = {"add": ["once", "twice"], "pop": [], "clear": []}[operation]
        assert contents(await session.get_items()) == expected


async def test_hooks_see_each_removal_as_delete_item(backend: BackendUnderTest) -> None:
    seen: list[tuple[StorageOperation, Any]] = []

    class Record(StorageHook):
        def before(self, operation: StorageOperation, context: Any, payload: Any) -> BeforeHookResult:
            if operation is StorageOperation.DELETE_ITEM:
                seen.append((operation, payload))
            return BeforeHookResult.cont()

    with create_storage(backend.config(hook=Record())) as storage:
        session = DataconSession("audited", storage)
        await session.add_items(messages("a", "b", "c"))
        ids = [item.id for item in storage.items.list_items("audited", _all())]
        await session.pop_item()
        assert seen == [(StorageOperation.DELETE_ITEM, {"conversation_id": "audited", "item_id": ids[2]})]
        await session.clear_session()
        assert [payload["item_id"] for _, payload in seen[1:]] == ids[:2]


async def test_a_hook_rejecting_deletes_keeps_everything(backend: BackendUnderTest) -> None:
    class NoDeletes(StorageHook):
        def before(self, operation: StorageOperation, context: Any, payload: Any) -> BeforeHookResult:
            if operation is StorageOperation.DELETE_ITEM:
                return BeforeHookResult.reject("retention policy: no deletes")
            return BeforeHookResult.cont()

    with create_storage(backend.config(hook=NoDeletes())) as storage:
        session = DataconSession("kept", storage)
        await session.add_items(messages("a", "b"))
        with pytest.raises(HookRejectedError, match="no deletes"):
            await session.pop_item()
        with pytest.raises(HookRejectedError, match="no deletes"):
            await session.clear_session()
        assert contents(await session.get_items()) == ["a", "b"]
        assert storage.conversations.get_conversation("kept") is not None
