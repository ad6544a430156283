"""Differential testing: random operation sequences on each backend, the memory backend as the model."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from datacon import (
    Conversation,
    ConversationItem,
    ListParams,
    NewConversation,
    NewConversationItem,
    ResponseChain,
    SortOrder,
    Storage,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)
from datacon.errors import DataconError
from tests.conformance._util import at
from tests.reliability import figures
from tests.reliability._backends import RELIABILITY_SERVERS, backend_params, backend_password
from tests.support import RENAMED_SCHEMA, BackendUnderTest

pytestmark = pytest.mark.reliability

MAX_EXAMPLES = 40
STEPS = 30

# Small id pools, so sequences hit duplicates, absent records, shared links and chain cycles.
CONV_IDS = st.sampled_from(["c1", "c2", "c3"])
ITEM_IDS = st.sampled_from(["msg_1", "msg_2", "rs_3", "fc_4", "i'5"])
RESP_IDS = st.sampled_from(["r1", "r2", "r3", "r4", "r5"])
IDENTIFIERS = st.sampled_from(["u1", "u2", "u%"])
# Few instants, so links and responses share timestamps and tie-breaking by id is exercised.
INSTANTS = st.sampled_from([at(0), at(0, micros=1), at(1), at(1).astimezone(UTC) + timedelta(hours=1)])

# NUL is left out of JSON text: PostgreSQL's jsonb cannot hold it, and test_bad_input covers it.
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
TEXT = st.text(st.characters(exclude_categories=SURROGATES, exclude_characters="\x00"), max_size=6)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8
)
OBJECTS = st.dictionaries(TEXT, JSON, max_size=3)


def shape(value: Any, skipped: frozenset[str] = frozenset()) -> Any:
    """A comparable form of a result.

    Conversation and item ``created_at`` are stamped by each backend at write time, so they
    are compared against the backend's own earlier answers (see ``Differential.created``), not
    against the model's. ``skipped`` fields (``"item.status"``, ``"response.model"``: skip
    columns of the schema under test) are blanked on both sides.
    """

    def field(kind: str, name: str, field_value: Any) -> Any:
        return None if f"{kind}.{name}" in skipped else field_value

    if isinstance(value, Conversation):
        return ("conversation", value.id, value.metadata)
    if isinstance(value, ConversationItem):
        status = field("item", "status", value.status)
        return ("item", value.id, value.response_id, value.item_type, value.role, value.content, status)
    if isinstance(value, StoredResponse):
        return (
            "response",
            value.id,
            value.previous_response_id,
            value.input,
            value.created_at,
            value.safety_identifier,
            field("response", "model", value.model),
            value.conversation_id,
            value.raw_response,
        )
    if isinstance(value, ResponseChain):
        return ("chain", [shape(r, skipped) for r in value.responses], value.metadata)
    if isinstance(value, list):
        return [shape(v, skipped) for v in value]
    return value


def outcome(call: Callable[[], Any], password: str | None = None) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", error type)``; a non-datacon exception propagates (a defect).

    An error's message must not show ``password``.
    """
    try:
        return ("ok", call())
    except DataconError as exc:
        error = exc
    assert password is None or password not in str(error)
    return ("error", type(error))


