"""Storage hooks: code that runs before and after every storage operation."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from datacon.context import RequestContext

__all__ = ["BeforeHookResult", "StorageHook", "StorageOperation"]

#: Where a hook that raises is reported (a warning; the operation goes on).
log = logging.getLogger(__name__)


class StorageOperation(enum.StrEnum):
    """The operations a hook sees: upstream's 17, in upstream's order, then datacon's own (SPEC §7)."""

    CREATE_CONVERSATION = "create_conversation"
    GET_CONVERSATION = "get_conversation"
    UPDATE_CONVERSATION = "update_conversation"
    DELETE_CONVERSATION = "delete_conversation"
    CREATE_ITEM = "create_item"
    LINK_ITEM = "link_item"
    LINK_ITEMS = "link_items"
    LIST_ITEMS = "list_items"
    GET_ITEM = "get_item"
    IS_ITEM_LINKED = "is_item_linked"
    DELETE_ITEM = "delete_item"
    STORE_RESPONSE = "store_response"
    GET_RESPONSE = "get_response"
    DELETE_RESPONSE = "delete_response"
    GET_RESPONSE_CHAIN = "get_response_chain"
    LIST_IDENTIFIER_RESPONSES = "list_identifier_responses"
    DELETE_IDENTIFIER_RESPONSES = "delete_identifier_responses"
    #: Creating a turn's items and linking them in one call (``append_items``, SPEC §7.2).
    APPEND_ITEMS = "append_items"
    #: SPEC §7.5. Payload ``{"params": {"limit", "order", "after"}, "filter": {...}}``.
    LIST_CONVERSATIONS = "list_conversations"
    #: A page of items with its cursor (``list_items_page``, SPEC 7.4).
    LIST_ITEMS_PAGE = "list_items_page"
    #: ``Storage.prune`` (SPEC 7.7). Payload ``{"older_than": ISO cutoff, "dry_run"}``; result the ``PruneReport``.
    PRUNE = "prune"
    #: ``Storage.erase_identifier`` (SPEC 7.7). Payload ``{"identifier", "dry_run"}``; result the ``PruneReport``.
    ERASE_IDENTIFIER = "erase_identifier"


#: Operations whose backend call receives the hook's extra-column values.
WRITE_OPERATIONS = frozenset(
    {
        StorageOperation.CREATE_CONVERSATION,
        StorageOperation.UPDATE_CONVERSATION,
        StorageOperation.CREATE_ITEM,
        StorageOperation.LINK_ITEM,
        StorageOperation.LINK_ITEMS,
        StorageOperation.APPEND_ITEMS,
        StorageOperation.STORE_RESPONSE,
    }
)


@attrs.define(frozen=True)
class BeforeHookResult:
    """What ``StorageHook.before`` decides: continue (with extra-column values) or reject."""

    rejected: bool = False
    reason: str = ""
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def cont(cls, extra: Mapping[str, Any] | None = None) -> BeforeHookResult:
        """Go on; ``extra`` supplies values for the schema's extra columns on writes."""
        return cls(extra=dict(extra or {}))

    @classmethod
    def reject(cls, reason: str) -> BeforeHookResult:
        """Refuse the operation: the caller gets ``HookRejectedError(reason)``."""
        return cls(rejected=True, reason=reason)


class StorageHook(Protocol):
    """Runs around every storage operation of every backend: ``before``, then ``after`` or ``on_error``.

    ``payload`` and ``result`` are JSON-shaped (dicts, lists, strings, numbers, ``None``),
    in upstream's shapes. A hook that raises is logged as a warning and the operation
    goes on; only ``BeforeHookResult.reject`` stops it. Hooks run in the thread that
    makes the call (a worker thread under the async facade), with the caller's
    :class:`RequestContext`.
    """

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        """Called before the backend; the default continues with no extra columns."""
        return BeforeHookResult.cont()

    def after(
        self,
        operation: StorageOperation,
        context: RequestContext | None,
        payload: Any,
        result: Any,
        extra: Mapping[str, Any],
    ) -> None:
        """Called after the backend succeeded (not after an error or a rejection)."""
        return None

    def on_error(
        self, operation: StorageOperation, context: RequestContext | None, payload: Any, error: Exception
    ) -> None:
        """Called when the backend call raised ``error`` (which the caller then gets).

        Not called for a rejection by :meth:`before` (the backend is never reached) nor for
        invalid arguments (refused before any hook runs). The default does nothing; like the
        other methods, an ``on_error`` that raises is logged and the backend's error is raised.
        """
        return None
