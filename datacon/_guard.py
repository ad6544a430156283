"""The guard in front of every backend: argument checks, id minting, and hooks.

The factory wraps every backend in these classes, so every backend (memory and none
included) sees the same validated input and fires the same hooks. Backends may then
assume: ids are non-empty ``str`` of at most 64 characters, datetimes are aware UTC,
limits are non-negative ints, and ``ListParams.order`` is a :class:`SortOrder`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from datacon._conversation_pages import list_page
from datacon._cursor import decode_cursor, encode_cursor, is_cursor
from datacon._serde import converter
from datacon._time import to_iso, utc_now
from datacon._validate import (
    ID_MAX,
    LONG_MAX,
    check_count,
    check_id,
    check_item_fields,
    check_metadata,
    check_response_fields,
    check_str,
    check_time,
)
from datacon.backends import retention
from datacon.backends.base import (
    NO_EXTRA,
    Backend,
    BackendConversations,
    BackendItems,
    BackendResponses,
    Extra,
    NotPrunableError,
    Position,
    Prunable,
)
from datacon.backends.created import minted_id
from datacon.backends.idempotency import DEFAULT_TTL_SECS, Idempotency, check_key, fingerprint
from datacon.context import current_request_context
from datacon.errors import ConflictError, HookRejectedError, InvalidInputError
from datacon.hooks import StorageHook, StorageOperation
from datacon.hooks import log as hook_log
from datacon.ids import item_id_digits, item_id_with, make_item_id, new_conversation_id
from datacon.models import (
    Conversation,
    ConversationItem,
    ConversationPage,
    ItemPage,
    ListParams,
    NewConversation,
    NewConversationItem,
    PruneReport,
    ResponseChain,
    SortOrder,
    StoredResponse,
)
from datacon.storage import ConversationItemStorage, ConversationStorage, Gate, ResponseStorage
from datacon.telemetry import Observer

__all__ = ["GuardedConversationStorage", "GuardedItemStorage", "GuardedResponseStorage", "GuardedRetention"]

T = TypeVar("T")
Inner = TypeVar("Inner")


def _payload(value: Any) -> Any:
    try:
        return converter.unstructure(value)
    except Exception:  # noqa: BLE001 - upstream semantics: an unserialisable payload becomes null
        return None


def _with_id(new: NewConversationItem, made: str | None = None) -> NewConversationItem:
    """``new`` with an id: its own, or ``made`` (else one made here), before any I/O (so that a
    retried call can reuse it). Built directly, positionally: ``attrs.evolve`` costs more."""
    if new.id is not None:
        return new
    item_id = make_item_id(new.item_type) if made is None else made
    return NewConversationItem(new.item_type, new.content, item_id, new.response_id, new.role, new.status)


class _Hooked(Generic[Inner]):
    """Runs one operation on ``inner`` (a backend's storage): inside its span and timing
    (``observer``), around it the hook.

    ``observer`` is ``None`` when there is nothing to observe (no OpenTelemetry, no slow
    threshold) and ``hook`` is ``None`` without a hook: the call then goes straight through.
    """

    def __init__(
        self,
        inner: Inner,
        hook: StorageHook | None,
        observer: Observer | None = None,
        gate: Gate | None = None,
        idempotency_ttl_secs: int = DEFAULT_TTL_SECS,
    ) -> None:
        self.inner = inner
        self._hook = hook
        self._idempotency_ttl = idempotency_ttl_secs
        self._observer = observer
        self._gate = gate or Gate("")
        # Hooks written before on_error existed (or not subclassing StorageHook) lack it.
        self._on_error = getattr(hook, "on_error", None)

    def _run(self, op: StorageOperation, payload: Callable[[], Any], call: Callable[[Extra], T]) -> T:
        # ``call`` gets the hook's extra-column values; only the inserting methods pass them on.
        if self._gate.closed:
            raise self._gate.refuse()
        observer = self._observer
        if self._hook is None:
            return call(NO_EXTRA) if observer is None else observer.observe(op, call, NO_EXTRA)
        if observer is None:
            return self._hooked(op, payload, call)
        return observer.observe(op, self._hooked_packed, (op, payload, call))

    def _straight(self) -> bool:
        """Whether a call may go straight to the backend: no hook, and nothing to observe now
        (what ``_run`` then does, without its closures; the fast path of the most frequent
        writes). A closed storage raises its error here, as in ``_run``."""
        if self._gate.closed:
            raise self._gate.refuse()
        if self._hook is not None:
            return False
        observer = self._observer
        return observer is None or observer.idle()

    def _idempotency(
        self,
        key: object,
        op: StorageOperation,
        arguments: Callable[[], dict[str, Any]],
        conversation_id: str | None = None,
    ) -> Idempotency | None:
        """The checked key with the fingerprint of the call's arguments as given (``None``: no key).

        A retry that finds the key stored still runs as a call (the hook's ``before`` and
        ``after``, a span); the backend then returns the stored result and writes nothing."""
        if key is None:  # the usual call: no key, nothing to check
            return None
        checked = check_key(key)
        if checked is None:
            return None
        return Idempotency(
            op.value, checked, fingerprint(op.value, arguments()), self._idempotency_ttl, conversation_id
        )

    def _hooked_packed(self, args: tuple[StorageOperation, Callable[[], Any], Callable[[Extra], T]]) -> T:
        return self._hooked(*args)

    def _hooked(self, op: StorageOperation, payload: Callable[[], Any], call: Callable[[Extra], T]) -> T:
        hook = self._hook
        if hook is None:
            return call(NO_EXTRA)
        ctx = current_request_context()
        data = payload()
        extra: Extra = NO_EXTRA
        try:
            decision = hook.before(op, ctx, data)
        except Exception as exc:  # noqa: BLE001 - a failing hook must not fail the operation
            hook_log.warning("storage hook before(%s) failed: %s: %s", op.value, type(exc).__name__, exc)
        else:
            if decision.rejected:
                raise HookRejectedError(decision.reason)
            extra = decision.extra
        try:
            result = call(extra)
        except Exception as error:
            on_error = self._on_error
            if on_error is not None:
                try:
                    on_error(op, ctx, data, error)
                except Exception as exc:  # noqa: BLE001 - as above; the backend's error is what the caller gets
                    hook_log.warning("storage hook on_error(%s) failed: %s: %s", op.value, type(exc).__name__, exc)
            raise
        try:
            hook.after(op, ctx, data, _payload(result), extra)
        except Exception as exc:  # noqa: BLE001 - as above
            hook_log.warning("storage hook after(%s) failed: %s: %s", op.value, type(exc).__name__, exc)
        return result

    def _hooked_each(self, op: StorageOperation, payloads: Sequence[Any], call: Callable[[], T]) -> T:
        """``call()`` (one backend call doing several ``op``s) with the hook run once per payload,
        as ``_hooked`` runs it: every ``before`` first (a rejection calls nothing), then the
        call, then every ``after`` (result ``None``), or every ``on_error``."""
        hook = self._hook
        if hook is None:
            return call()
        ctx = current_request_context()
        for data in payloads:
            try:
                decision = hook.before(op, ctx, data)
            except Exception as exc:  # noqa: BLE001 - a failing hook must not fail the operation
                hook_log.warning("storage hook before(%s) failed: %s: %s", op.value, type(exc).__name__, exc)
            else:
                if decision.rejected:
                    raise HookRejectedError(decision.reason)
        try:
            result = call()
        except Exception as error:
            on_error = self._on_error
            if on_error is not None:
                for data in payloads:
                    try:
                        on_error(op, ctx, data, error)
                    except Exception as exc:  # noqa: BLE001 - as above
                        hook_log.warning("storage hook on_error(%s) failed: %s: %s", op.value, type(exc).__name__, exc)
            raise
        for data in payloads:
            try:
                hook.after(op, ctx, data, None, NO_EXTRA)
            except Exception as exc:  # noqa: BLE001 - as above
                hook_log.warning("storage hook after(%s) failed: %s: %s", op.value, type(exc).__name__, exc)
        return result


class GuardedConversationStorage(_Hooked[BackendConversations], ConversationStorage):
    """Checks arguments and runs hooks around a backend's conversation storage."""

    def create_conversation(self, new: NewConversation, *, idempotency_key: str | None = None) -> Conversation:
        if not isinstance(new, NewConversation):
            raise InvalidInputError(f"create_conversation takes a NewConversation, got {type(new).__name__}")
        if new.id is not None:
            check_id(new.id, "conversation id")
        check_metadata(new.metadata)
        idem = self._idempotency(idempotency_key, StorageOperation.CREATE_CONVERSATION, lambda: {"new": new})

        def payload() -> Any:
            data: dict[str, Any] = {}
            if new.id is not None:
                data["id"] = new.id
            if new.metadata is not None:
                data["metadata"] = new.metadata
            return data

        def call(extra: Extra) -> Conversation:
            # The id is made here, before any I/O, so a retried call can reuse it.
            filled = new if new.id is not None else NewConversation(id=new_conversation_id(), metadata=new.metadata)
            return self.inner.create_conversation(filled, extra=extra, idempotency_key=idem)

        return self._run(StorageOperation.CREATE_CONVERSATION, payload, call)

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        check_id(conversation_id, "conversation id")
        if self._straight():
            return self.inner.get_conversation(conversation_id)
        return self._run(
            StorageOperation.GET_CONVERSATION,
            lambda: conversation_id,
            lambda _: self.inner.get_conversation(conversation_id),
        )

    def update_conversation(self, conversation_id: str, metadata: dict[str, object] | None) -> Conversation | None:
        check_id(conversation_id, "conversation id")
        check_metadata(metadata)
        return self._run(
            StorageOperation.UPDATE_CONVERSATION,
            lambda: {"id": conversation_id, "metadata": _payload(metadata)},
            lambda _: self.inner.update_conversation(conversation_id, metadata),
        )

    def delete_conversation(self, conversation_id: str) -> bool:
        check_id(conversation_id, "conversation id")
        return self._run(
            StorageOperation.DELETE_CONVERSATION,
            lambda: conversation_id,
            lambda _: self.inner.delete_conversation(conversation_id),
        )

    def list_conversations(self, params: ListParams, filter: Mapping[str, str] | None = None) -> ConversationPage:
        params, order = _checked_params(params, "list_conversations")
        checked = _checked_filter(filter, self.inner.filter_columns())
        return self._run(
            StorageOperation.LIST_CONVERSATIONS,
            lambda: {
                "params": {"limit": params.limit, "order": order.name.title(), "after": params.after},
                "filter": dict(checked),
            },
            lambda _: list_page(self.inner, params, checked),
        )


def _checked_params(params: ListParams, method: str) -> tuple[ListParams, SortOrder]:
    """``params`` checked (limit, order, after), with ``order`` a ``SortOrder``."""
    if not isinstance(params, ListParams):
        raise InvalidInputError(f"{method} takes ListParams, got {type(params).__name__}")
    check_count(params.limit, "limit", optional=False)
    try:
        order = SortOrder(params.order)
    except ValueError:
        raise InvalidInputError(f"order must be 'asc' or 'desc', got {params.order!r}") from None
    if params.after is not None:
        check_str(params.after, "after", 10_000)
    if order is not params.order:
        params = ListParams(limit=params.limit, order=order, after=params.after)
    return params, order


def _checked_filter(filter: Mapping[str, str] | None, columns: frozenset[str] | None) -> dict[str, str]:
    """``filter`` as a dict; every key a declared extra column (``columns``; ``None``: any), every
    value a string."""
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise InvalidInputError(f"filter must be a mapping of column names to strings, got {type(filter).__name__}")
    checked: dict[str, str] = {}
    for key, value in filter.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"filter keys must be non-empty strings, got {key!r}")
        if columns is not None and key not in columns:
            declared = ", ".join(sorted(columns)) or "none"
            raise InvalidInputError(
                f"filter key {key!r} is not an extra column of the conversations table (declared: {declared})"
            )
        check_str(value, f"filter value of {key!r}", 10_000, empty_ok=True)
        checked[key] = value
    return checked


