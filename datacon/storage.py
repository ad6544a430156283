"""The three storage contracts (Protocols) and the ``Storage`` bundle the factory returns."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeAlias

import attrs

from datacon.context import reads_from_primary
from datacon.errors import BackendUnavailableError, DataconError
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
    StoredResponse,
)

if TYPE_CHECKING:
    from datacon.backends.base import Backend
    from datacon.telemetry import Observer

#: Ids per batch of ``prune`` and ``erase_identifier`` (``datacon.backends.retention.DEFAULT_BATCH``).
PRUNE_BATCH = 1000
#: ``prune``'s and ``erase_identifier``'s ``progress``: called after every batch with the totals so far.
PruneProgress: TypeAlias = Callable[[PruneReport], None]

__all__ = [
    "ConversationItemStorage",
    "ConversationStorage",
    "Gate",
    "HealthReport",
    "PruneProgress",
    "ResponseStorage",
    "Retention",
    "Storage",
]

#: The id :meth:`Storage.health` reads: a valid conversation id that no write ever creates.
HEALTH_PROBE_ID = "datacon_health_probe"


class ConversationStorage(Protocol):
    """Conversations. Absent records are ``None``/``False``, never errors."""

    @abstractmethod
    def create_conversation(self, new: NewConversation, *, idempotency_key: str | None = None) -> Conversation:
        """Create a conversation (fresh ``conv_…`` id unless given).

        ``idempotency_key`` (1-255 characters): a retry with the same key returns the first
        call's result and writes nothing; the same key with other arguments raises
        ``ConflictError`` (SPEC 7.3; keys are kept ``idempotency_ttl_secs``).

        :raises ConflictError: a conversation with this id exists (nothing changes).
        """

    @abstractmethod
    def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation, or ``None``."""

    @abstractmethod
    def update_conversation(self, conversation_id: str, metadata: dict[str, object] | None) -> Conversation | None:
        """Replace the metadata (``None`` clears it); ``created_at`` is unchanged.

        :return: the updated conversation, or ``None`` if it does not exist.
        """

    @abstractmethod
    def delete_conversation(self, conversation_id: str) -> bool:
        """Delete the conversation and its links (item records stay). Whether it existed."""

    @abstractmethod
    def list_conversations(self, params: ListParams, filter: Mapping[str, str] | None = None) -> ConversationPage:
        """A page of conversations ordered by ``(created_at, id)`` (``params.order``), whose
        extra columns equal ``filter`` (compared as text). ``params.after`` is a conversation id
        or an earlier page's ``next_cursor``.

        :raises InvalidInputError: a ``filter`` key is not an extra column declared on the
            conversations table (memory and none accept any key), or bad ``params``.
        """


