"""The three storages over any SQL database: a Dialect plus a Connector, nothing else."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from datacon._columns import CONVERSATIONS, ITEMS, RESPONSES
from datacon._time import utc_now
from datacon.backends.base import (
    NO_EXTRA,
    BackendConversations,
    BackendItems,
    BackendResponses,
    Extra,
    PageRow,
    Position,
)
from datacon.backends.chain import walk_chain
from datacon.backends.created import created_item, minted_id
from datacon.backends.extras import extra_values
from datacon.models import (
    Conversation,
    ConversationItem,
    ListParams,
    NewConversation,
    NewConversationItem,
    ResponseChain,
    SortOrder,
    StoredResponse,
)
from datacon.schema import SchemaConfig, TableConfig

from .dialect import Dialect
from .migrations import bootstrap, require_latest
from .render import render
from .rows import Decoder, Encoder, row_decoder, row_encoder
from .session import Connector, Params, Session

__all__ = ["SqlConversationStorage", "SqlItemStorage", "SqlResponseStorage", "SqlStore"]


class SqlStore:
    """What the three storages share: the connector, the dialect, the rendered statements, and
    each record's row decoder and bind-parameter encoder (generated from the declared columns)."""

    def __init__(self, connector: Connector, dialect: Dialect, schema: SchemaConfig) -> None:
        self.connector = connector
        self.dialect = dialect
        self.schema = schema
        sql = self.sql = render(schema, dialect)
        self.applied_migrations: list[int] = []
        self.decode_conversation: Decoder[Conversation] = row_decoder(
            CONVERSATIONS, sql.conv_fields, Conversation, dialect
        )
        self.decode_item: Decoder[ConversationItem] = row_decoder(ITEMS, sql.item_fields, ConversationItem, dialect)
        self.decode_response: Decoder[StoredResponse] = row_decoder(RESPONSES, sql.resp_fields, StoredResponse, dialect)
        self.encode_conversation: Encoder = row_encoder(CONVERSATIONS, sql.conv_fields, dialect)
        self.encode_item: Encoder = row_encoder(ITEMS, sql.item_fields, dialect)
        self.encode_response: Encoder = row_encoder(RESPONSES, sql.resp_fields, dialect)

    def open(self) -> None:
        """Create missing tables and run the migrations, under the backend's migration lock.

        With ``schema.create_tables`` off nothing is written: the schema is only checked
        (``MigrationRequiredError`` unless every table is at the latest version).
        """
        if not self.schema.create_tables:
            with self.connector.session() as session:
                require_latest(session, self.sql)
            return
        with self.connector.migration_session() as session:
            self.applied_migrations = bootstrap(session, self.sql)

    def extras(self, table: TableConfig, params: dict[str, Any], extra: Extra, prefix: str = "x") -> dict[str, Any]:
        """``params`` plus ``x0``, ``x1``... for the table's extra columns (``extra``'s value, default, NULL)."""
        if not table.extra_columns:
            return params
        for n, (_, value) in enumerate(extra_values(table, self.dialect.extra_keys(extra))):
            params[f"{prefix}{n}"] = self.dialect.encode_extra(value)
        return params

    def json(self, value: Any, what: str) -> tuple[Any, Any]:
        """``(bound, returned)``: JSON text to bind, and the value as it will read back."""
        text = self.dialect.encode_json(value, what)
        return text, json.loads(text)


