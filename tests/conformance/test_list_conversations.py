"""Conformance: listing conversations (SPEC §7.5), on every backend, sync + asyncio + trio.

The storage here declares two extra columns on the conversations table (``tenant_id`` with a
default, ``user_id``) in tables of its own, and a hook fills them from the request context.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from datacon import (
    BeforeHookResult,
    ColumnDef,
    Conversation,
    ConversationPage,
    ListParams,
    NewConversation,
    RequestContext,
    SchemaConfig,
    SortOrder,
    StorageHook,
    StorageOperation,
    TableConfig,
    create_storage,
    request_context,
)
from datacon.errors import InvalidInputError
from tests.aio_adapter import portal_storage
from tests.support import BackendUnderTest

LISTING_SCHEMA = SchemaConfig(
    conversations=TableConfig(
        table="lc_convs",
        extra_columns={
            "tenant_id": ColumnDef("VARCHAR(64)", default_value="t-default"),
            "user_id": ColumnDef("VARCHAR(64)"),
        },
    ),
    conversation_items=TableConfig(table="lc_items"),
    conversation_item_links=TableConfig(table="lc_links"),
    responses=TableConfig(table="lc_resps"),
)


class Tenancy(StorageHook):
    """Puts the request context's tenant and user into the extra columns; records list calls."""

    def __init__(self) -> None:
        self.listed: list[Any] = []

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        if operation is StorageOperation.LIST_CONVERSATIONS:
            self.listed.append(payload)
        extra = {}
        for key in ("tenant_id", "user_id"):
            value = None if context is None else context.get(key)
            if value is not None:
                extra[key] = value
        return BeforeHookResult.cont(extra)

    def after(
        self, operation: StorageOperation, context: RequestContext | None, payload: Any, result: Any, extra: Any
    ) -> None:
        return None


class Listing:
    def __init__(self, backend: str, storage: Any, hook: Tenancy) -> None:
        self.backend = backend
        self.conversations = storage.conversations
        self.hook = hook
        self.schemaless = backend == "memory"

    def create(self, **context: str) -> Conversation:
        with request_context(RequestContext(context)):
            conv: Conversation = self.conversations.create_conversation(NewConversation(metadata={"c": context}))
        return conv

    def page(
        self, limit: int, order: SortOrder = SortOrder.ASC, after: str | None = None, **filter: str
    ) -> ConversationPage:
        page: ConversationPage = self.conversations.list_conversations(ListParams(limit, order, after), filter or None)
        return page

    def walk(self, limit: int, order: SortOrder = SortOrder.ASC, **filter: str) -> list[str]:
        """Every page from the start, following next_cursor; checks each page's fields."""
        ids: list[str] = []
        after = None
        for _ in range(1000):
            page = self.page(limit, order, after, **filter)
            assert (page.next_cursor is None) == (not page.has_more)
            assert page.first_id == (page.data[0].id if page.data else None)
            assert page.last_id == (page.data[-1].id if page.data else None)
            assert len(page.data) <= limit
            ids += [c.id for c in page.data]
            if not page.has_more:
                return ids
            assert len(page.data) == limit
            after = page.next_cursor
        raise AssertionError("paging did not end")


@pytest.fixture
def listing(backend_default_variant: BackendUnderTest, api: str) -> Iterator[Listing]:
    # The listing schema is its own: one run per backend variant, not one per schema.
    backend = backend_default_variant
    hook = Tenancy()
    storage = create_storage(backend.config(schema=LISTING_SCHEMA, hook=hook))
    try:
        if api == "sync":
            yield Listing(backend.name, storage, hook)
        else:
            with portal_storage(storage, api) as facade:
                yield Listing(backend.name, facade, hook)
    finally:
        storage.close()
        backend.wipe(LISTING_SCHEMA)


def _order(convs: list[Conversation], descending: bool = False) -> list[str]:
    return [c.id for c in sorted(convs, key=lambda c: (c.created_at, c.id), reverse=descending)]


def test_pages_follow_created_at_then_id_in_both_orders(listing: Listing) -> None:
    convs = [listing.create(tenant_id="acme") for _ in range(7)]
    # Same created_at: the id breaks the tie (memory/SQL/Redis all keep microseconds).
    assert listing.walk(3) == _order(convs)
    assert listing.walk(2, SortOrder.DESC) == _order(convs, descending=True)
    assert listing.walk(100) == _order(convs)
    whole = listing.page(7)
    assert not whole.has_more
    assert whole.next_cursor is None
    assert [c.id for c in whole.data] == _order(convs)
    assert whole.data == sorted(convs, key=lambda c: (c.created_at, c.id))  # full records, metadata included