class ConversationItemStorage(Protocol):
    """Items, and their links to conversations (ordered by ``added_at``, then the order linked)."""

    @abstractmethod
    def create_item(self, new: NewConversationItem, *, idempotency_key: str | None = None) -> ConversationItem:
        """Create an item (id from ``make_item_id(item_type)`` unless given).

        ``idempotency_key`` (1-255 characters): a retry with the same key returns the first
        call's result and writes nothing; the same key with other arguments raises
        ``ConflictError`` (SPEC 7.3; keys are kept ``idempotency_ttl_secs``).

        :raises ConflictError: an item with this id exists.
        """

    @abstractmethod
    def link_item(self, conversation_id: str, item_id: str, added_at: datetime) -> None:
        """Link an item to a conversation at ``added_at``.

        :raises ConflictError: the item is already linked to this conversation.
        """

    @abstractmethod
    def link_items(self, conversation_id: str, items: Sequence[tuple[str, datetime]]) -> None:
        """Link several items atomically: all links are made, or none (``ConflictError``)."""

    @abstractmethod
    def append_items(
        self,
        conversation_id: str,
        items: Sequence[NewConversationItem],
        added_at: datetime | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> list[ConversationItem]:
        """Create every item and link it to the conversation at ``added_at`` (default: now),
        atomically (all or nothing), in one round trip on SQL and Redis.

        The links list in the order given (their sequence), after any link made before
        with the same ``added_at``. The conversation is not checked (as ``link_item``).
        An empty sequence returns ``[]`` and writes nothing.

        ``idempotency_key`` (1-255 characters): a retry with the same key returns the first
        call's result and writes nothing; the same key with other arguments raises
        ``ConflictError`` (SPEC 7.3; scoped to the conversation; keys are kept ``idempotency_ttl_secs``).

        :return: the created items, in the given order.
        :raises ConflictError: an id repeats, exists, or is already linked (nothing is written).
        """

    @abstractmethod
    def list_items(self, conversation_id: str, params: ListParams) -> list[ConversationItem]:
        """One page of linked items in ``(added_at, link sequence)`` order after the ``after`` cursor.

        Links that share one ``added_at`` list in the order they were linked; links made
        before datacon kept a sequence tie on it and are ordered by item id.
        ``params.limit`` is 0 to 2**31 - 1; outside that range: ``InvalidInputError``.
        """

    @abstractmethod
    def list_items_page(self, conversation_id: str, params: ListParams) -> ItemPage:
        """One page as :meth:`list_items`, with ``first_id``, ``last_id``, ``has_more`` and the
        opaque ``next_cursor`` to pass as ``ListParams.after`` for the next page.

        A cursor names a position, not an item: it stays valid after its item is unlinked or
        deleted (the next page continues after that position, never repeating an item).

        :raises InvalidInputError: ``after`` is a cursor of another conversation or order.
        """

    @abstractmethod
    def get_item(self, item_id: str) -> ConversationItem | None:
        """The item, or ``None``."""

    @abstractmethod
    def is_item_linked(self, conversation_id: str, item_id: str) -> bool:
        """Whether the item is linked to the conversation."""

    @abstractmethod
    def delete_item(self, conversation_id: str, item_id: str) -> None:
        """Remove the link only; the item record stays readable with ``get_item``."""


class ResponseStorage(Protocol):
    """Model responses, chained by ``previous_response_id``."""

    @abstractmethod
    def store_response(self, response: StoredResponse, *, idempotency_key: str | None = None) -> str:
        """Store a response and return its id.

        ``idempotency_key`` (1-255 characters): a retry with the same key returns the first
        call's result and writes nothing; the same key with another response (a retry passes the same object) raises
        ``ConflictError`` (SPEC 7.3; keys are kept ``idempotency_ttl_secs``).

        :raises ConflictError: a response with this id exists.
        """

    @abstractmethod
    def get_response(self, response_id: str) -> StoredResponse | None:
        """The response, or ``None``."""

    @abstractmethod
    def delete_response(self, response_id: str) -> None:
        """Delete the response (children keep their dangling ``previous_response_id``)."""

    @abstractmethod
    def get_response_chain(self, response_id: str, max_depth: int | None = None) -> ResponseChain:
        """The chain ending at ``response_id``, oldest first; the newest ``max_depth`` only.

        ``max_depth``: ``None`` for all, else 0 to 2**31 - 1 (``InvalidInputError`` outside).

        :raises InvalidChainError: the chain loops back on itself.
        """

    @abstractmethod
    def list_identifier_responses(self, identifier: str, limit: int | None = None) -> list[StoredResponse]:
        """Responses with this safety identifier, newest first (ties: id descending).

        ``limit``: ``None`` for all, else 0 to 2**31 - 1 (``InvalidInputError`` outside).
        """

    @abstractmethod
    def delete_identifier_responses(self, identifier: str) -> int:
        """Delete every response with this safety identifier; how many were deleted."""


class Retention(Protocol):
    """What :class:`Storage` forwards ``prune`` and ``erase_identifier`` to (the guard's
    ``GuardedRetention``: checks, hooks, then ``datacon.backends.retention``)."""

    def prune(
        self,
        older_than: datetime | timedelta,
        *,
        dry_run: bool = False,
        batch_size: int = PRUNE_BATCH,
        progress: PruneProgress | None = None,
    ) -> PruneReport: ...

    def erase_identifier(
        self,
        identifier: str,
        *,
        dry_run: bool = False,
        batch_size: int = PRUNE_BATCH,
        progress: PruneProgress | None = None,
    ) -> PruneReport: ...


class Gate:
    """Whether one storage is still open; its three guarded stores check it before every call.

    Once the storage is closed every call raises the same ``BackendUnavailableError`` on every
    backend (without it, memory, none and Redis went on serving and the SQL backends failed
    each in their own way).
    """

    __slots__ = ("backend", "closed")

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.closed = False

    def refuse(self) -> BackendUnavailableError:
        """The error every call of a closed storage raises."""
        return BackendUnavailableError(f"the {self.backend} storage is closed")


@attrs.frozen
class HealthReport:
    """What :meth:`Storage.health` found: whether the backend answered, how fast, and its pool.

    :ivar ok: the round trip succeeded (a readiness probe's answer).
    :ivar backend: the backend's name (``"postgres"``...).
    :ivar latency_secs: how long the round trip took, waiting for a pooled connection included.
    :ivar pool: the pool's counters at the end (``Storage.pool_stats()``; ``{}`` without a pool).
    :ivar error: why it failed (``"PoolTimeoutError: ..."``; never a secret), ``None`` when ok.
    """

    ok: bool
    backend: str
    latency_secs: float
    pool: dict[str, int] = attrs.field(factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-compatible dict, for a readiness endpoint's body."""
        return {
            "ok": self.ok,
            "backend": self.backend,
            "latency_secs": self.latency_secs,
            "pool": dict(self.pool),
            "error": self.error,
        }


class Storage:
    """The three storages of one backend, sharing one pool.

    Use it as a context manager, or call :meth:`close`. It unpacks like upstream's tuple:
    ``responses, conversations, items = create_storage(cfg)``.

    ``create_storage`` (through ``datacon.factory.wrap``) builds it around a backend: the three
    members are the backend's stores behind the guard, and ``raw`` is the backend itself,
    whose capabilities (``datacon.backends.base``) the export, import and migrate tools use.

    :ivar backend: the backend's name (``"memory"``, ``"sqlite"``...).
    :ivar max_concurrency: how many calls the backend serves at once (its pool size); the
        async facade sizes its thread limiter to it.
    """

    def __init__(
        self,
        raw: Backend,
        responses: ResponseStorage,
        conversations: ConversationStorage,
        items: ConversationItemStorage,
        *,
        observer: Observer | None = None,
        gate: Gate | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.raw = raw
        self._gate = gate
        if retention is None:
            from datacon._guard import GuardedRetention  # the guard imports this module

            retention = GuardedRetention(raw, None, observer, gate)
        self._retention: Retention = retention
        self.responses = responses
        self.conversations = conversations
        self.items = items
        self.backend = raw.kind
        self.max_concurrency = raw.max_concurrency
        self._observer = observer
        self.closed = False

    def close(self) -> None:
        """Close the backend's pool. Idempotent."""
        if not self.closed:
            self.closed = True
            if self._gate is not None:
                self._gate.closed = True  # first: from now on every call is refused the same way
            if self._observer is not None:
                self._observer.close()
            self.raw.close()

    def prune(
        self,
        older_than: datetime | timedelta,
        *,
        dry_run: bool = False,
        batch_size: int = PRUNE_BATCH,
        progress: PruneProgress | None = None,
    ) -> PruneReport:
        """Delete what is older than a cutoff (SPEC 7.7): responses and conversations created
        before it (conversations with their links), then the items created before it that no
        conversation links any more (never-linked items included).

        ``older_than`` is the cutoff (an aware datetime; "before" is strict, ``created_at <
        cutoff``) or an age (a ``timedelta``: the cutoff is now minus it). It works in batches of
        ``batch_size`` ids (at most the backend's ``Prunable.max_batch``: 1000 on SQL), each one
        short transaction (or one Redis script), so concurrent
        writers keep working; interrupted, it leaves a consistent state, and running it again
        finishes the job. An item still linked to a surviving conversation (or to any
        conversation id that was not pruned) survives. ``dry_run`` counts what would be deleted
        and deletes nothing. ``progress`` is called after every batch with the totals so far.
        Hooks see one ``StorageOperation.PRUNE``.

        :raises InvalidInputError: a naive or out-of-range cutoff, a negative age, a bad
            ``batch_size``.
        """
        return self._retention.prune(older_than, dry_run=dry_run, batch_size=batch_size, progress=progress)

    def erase_identifier(
        self,
        identifier: str,
        *,
        dry_run: bool = False,
        batch_size: int = PRUNE_BATCH,
        progress: PruneProgress | None = None,
    ) -> PruneReport:
        """Delete what belongs to one end user (SPEC 7.7): every response with this
        ``safety_identifier``, the conversations those responses name that no response with
        another identifier names (with their links), and the items no longer linked anywhere
        that were linked to those conversations.

        Batched and safe to re-run like :meth:`prune` (the responses go last, so an interrupted
        erasure still finds the conversations); ``dry_run`` counts and deletes nothing.
        Hooks see one ``StorageOperation.ERASE_IDENTIFIER``.
        """
        return self._retention.erase_identifier(identifier, dry_run=dry_run, batch_size=batch_size, progress=progress)

    def health(self) -> HealthReport:
        """One cheap round trip to the backend, and the pool's counters: for readiness probes.

        It reads a conversation that does not exist through the backend itself (one indexed
        lookup, on the primary even with read replicas: the server writes need; nothing is
        written, no hook runs, no span is made) and never raises for a backend failure: the
        report says ``ok=False`` with the error instead. It waits for a
        pooled connection like any call, so a saturated pool shows as a slow or failed
        (``PoolTimeoutError``) check.
        """
        if self.closed:
            return HealthReport(False, self.backend, 0.0, {}, "the storage is closed")
        start = perf_counter()
        error: str | None = None
        try:
            with reads_from_primary():
                self.raw.conversations.get_conversation(HEALTH_PROBE_ID)
        except DataconError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a probe reports, it does not raise; the type only (no message)
            error = type(exc).__name__
        latency = perf_counter() - start
        try:
            pool = dict(self.pool_stats())
        except Exception:  # noqa: BLE001 - the counters are informative only
            pool = {}
        return HealthReport(error is None, self.backend, latency, pool, error)

    def pool_stats(self) -> dict[str, int]:
        """Pool counters (at least ``size`` and ``in_use`` where the backend has a pool)."""
        return self.raw.pool_stats()

    def __enter__(self) -> Storage:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[object]:
        return iter((self.responses, self.conversations, self.items))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Storage backend={self.backend} {state}>"