class GuardedItemStorage(_Hooked[BackendItems], ConversationItemStorage):
    """Checks arguments and runs hooks around a backend's item storage."""

    def create_item(self, new: NewConversationItem, *, idempotency_key: str | None = None) -> ConversationItem:
        if not isinstance(new, NewConversationItem):
            raise InvalidInputError(f"create_item takes a NewConversationItem, got {type(new).__name__}")
        if new.id is not None:
            check_id(new.id, "item id")
        check_item_fields(new)
        if idempotency_key is None and self._straight():
            return self.inner.create_item(_with_id(new))
        idem = self._idempotency(idempotency_key, StorageOperation.CREATE_ITEM, lambda: {"new": new})

        def payload() -> Any:
            data = {
                "response_id": new.response_id,
                "item_type": new.item_type,
                "role": new.role,
                "content": _payload(new.content),
                "status": new.status,
            }
            return data if new.id is None else {"id": new.id, **data}

        def call(extra: Extra) -> ConversationItem:
            return self.inner.create_item(_with_id(new), extra=extra, idempotency_key=idem)

        return self._run(StorageOperation.CREATE_ITEM, payload, call)

    def link_item(self, conversation_id: str, item_id: str, added_at: datetime) -> None:
        check_id(conversation_id, "conversation id")
        check_id(item_id, "item id")
        when = check_time(added_at, "added_at")
        if self._straight():
            self.inner.link_item(conversation_id, item_id, when)
            return
        self._run(
            StorageOperation.LINK_ITEM,
            lambda: {"conversation_id": conversation_id, "item_id": item_id, "added_at": to_iso(when)},
            lambda extra: self.inner.link_item(conversation_id, item_id, when, extra=extra),
        )

    def link_items(self, conversation_id: str, items: Sequence[tuple[str, datetime]]) -> None:
        check_id(conversation_id, "conversation id")
        raw: object = items  # callers without type checking may pass anything
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
            raise InvalidInputError("items must be a sequence of (item_id, added_at) pairs")
        checked: list[tuple[str, datetime]] = []
        seen: set[str] = set()
        for index, pair in enumerate(items):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise InvalidInputError(f"items[{index}] must be an (item_id, added_at) pair")
            item_id = check_id(pair[0], f"items[{index}] item id")
            if item_id in seen:
                # All or nothing: a repeated id would be a duplicate link, so nothing is written.
                raise ConflictError(f"item {item_id} appears twice in link_items")
            seen.add(item_id)
            checked.append((item_id, check_time(pair[1], f"items[{index}] added_at")))
        self._run(
            StorageOperation.LINK_ITEMS,
            lambda: {"conversation_id": conversation_id, "items_count": len(checked)},
            lambda extra: self.inner.link_items(conversation_id, checked, extra=extra) if checked else None,
        )

    def append_items(
        self,
        conversation_id: str,
        items: Sequence[NewConversationItem],
        added_at: datetime | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> list[ConversationItem]:
        check_id(conversation_id, "conversation id")
        raw: object = items  # callers without type checking may pass anything
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
            raise InvalidInputError("items must be a sequence of NewConversationItem")
        when = utc_now() if added_at is None else check_time(added_at, "added_at")
        filled: list[NewConversationItem] = []
        seen: set[str] = set()
        digits, at = "", 0  # the random parts of the ids to make, for this item and the rest
        for index, new in enumerate(items):
            if not isinstance(new, NewConversationItem):
                raise InvalidInputError(f"items[{index}] must be a NewConversationItem, got {type(new).__name__}")
            if new.id is not None:
                check_id(new.id, f"items[{index}] id")
            check_item_fields(new)
            # Ids are made here, before any I/O, so a retried call can reuse them; their random
            # parts read at once for the rest of the items when the first is needed.
            if new.id is None:
                if not digits:
                    digits = item_id_digits(len(items) - index)
                new = _with_id(new, item_id_with(new.item_type, digits[at : at + 50]))
                at += 50
            item_id = minted_id(new)
            if item_id in seen:
                # All or nothing: the second record would be a duplicate, so nothing is written.
                raise ConflictError(f"item {item_id} appears twice in append_items")
            seen.add(item_id)
            filled.append(new)
        # The arguments as given: ``added_at`` omitted stays omitted, ids not given stay unset.
        idem = self._idempotency(
            idempotency_key,
            StorageOperation.APPEND_ITEMS,
            lambda: {"items": list(items), "added_at": added_at},
            conversation_id,
        )

        def payload() -> Any:
            return {
                "conversation_id": conversation_id,
                "added_at": to_iso(when),
                "items": [
                    {
                        "id": new.id,
                        "response_id": new.response_id,
                        "item_type": new.item_type,
                        "role": new.role,
                        "content": _payload(new.content),
                        "status": new.status,
                    }
                    for new in filled
                ],
            }

        def call(extra: Extra) -> list[ConversationItem]:
            if not filled:
                return []
            return self.inner.append_items(conversation_id, filled, when, extra=extra, idempotency_key=idem)

        return self._run(StorageOperation.APPEND_ITEMS, payload, call)

    @staticmethod
    def _page_params(conversation_id: str, params: ListParams, method: str) -> tuple[ListParams, Position | None]:
        """Checked ``params`` (``after`` an item id, or ``None``) and the position of a cursor."""
        check_id(conversation_id, "conversation id")
        params, order = _checked_params(params, method)
        after = params.after
        position = None
        if after is not None:
            if is_cursor(after):
                position = decode_cursor(after, conversation_id, order)
                after = None
            elif len(after) > ID_MAX:
                after = None  # longer than any id: never linked, so ignored like any unknown item id
        if after != params.after:
            params = ListParams(limit=params.limit, order=order, after=after)
        return params, position

    @staticmethod
    def _list_payload(conversation_id: str, params: ListParams, given: str | None) -> Any:
        order = SortOrder(params.order)
        return {
            "conversation_id": conversation_id,
            "params": {"limit": params.limit, "order": order.name.title(), "after": given},
        }

    def list_items(self, conversation_id: str, params: ListParams) -> list[ConversationItem]:
        given = params.after if isinstance(params, ListParams) else None
        checked, position = self._page_params(conversation_id, params, "list_items")
        if position is None and self._straight():  # the common read: no closures, no payload
            return self.inner.list_items(conversation_id, checked) if checked.limit else []

        def call(_: Extra) -> list[ConversationItem]:
            if checked.limit == 0:
                return []
            if position is not None:
                return [item for item, _, _ in self.inner.page_items(conversation_id, checked, position)[0]]
            return self.inner.list_items(conversation_id, checked)

        return self._run(StorageOperation.LIST_ITEMS, lambda: self._list_payload(conversation_id, checked, given), call)

    def list_items_page(self, conversation_id: str, params: ListParams) -> ItemPage:
        given = params.after if isinstance(params, ListParams) else None
        checked, position = self._page_params(conversation_id, params, "list_items_page")
        order = SortOrder(checked.order)

        def call(_: Extra) -> ItemPage:
            if checked.limit == 0:
                return ItemPage()
            rows, more = self.inner.page_items(conversation_id, checked, position)
            data = [item for item, _, _ in rows]
            cursor = None
            if more and rows:
                last, added_at, seq = rows[-1]
                cursor = encode_cursor(conversation_id, order, (added_at, seq, last.id))
            return ItemPage(
                data=data,
                first_id=data[0].id if data else None,
                last_id=data[-1].id if data else None,
                has_more=cursor is not None,
                next_cursor=cursor,
            )

        return self._run(
            StorageOperation.LIST_ITEMS_PAGE, lambda: self._list_payload(conversation_id, checked, given), call
        )

    def get_item(self, item_id: str) -> ConversationItem | None:
        check_id(item_id, "item id")
        if self._straight():
            return self.inner.get_item(item_id)
        return self._run(StorageOperation.GET_ITEM, lambda: item_id, lambda _: self.inner.get_item(item_id))

    def is_item_linked(self, conversation_id: str, item_id: str) -> bool:
        check_id(conversation_id, "conversation id")
        check_id(item_id, "item id")
        return self._run(
            StorageOperation.IS_ITEM_LINKED,
            lambda: {"conversation_id": conversation_id, "item_id": item_id},
            lambda _: self.inner.is_item_linked(conversation_id, item_id),
        )

    def delete_item(self, conversation_id: str, item_id: str) -> None:
        check_id(conversation_id, "conversation id")
        check_id(item_id, "item id")
        self._run(
            StorageOperation.DELETE_ITEM,
            lambda: {"conversation_id": conversation_id, "item_id": item_id},
            lambda _: self.inner.delete_item(conversation_id, item_id),
        )

    def unlink_items(self, conversation_id: str, item_ids: Sequence[str]) -> list[str]:
        """The backend's ``unlink_items`` behind the guard, for the framework adapters (not part
        of the public Protocol): removes the links, and the item records no other conversation
        links; the ids whose link this call removed.

        To hooks each item is one ``DELETE_ITEM`` with ``delete_item``'s payload: every
        ``before`` runs first (a rejection removes nothing), then one backend call, then every
        ``after``. One span (``datacon.delete_item``) for the whole call.
        """
        check_id(conversation_id, "conversation id")
        ids = [check_id(item_id, "item id") for item_id in dict.fromkeys(item_ids)]
        if self._gate.closed:
            raise self._gate.refuse()
        op = StorageOperation.DELETE_ITEM
        payloads = [{"conversation_id": conversation_id, "item_id": item_id} for item_id in ids]

        def call(_: object) -> list[str]:
            return self._hooked_each(op, payloads, lambda: self.inner.unlink_items(conversation_id, ids))

        observer = self._observer
        return call(None) if observer is None else observer.observe(op, call, None)


class GuardedResponseStorage(_Hooked[BackendResponses], ResponseStorage):
    """Checks arguments and runs hooks around a backend's response storage."""

    def store_response(self, response: StoredResponse, *, idempotency_key: str | None = None) -> str:
        if not isinstance(response, StoredResponse):
            raise InvalidInputError(f"store_response takes a StoredResponse, got {type(response).__name__}")
        check_id(response.id, "response id")
        check_response_fields(response)
        created = check_time(response.created_at, "created_at")
        idem = None
        if idempotency_key is not None:  # fingerprinted as given, before created_at is converted
            idem = self._idempotency(idempotency_key, StorageOperation.STORE_RESPONSE, lambda: {"response": response})
        if created is not response.created_at:
            response = StoredResponse(
                id=response.id,
                previous_response_id=response.previous_response_id,
                input=response.input,
                created_at=created,
                safety_identifier=response.safety_identifier,
                model=response.model,
                conversation_id=response.conversation_id,
                raw_response=response.raw_response,
            )
        if idempotency_key is None and self._straight():
            return self.inner.store_response(response)
        return self._run(
            StorageOperation.STORE_RESPONSE,
            lambda: _payload(response),
            lambda extra: self.inner.store_response(response, extra=extra, idempotency_key=idem),
        )

    def get_response(self, response_id: str) -> StoredResponse | None:
        check_id(response_id, "response id")
        if self._straight():
            return self.inner.get_response(response_id)
        return self._run(
            StorageOperation.GET_RESPONSE, lambda: response_id, lambda _: self.inner.get_response(response_id)
        )

    def delete_response(self, response_id: str) -> None:
        check_id(response_id, "response id")
        self._run(
            StorageOperation.DELETE_RESPONSE, lambda: response_id, lambda _: self.inner.delete_response(response_id)
        )

    def get_response_chain(self, response_id: str, max_depth: int | None = None) -> ResponseChain:
        check_id(response_id, "response id")
        check_count(max_depth, "max_depth", optional=True)
        return self._run(
            StorageOperation.GET_RESPONSE_CHAIN,
            lambda: {"response_id": response_id, "max_depth": max_depth},
            lambda _: ResponseChain() if max_depth == 0 else self.inner.get_response_chain(response_id, max_depth),
        )

    def list_identifier_responses(self, identifier: str, limit: int | None = None) -> list[StoredResponse]:
        check_str(identifier, "identifier", LONG_MAX)
        check_count(limit, "limit", optional=True)
        return self._run(
            StorageOperation.LIST_IDENTIFIER_RESPONSES,
            lambda: {"identifier": identifier, "limit": limit},
            lambda _: [] if limit == 0 else self.inner.list_identifier_responses(identifier, limit),
        )

    def delete_identifier_responses(self, identifier: str) -> int:
        check_str(identifier, "identifier", LONG_MAX)
        return self._run(
            StorageOperation.DELETE_IDENTIFIER_RESPONSES,
            lambda: {"identifier": identifier},
            lambda _: self.inner.delete_identifier_responses(identifier),
        )


class GuardedRetention(_Hooked[Backend]):
    """``Storage.prune`` and ``Storage.erase_identifier``: checked arguments, then one hooked
    operation (``PRUNE``/``ERASE_IDENTIFIER``: one span, one ``before``/``after``) that runs
    :mod:`datacon.backends.retention` over the backend's :class:`Prunable` calls."""

    def _ops(self) -> Prunable:
        if not isinstance(self.inner, Prunable):
            raise NotPrunableError(f"the {self.inner.kind} backend cannot prune or erase (it is not Prunable yet)")
        return self.inner

    def prune(
        self,
        older_than: datetime | timedelta,
        *,
        dry_run: bool = False,
        batch_size: int = retention.DEFAULT_BATCH,
        progress: retention.Progress | None = None,
    ) -> PruneReport:
        if isinstance(older_than, timedelta):
            if older_than < timedelta(0):
                raise InvalidInputError(f"older_than must not be a negative duration (got {older_than})")
            cutoff = check_time(utc_now() - older_than, "prune cutoff (now - older_than)")
        elif isinstance(older_than, datetime):
            cutoff = check_time(older_than, "older_than")
        else:
            raise InvalidInputError(f"older_than must be a datetime or a timedelta, got {type(older_than).__name__}")
        _check_run(dry_run, batch_size)
        ops = self._ops()
        return self._run(
            StorageOperation.PRUNE,
            lambda: {"older_than": to_iso(cutoff), "dry_run": dry_run},
            lambda _: retention.prune(ops, cutoff, dry_run=dry_run, batch_size=batch_size, progress=progress),
        )

    def erase_identifier(
        self,
        identifier: str,
        *,
        dry_run: bool = False,
        batch_size: int = retention.DEFAULT_BATCH,
        progress: retention.Progress | None = None,
    ) -> PruneReport:
        check_str(identifier, "identifier", LONG_MAX)
        _check_run(dry_run, batch_size)
        ops = self._ops()
        return self._run(
            StorageOperation.ERASE_IDENTIFIER,
            lambda: {"identifier": identifier, "dry_run": dry_run},
            lambda _: retention.erase_identifier(
                ops, identifier, dry_run=dry_run, batch_size=batch_size, progress=progress
            ),
        )


def _check_run(dry_run: object, batch_size: object) -> None:
    if not isinstance(dry_run, bool):
        raise InvalidInputError(f"dry_run must be a bool, got {type(dry_run).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