def test_filter_matches_extra_columns_set_by_the_hook(listing: Listing) -> None:
    a1 = listing.create(tenant_id="acme", user_id="u1")
    g1 = listing.create(tenant_id="globex", user_id="u1")
    a2 = listing.create(tenant_id="acme", user_id="u2")
    a3 = listing.create(tenant_id="acme", user_id="u1")
    assert listing.walk(1, tenant_id="acme") == _order([a1, a2, a3])
    assert listing.walk(2, SortOrder.DESC, tenant_id="acme") == _order([a1, a2, a3], descending=True)
    assert listing.walk(1, user_id="u1") == _order([a1, g1, a3])
    assert listing.walk(5, tenant_id="acme", user_id="u1") == _order([a1, a3])
    assert listing.walk(5, tenant_id="acme", user_id="u3") == []
    assert listing.walk(5, tenant_id="nobody") == []
    assert listing.walk(5, tenant_id="ACME") == []  # exact text comparison
    page = listing.page(10, tenant_id="globex")
    assert [c.id for c in page.data] == [g1.id]
    assert page.data[0].metadata == {"c": {"tenant_id": "globex", "user_id": "u1"}}


def test_filter_on_the_column_default(listing: Listing) -> None:
    defaulted = listing.create(user_id="u9")  # no tenant from the hook: the column default
    listing.create(tenant_id="acme", user_id="u9")
    if listing.schemaless:
        # Memory has no schema: only the hook's values are there to match.
        assert listing.walk(5, tenant_id="t-default") == []
    else:
        assert listing.walk(5, tenant_id="t-default") == [defaulted.id]


def test_filter_keys_must_be_declared_extra_columns(listing: Listing) -> None:
    listing.create(tenant_id="acme")
    if listing.schemaless:
        # Any key is accepted, matched against the hook-supplied values.
        assert listing.walk(5, colour="red") == []
        return
    for key in ("colour", "metadata", "id", "created_at"):
        with pytest.raises(InvalidInputError, match=f"filter key '{key}' is not an extra column"):
            listing.conversations.list_conversations(ListParams(5), {key: "x"})


@pytest.mark.parametrize(
    "bad_filter",
    [{"tenant_id": 5}, {5: "x"}, {"": "x"}, ["tenant_id"], {"tenant_id": None}, {"tenant_id": "a\x00b"}],
    ids=["int-value", "int-key", "empty-key", "not-a-mapping", "none-value", "nul"],
)
def test_a_bad_filter_is_invalid_input_naming_it(listing: Listing, bad_filter: Any) -> None:
    with pytest.raises(InvalidInputError, match="filter"):
        listing.conversations.list_conversations(ListParams(5), bad_filter)
    assert listing.hook.listed == []  # refused before the hook and the backend


def test_bad_params_are_invalid_input(listing: Listing) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        listing.page(-1)
    with pytest.raises(InvalidInputError, match="order"):
        listing.conversations.list_conversations(ListParams(5, order="sideways"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="ListParams"):
        listing.conversations.list_conversations({"limit": 5})


def test_limit_zero_is_an_empty_page(listing: Listing) -> None:
    listing.create(tenant_id="acme")
    page = listing.page(0)
    assert page == ConversationPage(data=[], first_id=None, last_id=None, has_more=False, next_cursor=None)


def test_after_a_conversation_id_and_an_unknown_id(listing: Listing) -> None:
    convs = _order([listing.create(tenant_id="acme") for _ in range(4)])
    assert [c.id for c in listing.page(10, after=convs[1]).data] == convs[2:]
    assert [c.id for c in listing.page(10, SortOrder.DESC, after=convs[2]).data] == convs[1::-1]
    assert [c.id for c in listing.page(10, after="conv_unknown").data] == convs  # ignored: from the start


def test_a_cursor_survives_the_deletion_of_its_conversation(listing: Listing) -> None:
    convs = _order([listing.create(tenant_id="acme") for _ in range(6)])
    first = listing.page(2, tenant_id="acme")
    assert [c.id for c in first.data] == convs[:2]
    assert first.next_cursor is not None
    assert listing.conversations.delete_conversation(convs[1]) is True
    assert listing.conversations.delete_conversation(convs[2]) is True
    rest = listing.page(10, after=first.next_cursor, tenant_id="acme")
    assert [c.id for c in rest.data] == convs[3:]
    assert listing.walk(10) == [convs[0], *convs[3:]]  # deleted conversations leave the listing


def test_a_cursor_is_bound_to_its_order(listing: Listing) -> None:
    for _ in range(3):
        listing.create(tenant_id="acme")
    cursor = listing.page(1).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidInputError, match="order"):
        listing.page(1, SortOrder.DESC, after=cursor)
    with pytest.raises(InvalidInputError, match="after"):
        listing.page(1, after=cursor[:-3] + "!!!")


def test_the_hook_sees_list_conversations(listing: Listing) -> None:
    listing.page(3, SortOrder.DESC, tenant_id="acme")
    assert listing.hook.listed == [
        {"params": {"limit": 3, "order": "Desc", "after": None}, "filter": {"tenant_id": "acme"}}
    ]


def test_the_page_serialises(listing: Listing) -> None:
    convs = [listing.create(tenant_id="acme") for _ in range(2)]
    page = listing.page(1)
    data = page.to_dict()
    assert data["data"] == [sorted(convs, key=lambda c: (c.created_at, c.id))[0].to_dict()]
    assert data["has_more"] is True
    assert ConversationPage.from_dict(data) == page


def test_filter_values_are_mapping_values(listing: Listing) -> None:
    acme = listing.create(tenant_id="acme")
    filter: Mapping[str, str] = {"tenant_id": "acme"}
    assert [c.id for c in listing.conversations.list_conversations(ListParams(5), filter).data] == [acme.id]