def make_machine(
    fresh: Callable[[], Storage],
    counter: dict[str, int],
    password: str | None = None,
    skipped: frozenset[str] = frozenset(),
) -> type[RuleBasedStateMachine]:
    """A state machine comparing the storage ``fresh()`` gives (empty) with a memory model."""

    class Differential(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            counter["examples"] += 1
            self.sut = fresh()
            self.model = create_storage(StorageFactoryConfig())
            # created_at the backend gave each live record: it must never change afterwards.
            self.created: dict[tuple[str, str], datetime] = {}

        def teardown(self) -> None:
            self.model.close()

        def both(self, name: str, call: Callable[[Storage], Any]) -> Any:
            counter["steps"] += 1
            expected = outcome(lambda: call(self.model))
            actual = outcome(lambda: call(self.sut), password)
            got, want = (actual[0], shape(actual[1], skipped)), (expected[0], shape(expected[1], skipped))
            assert got == want, f"{name} diverged"
            self.check_created(actual[1])
            return actual

        def check_created(self, value: Any) -> None:
            records = value if isinstance(value, list) else [value]
            for record in records:
                if isinstance(record, Conversation | ConversationItem):
                    kind = type(record).__name__
                    assert record.created_at.utcoffset() == timedelta(0)
                    first = self.created.setdefault((kind, record.id), record.created_at)
                    assert record.created_at == first, f"{kind} {record.id} created_at changed"

        # --- conversations
        @rule(cid=CONV_IDS, metadata=st.none() | OBJECTS)
        def create_conversation(self, cid: str, metadata: dict[str, Any] | None) -> None:
            self.both(
                "create_conversation", lambda s: s.conversations.create_conversation(NewConversation(cid, metadata))
            )

        @rule(cid=CONV_IDS)
        def get_conversation(self, cid: str) -> None:
            self.both("get_conversation", lambda s: s.conversations.get_conversation(cid))

        @rule(cid=CONV_IDS, metadata=st.none() | OBJECTS)
        def update_conversation(self, cid: str, metadata: dict[str, Any] | None) -> None:
            self.both("update_conversation", lambda s: s.conversations.update_conversation(cid, metadata))

        @rule(cid=CONV_IDS)
        def delete_conversation(self, cid: str) -> None:
            if self.both("delete_conversation", lambda s: s.conversations.delete_conversation(cid)) == ("ok", True):
                self.created.pop(("Conversation", cid), None)  # a re-created one gets a new created_at

        # --- items and links
        @rule(
            iid=ITEM_IDS,
            item_type=st.sampled_from(["message", "reasoning", "function_call", "", "x" * 32]),
            content=JSON,
            role=st.none() | st.sampled_from(["user", "assistant"]),
            status=st.none() | st.just("completed"),
            response_id=st.none() | RESP_IDS,
        )
        def create_item(
            self, iid: str, item_type: str, content: Any, role: str | None, status: str | None, response_id: str | None
        ) -> None:
            new = NewConversationItem(item_type, content, id=iid, response_id=response_id, role=role, status=status)
            self.both("create_item", lambda s: s.items.create_item(new))

        @rule(iid=ITEM_IDS)
        def get_item(self, iid: str) -> None:
            self.both("get_item", lambda s: s.items.get_item(iid))

        @rule(cid=CONV_IDS, iid=ITEM_IDS, when=INSTANTS)
        def link_item(self, cid: str, iid: str, when: datetime) -> None:
            self.both("link_item", lambda s: s.items.link_item(cid, iid, when))

        @rule(cid=CONV_IDS, pairs=st.lists(st.tuples(ITEM_IDS, INSTANTS), max_size=4))
        def link_items(self, cid: str, pairs: list[tuple[str, datetime]]) -> None:
            self.both("link_items", lambda s: s.items.link_items(cid, pairs))

        @rule(
            cid=CONV_IDS,
            limit=st.integers(0, 6),
            order=st.sampled_from(SortOrder),
            after=st.none() | ITEM_IDS,
        )
        def list_items(self, cid: str, limit: int, order: SortOrder, after: str | None) -> None:
            self.both("list_items", lambda s: s.items.list_items(cid, ListParams(limit, order, after)))

        @rule(cid=CONV_IDS, iid=ITEM_IDS)
        def is_item_linked(self, cid: str, iid: str) -> None:
            self.both("is_item_linked", lambda s: s.items.is_item_linked(cid, iid))

        @rule(cid=CONV_IDS, iid=ITEM_IDS)
        def delete_item(self, cid: str, iid: str) -> None:
            self.both("delete_item", lambda s: s.items.delete_item(cid, iid))

        # --- responses
        @rule(
            rid=RESP_IDS,
            prev=st.none() | RESP_IDS,
            identifier=st.none() | IDENTIFIERS,
            created_at=INSTANTS,
            model=st.none() | st.just("gpt-x"),
            cid=st.none() | CONV_IDS,
            input_=JSON,
            raw=JSON,
        )
        def store_response(
            self,
            rid: str,
            prev: str | None,
            identifier: str | None,
            created_at: datetime,
            model: str | None,
            cid: str | None,
            input_: Any,
            raw: Any,
        ) -> None:
            response = StoredResponse(
                id=rid,
                previous_response_id=prev,
                input=input_,
                created_at=created_at,
                safety_identifier=identifier,
                model=model,
                conversation_id=cid,
                raw_response=raw,
            )
            self.both("store_response", lambda s: s.responses.store_response(response))

        @rule(rid=RESP_IDS)
        def get_response(self, rid: str) -> None:
            self.both("get_response", lambda s: s.responses.get_response(rid))

        @rule(rid=RESP_IDS)
        def delete_response(self, rid: str) -> None:
            self.both("delete_response", lambda s: s.responses.delete_response(rid))

        @rule(rid=RESP_IDS, max_depth=st.none() | st.integers(0, 4))
        def get_response_chain(self, rid: str, max_depth: int | None) -> None:
            self.both("get_response_chain", lambda s: s.responses.get_response_chain(rid, max_depth))

        @rule(identifier=IDENTIFIERS, limit=st.none() | st.integers(0, 3))
        def list_identifier_responses(self, identifier: str, limit: int | None) -> None:
            self.both("list_identifier_responses", lambda s: s.responses.list_identifier_responses(identifier, limit))

        @rule(identifier=IDENTIFIERS)
        def delete_identifier_responses(self, identifier: str) -> None:
            self.both("delete_identifier_responses", lambda s: s.responses.delete_identifier_responses(identifier))

        @invariant()
        def full_listings_agree(self) -> None:
            # Paging is checked by list_items; this catches links that only a full listing shows.
            for cid in ("c1", "c2", "c3"):

                def list_all(s: Storage, cid: str = cid) -> list[ConversationItem]:
                    return s.items.list_items(cid, ListParams(100))

                self.both("list_items(all)", list_all)

    return Differential


SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_backend_matches_the_memory_model(rel_backend: BackendUnderTest, rel_storage: Storage) -> None:
    counter = {"examples": 0, "steps": 0}

    def fresh() -> Storage:
        if rel_backend.name == "memory":
            # The memory run checks the machine itself: a model compared with itself must agree.
            return create_storage(StorageFactoryConfig())
        rel_backend.wipe()
        return rel_storage

    run_state_machine_as_test(make_machine(fresh, counter, backend_password(rel_backend)), settings=SETTINGS)
    figures.record(
        f"differential[{rel_backend.name}]", f"{counter['examples']} examples, {counter['steps']} compared calls"
    )
    assert counter["examples"] >= MAX_EXAMPLES


RENAMED_EXAMPLES = 25


@pytest.mark.parametrize("name", backend_params(RELIABILITY_SERVERS))
def test_renamed_schema_matches_the_memory_model(request: pytest.FixtureRequest, name: str) -> None:
    """The same, on tests.support.RENAMED_SCHEMA: renamed tables and columns, extra columns with
    defaults, and skipped columns (which read back as ``None``, so they are compared blind)."""
    backend: BackendUnderTest = request.getfixturevalue(f"{name}_backend")
    skipped = frozenset(
        f"{kind}.{field}"
        for kind, table in (("item", RENAMED_SCHEMA.conversation_items), ("response", RENAMED_SCHEMA.responses))
        for field in table.skip_columns
    )
    assert skipped == {"item.status", "response.model"}
    counter = {"examples": 0, "steps": 0}
    storage = create_storage(backend.config(schema=RENAMED_SCHEMA))

    def fresh() -> Storage:
        backend.wipe(RENAMED_SCHEMA)
        return storage

    try:
        machine = make_machine(fresh, counter, backend_password(backend), skipped)
        run_state_machine_as_test(machine, settings=settings(SETTINGS, max_examples=RENAMED_EXAMPLES))
    finally:
        storage.close()
        backend.wipe(RENAMED_SCHEMA)
    figures.record(
        f"differential[{name}-renamed]", f"{counter['examples']} examples, {counter['steps']} compared calls"
    )
    assert counter["examples"] >= RENAMED_EXAMPLES