class SqlConversationStorage(BackendConversations):
    """Conversations in the conversations table; their links in the links table."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._sql = store.sql
        self._d = store.dialect
        self._row = store.decode_conversation
        self._encode = store.encode_conversation

    def create_conversation(self, new: NewConversation, *, extra: Extra = NO_EXTRA) -> Conversation:
        conversation = Conversation(id=minted_id(new), created_at=utc_now(), metadata=new.metadata)
        params = self._store.extras(self._store.schema.conversations, self._encode(conversation), extra)
        conflict = f"conversation {conversation.id} already exists"
        with self._store.connector.session(write=True, conflict=conflict) as session:
            session.execute(self._sql.conv_insert, params)
        text = params.get("metadata")
        if text is None:
            return conversation
        # The metadata as it will read back (JSON text, parsed).
        return Conversation(id=conversation.id, created_at=conversation.created_at, metadata=json.loads(text))

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        with self._store.connector.session(replica=True) as session:
            row = session.fetchone(self._sql.conv_select, {"id": conversation_id})
        return None if row is None else self._row(row)

    def update_conversation(self, conversation_id: str, metadata: dict[str, object] | None) -> Conversation | None:
        params: dict[str, Any] = {"id": conversation_id, "metadata": None}
        returned: Any = metadata
        if metadata is not None:
            params["metadata"], returned = self._store.json(metadata, "metadata")
        # One statement: UPDATE ... RETURNING created_at (a SELECT when metadata is skipped,
        # which upstream answers without persisting anything).
        with self._store.connector.session(write=True) as session:
            row = session.fetchone(self._sql.conv_update, params)
        if row is None:
            return None
        skipped = self._store.schema.conversations.is_skipped("created_at")
        created_at = utc_now() if skipped else self._d.decode_time(row[0])
        return Conversation(id=conversation_id, created_at=created_at, metadata=returned)

    def delete_conversation(self, conversation_id: str) -> bool:
        statements = self._sql.conv_delete
        params = {"id": conversation_id}
        with self._store.connector.session(write=True) as session:
            if len(statements) == 1:  # one statement (a data-modifying CTE): no transaction needed
                return session.execute(statements[0], params) > 0
            with session.transaction():
                for statement in statements[:-1]:
                    session.execute(statement, params)
                return session.execute(statements[-1], params) > 0

    def filter_columns(self) -> frozenset[str]:
        return frozenset(name for name, _ in self._store.schema.conversations.sorted_extra_columns())

    def page_conversations(
        self, filter: Mapping[str, str], after: tuple[datetime, str] | None, descending: bool, limit: int
    ) -> list[Conversation]:
        keys = tuple(sorted(filter))
        params: dict[str, Any] = {f"f{n}": filter[key] for n, key in enumerate(keys)}
        params["limit"] = limit
        if after is not None:
            params["after_id"] = after[1]
            if not self._store.schema.conversations.is_skipped("created_at"):
                params["after_at"] = self._d.encode_time(after[0])
        sql = self._sql.conversation_page(keys, after is not None, descending)
        with self._store.connector.session(replica=True) as session:
            rows = session.fetchall(sql, params)
        return [self._row(row) for row in rows]


class SqlItemStorage(BackendItems):
    """Items in the items table; links ``(conversation_id, item_id, added_at)`` in the links table."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._sql = store.sql
        self._d = store.dialect
        self._row = store.decode_item
        self._encode = store.encode_item

    def create_item(self, new: NewConversationItem, *, extra: Extra = NO_EXTRA) -> ConversationItem:
        item = created_item(new, new.content)
        params = self._store.extras(self._store.schema.conversation_items, self._encode(item), extra)
        with self._store.connector.session(write=True, conflict=f"item {item.id} already exists") as session:
            session.execute(self._sql.item_insert, params)
        return self._read_back(new, item, params)

    def _read_back(self, new: NewConversationItem, item: ConversationItem, params: Params) -> ConversationItem:
        """The item as it will read back, from the parameters that wrote it."""
        # The content as it will read back (JSON text, parsed; encoded here if the column is skipped).
        text = params["content"] if "content" in params else self._store.dialect.encode_json(new.content, "content")
        return attrs.evolve(item, content=json.loads(text), status=item.status if "status" in params else None)

    def append_items(
        self,
        conversation_id: str,
        items: Sequence[NewConversationItem],
        added_at: datetime | None = None,
        *,
        extra: Extra = NO_EXTRA,
    ) -> list[ConversationItem]:
        if not items:
            return []
        now = utc_now()
        when = added_at or now
        # Everything is encoded before any I/O (a bad content writes nothing). Records are
        # built directly (no attrs.evolve: it costs more than the rest of the per-item work).
        records = [created_item(new, new.content, now) for new in items]
        encoded = [self._encode(item) for item in records]
        links = self.link_params(conversation_id, extra)
        links = self._store.extras(self._store.schema.conversation_items, links, extra, prefix="ix")
        # Rows per statement: the links' limit, scaled to the items' wider rows.
        size = max(1, self._d.max_rows_per_insert * 4 // max(len(encoded[0]) + len(self._sql.item_parts[1]), 8))
        batches = []
        for start in range(0, len(records), size):
            params = dict(links)
            for n, row in enumerate(encoded[start : start + size]):
                for field, value in row.items():
                    params[f"{field}{n}"] = value
            chunk = [(item.id, when) for item in records[start : start + size]]
            params = self.rows_params(params, chunk)
            batches.append((self._sql.append(len(chunk), len(chunk)), params))
        conflict = f"an item already exists or is already linked to {conversation_id} (nothing was appended)"
        with self._store.connector.session(write=True, conflict=conflict) as session:
            if len(batches) == 1 and len(batches[0][0]) == 1:  # one statement: atomic by itself
                session.execute(batches[0][0][0], batches[0][1])
            else:
                with session.transaction():
                    for statements, params in batches:
                        for statement in statements:
                            session.execute(statement, params)
        d, keep_status = self._d, True
        returned = []
        for new, row in zip(items, encoded, strict=True):
            # As it will read back (see _read_back): the content parsed from the JSON written.
            text = row["content"] if "content" in row else d.encode_json(new.content, "content")
            keep_status = "status" in row
            returned.append(created_item(new, json.loads(text), now, keep_status=keep_status))
        return returned

    def link_item(self, conversation_id: str, item_id: str, added_at: datetime, *, extra: Extra = NO_EXTRA) -> None:
        conflict = f"item {item_id} is already linked to {conversation_id}"
        self._link(conversation_id, [(item_id, added_at)], conflict, extra)

    def link_items(
        self, conversation_id: str, items: Sequence[tuple[str, datetime]], *, extra: Extra = NO_EXTRA
    ) -> None:
        if items:
            conflict = f"an item is already linked to {conversation_id} (nothing was linked)"
            self._link(conversation_id, items, conflict, extra)

    def _link(self, conversation_id: str, items: Sequence[tuple[str, datetime]], conflict: str, extra: Extra) -> None:
        # One multi-row INSERT: a duplicate (already linked, or repeated in ``items``) fails
        # the whole statement, so nothing is linked. Beyond the dialect's row limit the
        # chunks run in one transaction, which keeps it all-or-nothing.
        size = self._d.max_rows_per_insert
        chunks = [items[start : start + size] for start in range(0, len(items), size)]
        extras = self.link_params(conversation_id, extra)
        with self._store.connector.session(write=True, conflict=conflict) as session:
            if len(chunks) == 1:
                self._insert_links(session, chunks[0], extras)
                return
            with session.transaction():
                for chunk in chunks:
                    self._insert_links(session, chunk, extras)

    def link_params(self, conversation_id: str, extra: Extra) -> dict[str, Any]:
        """The bind parameters shared by every row of a links INSERT into one conversation."""
        params = {"cid": conversation_id, "scid": conversation_id}
        return self._store.extras(self._store.schema.conversation_item_links, params, extra)

    def rows_params(self, extras: Params, chunk: Sequence[tuple[str, datetime]]) -> dict[str, Any]:
        """``extras`` plus ``i{n}``/``a{n}`` for each ``(item_id, added_at)`` row of ``link_insert``."""
        params = dict(extras)
        for n, (item_id, added_at) in enumerate(chunk):
            params[f"i{n}"] = item_id
            params[f"a{n}"] = self._d.encode_time(added_at)
        return params

    def _insert_links(self, session: Session, chunk: Sequence[tuple[str, datetime]], extras: Params) -> None:
        session.execute(self._sql.link_insert(len(chunk)), self.rows_params(extras, chunk))

    def list_items(self, conversation_id: str, params: ListParams) -> list[ConversationItem]:
        sql = self._sql.list_asc if params.order is SortOrder.ASC else self._sql.list_desc
        with self._store.connector.session(replica=True) as session:
            rows = session.fetchall(sql, {"cid": conversation_id, "after": params.after, "limit": params.limit})
        return [self._row(row) for row in rows]  # the row's trailing link position is not needed

    def page_items(
        self, conversation_id: str, params: ListParams, position: Position | None
    ) -> tuple[list[PageRow], bool]:
        ascending = params.order is SortOrder.ASC
        sql = self._sql
        args: dict[str, Any] = {"cid": conversation_id, "limit": params.limit}
        if position is None:
            page, args["after"] = (sql.list_asc if ascending else sql.list_desc), params.after
        else:
            page = sql.list_pos_asc if ascending else sql.list_pos_desc
            args.update(at=self._d.encode_time(position[0]), sq=position[1], after=position[2])
        d = self._d
        with self._store.connector.session(replica=True) as session:
            rows = session.fetchall(page, args)
            more = False
            if rows and len(rows) >= params.limit:
                # Full: does a link follow the last row? (One index probe, same connection.)
                last = rows[-1]
                follows = {
                    "cid": conversation_id,
                    "at": d.encode_time(d.decode_time(last[-2])),
                    "sq": int(last[-1]),
                    "after": self._row(last).id,
                    "limit": 1,
                }
                more = session.fetchone(sql.follows_asc if ascending else sql.follows_desc, follows) is not None
        return [(self._row(row), d.decode_time(row[-2]), int(row[-1])) for row in rows], more

    def get_item(self, item_id: str) -> ConversationItem | None:
        with self._store.connector.session(replica=True) as session:
            row = session.fetchone(self._sql.item_select, {"id": item_id})
        return None if row is None else self._row(row)

    def is_item_linked(self, conversation_id: str, item_id: str) -> bool:
        with self._store.connector.session(replica=True) as session:
            return session.fetchone(self._sql.link_exists, {"cid": conversation_id, "iid": item_id}) is not None

    def delete_item(self, conversation_id: str, item_id: str) -> None:
        with self._store.connector.session(write=True) as session:
            session.execute(self._sql.link_delete, {"cid": conversation_id, "iid": item_id})


class SqlResponseStorage(BackendResponses):
    """Responses in the responses table; chains walked by one recursive query."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._sql = store.sql
        self._d = store.dialect
        self._row = store.decode_response
        self._encode = store.encode_response

    def store_response(self, response: StoredResponse, *, extra: Extra = NO_EXTRA) -> str:
        params = self._store.extras(self._store.schema.responses, self._encode(response), extra)
        with self._store.connector.session(write=True, conflict=f"response {response.id} already exists") as session:
            session.execute(self._sql.resp_insert, params)
        return response.id

    def get_response(self, response_id: str) -> StoredResponse | None:
        with self._store.connector.session(replica=True) as session:
            row = session.fetchone(self._sql.resp_select, {"id": response_id})
        return None if row is None else self._row(row)

    def delete_response(self, response_id: str) -> None:
        with self._store.connector.session(write=True) as session:
            session.execute(self._sql.resp_delete, {"id": response_id})

    def get_response_chain(self, response_id: str, max_depth: int | None = None) -> ResponseChain:
        params: dict[str, Any]
        if max_depth is None:
            sql, params = self._sql.chain_all, {"id": response_id}
        else:
            sql, params = self._sql.chain_depth, {"id": response_id, "max_depth": max_depth}
        with self._store.connector.session(replica=True) as session:
            rows = session.fetchall(sql, params)
        by_id = {response.id: response for response in map(self._row, rows)}
        return walk_chain(response_id, by_id.get, max_depth)

    def list_identifier_responses(self, identifier: str, limit: int | None = None) -> list[StoredResponse]:
        if self._sql.ident_list is None or self._sql.ident_list_limit is None:
            return []  # safety_identifier is a skipped column
        params: dict[str, Any]
        if limit is None:
            sql, params = self._sql.ident_list, {"sid": identifier}
        else:
            sql, params = self._sql.ident_list_limit, {"sid": identifier, "limit": limit}
        with self._store.connector.session(replica=True) as session:
            rows = session.fetchall(sql, params)
        return [self._row(row) for row in rows]

    def delete_identifier_responses(self, identifier: str) -> int:
        if self._sql.ident_delete is None:
            return 0
        with self._store.connector.session(write=True) as session:
            return session.execute(self._sql.ident_delete, {"sid": identifier})
