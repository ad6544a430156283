"""The backend contract: what every backend's entry point returns, and its capabilities.

Every backend package (``datacon.backends.<name>``) has one entry point,
``open_backend(config, *, check_schema=True) -> Backend``, that the factory calls. A
:class:`Backend` is three raw stores (the public storage Protocols, whose inserting methods
also take the hook-supplied extra-column values as ``extra``), ``kind``,
``max_concurrency``, ``close()`` and ``pool_stats()``. The factory puts the guard (argument
checks, id minting, hooks) in front of it; nothing above the backends reaches past this
module into a backend's internals.

Capabilities a backend may have besides, each a ``runtime_checkable`` Protocol that the tools
above test with ``isinstance``:

- :class:`Enumerable`: keyset pages of every record kind and counts (export, copy, verify);
- :class:`Restorable`: insert records exactly as given, atomically per batch (import, copy);
- :class:`Versioned`: a versioned schema, SQL tables or Redis's key layout (``datacon migrate``,
  ``datacon doctor``);
- :class:`Durable`: says what an acknowledged write survives on its server (``datacon doctor``);
- :class:`Prunable`: the indexed reads and bounded deletes that retention and erasure
  (``Storage.prune``, ``Storage.erase_identifier``, SPEC 7.7) are written once over
  (``datacon.backends.retention``). Every built-in backend has it.

Backends may assume the guard's checks hold (see ``datacon._validate``): ids are non-empty
strings of at most 64 characters, datetimes are aware UTC, limits are non-negative ints.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import attrs

from datacon._conversation_pages import list_page
from datacon.backends.idempotency import Idempotency
from datacon.errors import DataconError
from datacon.models import (
    Conversation,
    ConversationItem,
    ConversationPage,
    ItemPage,
    Link,
    ListParams,
    NewConversation,
    NewConversationItem,
    StoredResponse,
)
from datacon.storage import ConversationItemStorage, ConversationStorage, ResponseStorage

__all__ = [
    "NO_EXTRA",
    "RECORD_KINDS",
    "Backend",
    "BackendConversations",
    "BackendItems",
    "BackendResponses",
    "Durability",
    "Durable",
    "Enumerable",
    "Extra",
    "LinkPosition",
    "LinkRow",
    "NotEnumerableError",
    "NotPrunableError",
    "OpenBackend",
    "PageRow",
    "Position",
    "Prunable",
    "PrunableKind",
    "RecordKind",
    "Restorable",
    "SchemaStatus",
    "Versioned",
]

#: Hook-supplied extra-column values for one write, by column name (``BeforeHookResult.extra``).
Extra: TypeAlias = Mapping[str, Any]
#: No extra-column values: every extra column gets its default (or NULL).
NO_EXTRA: Extra = MappingProxyType({})

#: A place in a conversation's page order: a link's ``(added_at, sequence, item_id)``.
Position: TypeAlias = tuple[datetime, int, str]
#: A page's item with its link's ``added_at`` and sequence (the position after it).
PageRow: TypeAlias = tuple[ConversationItem, datetime, int]
#: Where an export's walk through every link stands: ``(conversation_id, added_at, sequence,
#: item_id)`` of the last link returned (``Enumerable.iter_links``).
LinkPosition: TypeAlias = tuple[str, datetime, int, str]
#: A link with its sequence (0 for a link made before sequences were kept).
LinkRow: TypeAlias = tuple[Link, int]

RecordKind: TypeAlias = Literal["conversation", "item", "link", "response"]
#: The record kinds that have a ``created_at`` (and so an age).
PrunableKind: TypeAlias = Literal["conversation", "item", "response"]
#: The record kinds, in dump order.
RECORD_KINDS: tuple[RecordKind, ...] = ("conversation", "item", "link", "response")


class BackendConversations(ConversationStorage, Protocol):
    """A backend's conversation store: the public contract; creating takes ``extra``.

    ``list_conversations`` is built on :meth:`page_conversations` (``datacon._conversation_pages``).
    """

    @abstractmethod
    def create_conversation(
        self, new: NewConversation, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> Conversation:
        """As the public method; ``new.id`` is set (the guard mints it), ``extra`` fills extra columns.

        ``idempotency_key``: the guard passes an :class:`~datacon.backends.idempotency.Idempotency`
        (checked and fingerprinted), which the backend resolves in the same transaction as
        the write (see that module); a plain key is fingerprinted with ``resolve``."""

    @abstractmethod
    def page_conversations(
        self, filter: Mapping[str, str], after: tuple[datetime, str] | None, descending: bool, limit: int
    ) -> list[Conversation]:
        """Up to ``limit`` (> 0) conversations in ``(created_at, id)`` order (descending if asked),
        strictly after ``after``, whose extra columns equal ``filter`` as text; served from an index.
        The guard has checked ``filter``'s keys against :meth:`filter_columns`."""

    def filter_columns(self) -> frozenset[str] | None:
        """The keys ``filter`` may use (the declared extra columns); ``None``: any key."""
        return None

    def list_conversations(self, params: ListParams, filter: Mapping[str, str] | None = None) -> ConversationPage:
        """As the public method (arguments unchecked: the guard checks them)."""
        return list_page(self, params, filter or {})


