"""``SqlBackend``: the three SQL storages over one store, enumerable, restorable and versioned."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from datacon._time import utc_now
from datacon.backends.base import (
    NO_EXTRA,
    Enumerable,
    LinkPosition,
    LinkRow,
    Prunable,
    PrunableKind,
    RecordKind,
    Restorable,
    SchemaStatus,
    Versioned,
)
from datacon.models import Conversation, ConversationItem, Link, StoredResponse
from datacon.schema import SchemaConfig

from .dialect import Dialect
from .migrations import LATEST, bootstrap, pending
from .render import RetentionSql
from .session import Connector, Session
from .store import SqlConversationStorage, SqlItemStorage, SqlResponseStorage, SqlStore

__all__ = ["SqlBackend", "open_sql_backend"]

R = TypeVar("R")


def _ids(ids: Sequence[str], prefix: str = "k") -> dict[str, str]:
    return {f"{prefix}{n}": record_id for n, record_id in enumerate(ids)}


class SqlBackend(Enumerable, Restorable, Versioned, Prunable):
    """One SQL database: the shared storages over a :class:`SqlStore` (connector, dialect, statements).

    Enumeration pages are keyset queries on the primary keys (``WHERE id > :after ORDER BY
    id``; links by ``(conversation_id, added_at, seq, item_id)``, the page index's order, so
    an export lists each conversation's links in list order), in the database's own collation, so the
    cursor always agrees with the order; rows are decoded by the store's own (generated)
    decoders. A restore batch is one transaction of the dialect's insert-if-absent statements
    (``ON CONFLICT DO NOTHING``, Oracle's ``MERGE``) with the store's own encoders' bind
    parameters; extra columns get their defaults.

    Retention (``Prunable``) reads pages of old records on the ``(created_at, id)`` indexes
    and links by conversation or by item on their indexes (migration v5); each delete is one
    statement, or one transaction of a batch (a conversation batch with its links).
    """

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.kind = store.dialect.name
        self.max_concurrency = store.connector.max_concurrency
        self.conversations = SqlConversationStorage(store)
        self.items = SqlItemStorage(store)
        self.responses = SqlResponseStorage(store)

    def close(self) -> None:
        self.store.connector.close()

    def pool_stats(self) -> dict[str, int]:
        return self.store.connector.stats()

    # Prunable

    @property
    def max_batch(self) -> int:
        return self.store.dialect.max_in_list

    @property
    def _rsql(self) -> RetentionSql:
        found = self.store.sql.retention
        assert found is not None  # render() always renders them
        return found

    def old_records(
        self, kind: PrunableKind, cutoff: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[datetime, str]]:
        sql = self._rsql.old(kind, after is not None)
        if sql is None:
            return []
        d = self.store.dialect
        params: dict[str, Any] = {"cutoff": d.encode_time(cutoff), "limit": limit}
        if after is not None:
            params.update(at=d.encode_time(after[0]), after=after[1])
        with self.store.connector.session() as session:
            rows = session.fetchall(sql, params)
        return [(d.decode_time(row[0]), str(row[1])) for row in rows]

    def existing_conversations(self, ids: Sequence[str]) -> dict[str, datetime]:
        if not ids:
            return {}
        d = self.store.dialect
        with self.store.connector.session() as session:
            rows = session.fetchall(self._rsql.existing(len(ids)), _ids(ids))
        # A skipped created_at reads as now (never older than a cutoff).
        return {str(row[0]): d.decode_time(row[1]) if row[1] is not None else utc_now() for row in rows}

    def _links_of(self, field: str, ids: Sequence[str]) -> list[tuple[str, str]]:
        if not ids:
            return []
        with self.store.connector.session() as session:
            rows = session.fetchall(self._rsql.links_of(field, len(ids)), _ids(ids))
        return [(str(row[0]), str(row[1])) for row in rows]

    def conversation_links(self, conversation_ids: Sequence[str]) -> list[tuple[str, str]]:
        return self._links_of("conversation_id", conversation_ids)

    def item_links(self, item_ids: Sequence[str]) -> list[tuple[str, str]]:
        return self._links_of("item_id", item_ids)

    def identifier_responses(self, identifier: str, after_id: str | None, limit: int) -> list[tuple[str, str | None]]:
        sql = self._rsql.identifier_page(after_id is not None)
        if sql is None:
            return []
        params: dict[str, Any] = {"sid": identifier, "limit": limit}
        if after_id is not None:
            params["after"] = after_id
        with self.store.connector.session() as session:
            rows = session.fetchall(sql, params)
        return [(str(row[0]), None if row[1] is None else str(row[1])) for row in rows]

    def named_by_others(self, conversation_ids: Sequence[str], identifier: str) -> set[str]:
        sql = self._rsql.named_by_others(len(conversation_ids)) if conversation_ids else None
        if sql is None:
            return set()
        with self.store.connector.session() as session:
            rows = session.fetchall(sql, {**_ids(conversation_ids), "sid": identifier})
        return {str(row[0]) for row in rows}

    def delete_responses(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        with self.store.connector.session(write=True) as session:
            return session.execute(self._rsql.delete("response", len(ids)), _ids(ids))

    def delete_conversations(self, ids: Sequence[str], *, with_items: bool) -> tuple[int, int, int]:
        if not ids:
            return 0, 0, 0
        sql = self._rsql
        params = _ids(ids)
        items = 0
        with self.store.connector.session(write=True) as session, session.transaction():
            linked: list[str] = []
            if with_items:
                rows = session.fetchall(sql.links_of("conversation_id", len(ids)), params)
                linked = sorted({str(row[1]) for row in rows})
            links = session.execute(sql.unlink(len(ids)), params)
            conversations = session.execute(sql.delete("conversation", len(ids)), params)
            size = self.max_batch
            for start in range(0, len(linked), size):
                items += self._delete_unlinked(session, linked[start : start + size])
        return conversations, links, items

    def _delete_unlinked(self, session: Session, ids: Sequence[str]) -> int:
        return session.execute(self._rsql.delete_unlinked(len(ids)), {**_ids(ids), **_ids(ids, "j")})

    def delete_unlinked_items(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        with self.store.connector.session(write=True) as session:
            return self._delete_unlinked(session, ids)

    # Versioned

    def schema_status(self) -> SchemaStatus:
        """Reads only: nothing is created, even in an empty database (its statements are the
        whole schema, as ``datacon migrate sql`` prints it)."""
        store = self.store
        with store.connector.session() as session:
            current, statements = pending(session, store.sql)
        return SchemaStatus(current=current, latest=LATEST, pending_statements=tuple(statements))

    def apply_migrations(self) -> list[int]:
        store = self.store
        with store.connector.migration_session() as session:
            store.applied_migrations = bootstrap(session, store.sql, auto_migrate=True)
        return store.applied_migrations

    # Enumerable

    def _query(self, name: str) -> str:
        # Rendered by every dialect with the store's other statements (render._export_queries).
        return self.store.sql.export[name]

    def _page(
        self, name: str, after: dict[str, Any] | None, batch: int, decode: Callable[[tuple[Any, ...]], R]
    ) -> list[R]:
        query = self._query(f"{name}_first" if after is None else f"{name}_next")
        with self.store.connector.session() as session:
            rows = session.fetchall(query, {**(after or {}), "limit": batch})
        return [decode(row) for row in rows]

    def iter_conversations(self, after_id: str | None, batch: int) -> Sequence[Conversation]:
        return self._page(
            "conv", None if after_id is None else {"after": after_id}, batch, self.store.decode_conversation
        )

    def iter_items(self, after_id: str | None, batch: int) -> Sequence[ConversationItem]:
        return self._page("item", None if after_id is None else {"after": after_id}, batch, self.store.decode_item)

    def iter_responses(self, after_id: str | None, batch: int) -> Sequence[StoredResponse]:
        return self._page("resp", None if after_id is None else {"after": after_id}, batch, self.store.decode_response)

    def iter_links(self, after: LinkPosition | None, batch: int) -> Sequence[LinkRow]:
        d = self.store.dialect
        cursor = None
        if after is not None:
            cursor = {"acid": after[0], "aat": d.encode_time(after[1]), "aseq": after[2], "aiid": after[3]}
        decode_time = d.decode_time
        return self._page(
            "link", cursor, batch, lambda row: (Link(str(row[0]), str(row[1]), decode_time(row[2])), int(row[3]))
        )

    def count(self, kind: RecordKind) -> int:
        query = self._query(f"count_{kind}")
        with self.store.connector.session() as session:
            row = session.fetchone(query)
        return int(row[0]) if row is not None else 0

    # Restorable

    def _restore(self, kind: RecordKind, params: list[dict[str, Any]]) -> int:
        statement = self._query(f"restore_{kind}")
        with self.store.connector.session(write=True) as session, session.transaction():
            return sum(session.execute(statement, p) for p in params)

    def restore_conversations(self, records: Sequence[Conversation]) -> int:
        s = self.store
        table = s.schema.conversations
        return self._restore("conversation", [s.extras(table, s.encode_conversation(r), NO_EXTRA) for r in records])

    def restore_items(self, records: Sequence[ConversationItem]) -> int:
        s = self.store
        table = s.schema.conversation_items
        return self._restore("item", [s.extras(table, s.encode_item(r), NO_EXTRA) for r in records])

    def restore_responses(self, records: Sequence[StoredResponse]) -> int:
        s = self.store
        table = s.schema.responses
        return self._restore("response", [s.extras(table, s.encode_response(r), NO_EXTRA) for r in records])

    def restore_links(self, records: Sequence[Link]) -> int:
        sql, items = self.store.sql, self.items
        by_conversation: dict[str, list[Link]] = {}
        for link in records:
            by_conversation.setdefault(link.conversation_id, []).append(link)
        size = self.store.dialect.max_rows_per_insert
        created = 0
        with self.store.connector.session(write=True) as session, session.transaction():
            for conversation_id, group in by_conversation.items():
                extras = items.link_params(conversation_id, NO_EXTRA)
                for start in range(0, len(group), size):
                    chunk = [(link.item_id, link.added_at) for link in group[start : start + size]]
                    created += session.execute(sql.link_restore(len(chunk)), items.rows_params(extras, chunk))
        return created


def open_sql_backend(
    connector: Connector,
    dialect: Dialect,
    schema: SchemaConfig | None,
    *,
    check_schema: bool = True,
) -> SqlBackend:
    """The backend over ``connector``; with ``check_schema``, tables created and migrations checked.

    The connector is closed if that fails (``MigrationRequiredError``, backend errors).
    """
    try:
        store = SqlStore(connector, dialect, schema or SchemaConfig())
        if check_schema:
            store.open()
        return SqlBackend(store)
    except BaseException:
        connector.close()
        raise