class BackendItems(ConversationItemStorage, Protocol):
    """A backend's item store: the public contract; creating and linking take ``extra``."""

    @abstractmethod
    def create_item(
        self, new: NewConversationItem, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> ConversationItem:
        """As the public method; ``new.id`` is set (the guard mints it); ``idempotency_key`` as
        for ``create_conversation``."""

    def link_item(self, conversation_id: str, item_id: str, added_at: datetime, *, extra: Extra = NO_EXTRA) -> None:
        """As the public method; by default one ``link_items`` call with one pair."""
        self.link_items(conversation_id, [(item_id, added_at)], extra=extra)

    @abstractmethod
    def link_items(
        self, conversation_id: str, items: Sequence[tuple[str, datetime]], *, extra: Extra = NO_EXTRA
    ) -> None:
        """As the public method; the guard has checked ``items`` has no repeated id."""

    @abstractmethod
    def append_items(
        self,
        conversation_id: str,
        items: Sequence[NewConversationItem],
        added_at: datetime | None = None,
        *,
        extra: Extra = NO_EXTRA,
        idempotency_key: Idempotency | str | None = None,
    ) -> list[ConversationItem]:
        """As the public method, atomically: every item created and linked, or nothing
        (``idempotency_key`` as for ``create_conversation``, scoped to the conversation).

        The guard has set every ``id``, checked that none repeats and that ``items`` is not
        empty, and resolved ``added_at`` (``None`` only from a direct caller: now). ``extra``
        fills the extra columns of the items table and of the links table (as ``create_item``
        and ``link_items``).
        """

    @abstractmethod
    def page_items(
        self, conversation_id: str, params: ListParams, position: Position | None
    ) -> tuple[list[PageRow], bool]:
        """A page as ``list_items`` (after ``params.after``), or after ``position`` when given
        (whether or not that link still exists); each item with its link's position, and
        whether the page is full and at least one more link follows it. ``limit`` > 0."""

    @abstractmethod
    def unlink_items(self, conversation_id: str, item_ids: Sequence[str]) -> list[str]:
        """Remove these items' links to the conversation, and delete the item records that no
        conversation links any more (an item still linked elsewhere keeps its record).

        For the framework adapters (``datacon.integrations``): a session's ``pop_item`` and
        ``clear_session`` leave no orphan records. Atomic on memory and the SQL backends; on
        Redis the links go in one script and the records after (see the Redis store).

        :return: the ids whose link existed (and was removed by this call), in the given order;
            of two concurrent calls for one link, one gets it.
        """

    def list_items_page(self, conversation_id: str, params: ListParams) -> ItemPage:
        """Not called on a backend: the guard builds pages (and cursors) from ``page_items``."""
        raise TypeError(f"{type(self).__name__}: the guard serves list_items_page (cursors) through page_items")


class BackendResponses(ResponseStorage, Protocol):
    """A backend's response store: the public contract; storing takes ``extra``."""

    @abstractmethod
    def store_response(
        self, response: StoredResponse, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> str:
        """As the public method; ``created_at`` is aware UTC; ``idempotency_key`` as for
        ``create_conversation``."""


@runtime_checkable
class Backend(Protocol):
    """What ``open_backend`` returns: one backend's three raw stores over one pool.

    Read-only members, so an implementation may declare narrower types (its own store
    classes); implementations match structurally (mypy checks each ``open_backend``).
    """

    @property
    def kind(self) -> str:
        """The backend's name (the ``HistoryBackend`` value, e.g. ``"sqlite"``)."""
        ...

    @property
    def max_concurrency(self) -> int:
        """How many calls it serves at once (its pool size); the async facade sizes its limiter to it."""
        ...

    @property
    def conversations(self) -> BackendConversations: ...

    @property
    def items(self) -> BackendItems: ...

    @property
    def responses(self) -> BackendResponses: ...

    def close(self) -> None:
        """Close the pool; called once by ``Storage.close``."""

    def pool_stats(self) -> dict[str, int]:
        """Pool counters (at least ``size`` and ``in_use`` where there is a pool), else ``{}``."""


@runtime_checkable
class Enumerable(Protocol):
    """Keyset-paginated reads of every record, and record counts.

    Each ``iter_*`` returns up to ``batch`` records whose key is strictly greater than the
    cursor (``None``: from the start), ascending; an empty page is the end. The key is the
    id; for links the :data:`LinkPosition` ``(conversation_id, added_at, sequence, item_id)``,
    so each conversation's links come in their list order (a restore that sequences them in
    the order given keeps a turn's order), each with its sequence.
    """

    def iter_conversations(self, after_id: str | None, batch: int) -> Sequence[Conversation]: ...

    def iter_items(self, after_id: str | None, batch: int) -> Sequence[ConversationItem]: ...

    def iter_links(self, after: LinkPosition | None, batch: int) -> Sequence[LinkRow]: ...

    def iter_responses(self, after_id: str | None, batch: int) -> Sequence[StoredResponse]: ...

    def count(self, kind: RecordKind) -> int:
        """How many records of ``kind`` are stored."""
        ...


@runtime_checkable
class Restorable(Protocol):
    """Insert records whose key is absent exactly as given (``created_at`` kept), skip the others.

    Each call is atomic (one transaction, or one ``MULTI``/``EXEC``) and returns how many
    records it inserted. Extra columns get their defaults: a restore carries no hook values.
    ``restore_links`` sequences the links it inserts in the order given (as ``link_items``).
    """

    def restore_conversations(self, records: Sequence[Conversation]) -> int: ...

    def restore_items(self, records: Sequence[ConversationItem]) -> int: ...

    def restore_links(self, records: Sequence[Link]) -> int: ...

    def restore_responses(self, records: Sequence[StoredResponse]) -> int: ...


class NotEnumerableError(DataconError):
    """The backend cannot list its records, so it cannot be exported or copied from."""


class NotPrunableError(DataconError):
    """The backend has no :class:`Prunable` calls, so it cannot prune or erase."""


@attrs.frozen
class SchemaStatus:
    """Where a versioned schema stands.

    :ivar current: the version recorded (or configured with ``schema.version``, if higher).
    :ivar latest: the newest version datacon knows.
    :ivar pending_statements: the exact SQL still to apply, in order (empty when up to date).
    """

    current: int
    latest: int
    pending_statements: tuple[str, ...] = ()


@runtime_checkable
class Versioned(Protocol):
    """A backend with a versioned schema and migrations (SQL tables; Redis: its key layout,
    whose ``pending_statements`` are ``RENAME``/``RESCALE`` steps instead of SQL)."""

    def schema_status(self) -> SchemaStatus:
        """The current and latest versions and the pending SQL; reads only, writes nothing.

        For an empty database the pending SQL is the whole schema at the latest version.
        """
        ...

    def apply_migrations(self) -> list[int]:
        """Apply the pending migrations under the backend's migration lock; the versions applied."""
        ...


@attrs.frozen
class Durability:
    """What the server does with an acknowledged write.

    :ivar persists: whether every acknowledged write reaches disk (e.g. Redis ``appendonly yes``).
    :ivar detail: one line saying what a crash would lose (no secrets).
    """

    persists: bool
    detail: str


@runtime_checkable
class Durable(Protocol):
    """A backend whose durability depends on server settings it can read."""

    def durability(self) -> Durability:
        """Ask the server (one round trip); raises the backend's error if it cannot."""
        ...


class OpenBackend(Protocol):
    """The type of every backend package's ``open_backend`` entry point.

    ``check_schema=False`` opens a versioned backend without checking its migrations (for
    ``datacon migrate``); the usual opening raises ``MigrationRequiredError`` when some are
    pending and ``auto_migrate`` is off.
    """

    def __call__(self, config: Any, /, *, check_schema: bool = True) -> Backend: ...


@runtime_checkable
class Prunable(Protocol):
    """Indexed reads and bounded, atomic deletes, for retention and erasure (SPEC 7.7).

    ``datacon.backends.retention`` runs ``prune`` and ``erase_identifier`` over these in
    batches of at most ``max_batch`` ids; each call is one short transaction (or one script),
    so concurrent writers wait at most one batch. Every read is served from an index: never a
    scan of a whole table (or ``SCAN`` of every key). A kind whose ``created_at`` (or the
    responses' ``safety_identifier``/``conversation_id``) is a skipped column has no such
    records: the reads return nothing.
    """

    @property
    def max_batch(self) -> int:
        """The most ids one call takes (e.g. Oracle's 1000 expressions in an ``IN`` list)."""
        ...

    def old_records(
        self, kind: PrunableKind, cutoff: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[datetime, str]]:
        """Up to ``limit`` ``(created_at, id)`` keys of ``kind`` with ``created_at < cutoff``,
        strictly after ``after``, ascending (an index on ``(created_at, id)``)."""
        ...

    def existing_conversations(self, ids: Sequence[str]) -> dict[str, datetime]:
        """Which of ``ids`` are stored conversations, with their ``created_at``."""
        ...

    def conversation_links(self, conversation_ids: Sequence[str]) -> list[tuple[str, str]]:
        """Every link of those conversations, as ``(conversation_id, item_id)``."""
        ...

    def item_links(self, item_ids: Sequence[str]) -> list[tuple[str, str]]:
        """Every link naming one of those items, as ``(item_id, conversation_id)`` (an index on the item)."""
        ...

    def identifier_responses(self, identifier: str, after_id: str | None, limit: int) -> list[tuple[str, str | None]]:
        """Up to ``limit`` responses with this safety identifier whose id is greater than
        ``after_id``, by id: ``(response_id, conversation_id)``."""
        ...

    def named_by_others(self, conversation_ids: Sequence[str], identifier: str) -> set[str]:
        """Those of ``conversation_ids`` that a response with another (non-null) safety
        identifier names as its ``conversation_id`` (an index on it)."""
        ...

    def delete_responses(self, ids: Sequence[str]) -> int:
        """Delete those responses (and their index entries); how many existed."""
        ...

    def delete_conversations(self, ids: Sequence[str], *, with_items: bool) -> tuple[int, int, int]:
        """Delete those conversations and all their links, atomically; with ``with_items``
        also (in the same transaction) the items those links named that no link names any
        more. ``(conversations, links, items)`` deleted."""
        ...

    def delete_unlinked_items(self, ids: Sequence[str]) -> int:
        """Delete those of the items that no link names (checked in the same statement or
        script as the delete); how many were deleted."""
        ...
