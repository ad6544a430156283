"""The three storages over any SQL database: a Dialect plus a Connector, nothing else."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from datacon._columns import CONVERSATIONS, ITEM_PACKED, ITEMS, RESPONSES
from datacon._serde import loads
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
from datacon.backends.idempotency import Idempotency, resolve
from datacon.errors import ConflictError, DataconError
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
from .render import IDEMPOTENCY_SWEEP, render
from .rows import Decoder, Encoder, PackedDecoder, RowsDecoder, packed_decoder, row_decoder, row_encoder, rows_decoder
from .session import Connector, Params, Session

__all__ = ["SqlConversationStorage", "SqlItemStorage", "SqlResponseStorage", "SqlStore"]

log = logging.getLogger(__name__)

#: Every this many keyed writes of a store, one sweep deletes up to ``IDEMPOTENCY_SWEEP``
#: expired keys (in its own short statement, after the write committed).
SWEEP_EVERY = 64


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
        # The same for a whole result (one comprehension: what every multi-row read uses).
        self.decode_conversations: RowsDecoder[Conversation] = rows_decoder(
            CONVERSATIONS, sql.conv_fields, Conversation, dialect
        )
        self.decode_items: RowsDecoder[ConversationItem] = rows_decoder(
            ITEMS, sql.item_fields, ConversationItem, dialect
        )
        self.decode_responses: RowsDecoder[StoredResponse] = rows_decoder(
            RESPONSES, sql.resp_fields, StoredResponse, dialect
        )
        self.encode_conversation: Encoder = row_encoder(CONVERSATIONS, sql.conv_fields, dialect)
        packed = sql.items_packed is not None
        self.encode_item: Encoder = row_encoder(ITEMS, sql.item_fields, dialect, packed=packed)
        # list_items' reader of the items' packed copies, where the table keeps them.
        self.unpack_items: PackedDecoder[ConversationItem] | None = (
            packed_decoder(ITEMS, ConversationItem, dialect) if packed else None
        )
        self.encode_response: Encoder = row_encoder(RESPONSES, sql.resp_fields, dialect)
        self._keyed_writes = itertools.count(1)

    @contextmanager
    def write(self, conflict: str, idem: Idempotency | None) -> Iterator[Session]:
        """A session for one write: with a key, inside one transaction (the key is claimed in
        it, so a failed write leaves the key unused), and every ``SWEEP_EVERY`` keyed writes
        a sweep of expired keys afterwards."""
        if idem is not None and self.dialect.key_claim_may_race:
            conflict = f"{conflict}, or idempotency_key {idem.key!r} was being used by a concurrent call"
        with self.connector.session(write=True, conflict=conflict) as session:
            if idem is None:
                yield session
                return
            with session.transaction():
                yield session
        if next(self._keyed_writes) % SWEEP_EVERY == 0:
            self.sweep()

    def replayed(self, session: Session, idem: Idempotency | None, table: str, result: object, cls: Any) -> Any:
        """In the write's transaction: claim ``idem``'s key with the call's ``result``; ``None``
        when claimed (the caller writes), else the stored result of the first call
        (``ConflictError`` if it had other arguments). Keys are scoped by ``table`` (a database
        may hold several schemas) and the operation.

        A fresh key costs one statement (the claim), a stored one two (the claim, then the
        read); an expired one is deleted and claimed again."""
        if idem is None:
            return None
        d, sql = self.dialect, self.sql
        now = utc_now()
        key = {"scope": f"{table}/{idem.scope}", "key": idem.key}
        claim = {**key, "fp": idem.fingerprint, "result": idem.encode(result)}
        claim["expires"] = d.encode_time(idem.expires_at(now))
        if session.execute(sql.idem_claim, claim) > 0:
            return None
        row = session.fetchone(sql.idem_select, key)
        if row is not None and d.decode_time(row[2]) <= now:  # expired: forgotten, so claimed anew
            session.execute(sql.idem_free, {**key, "now": d.encode_time(now)})
            if session.execute(sql.idem_claim, claim) > 0:
                return None
            row = session.fetchone(sql.idem_select, key)
        if row is None:  # claimed and freed again by concurrent calls meanwhile: report the race
            raise ConflictError(f"idempotency_key {idem.key!r} is in use by a concurrent call")
        text = row[1] if isinstance(row[1], str) else json.dumps(d.decode_json(row[1], None))
        return idem.replay(str(row[0]), text, cls)

    def sweep(self) -> int:
        """Delete up to ``IDEMPOTENCY_SWEEP`` expired keys; how many. Best effort: a failure is logged."""
        params = {"now": self.dialect.encode_time(utc_now()), "limit": IDEMPOTENCY_SWEEP}
        try:
            with self.connector.session(write=True) as session:
                return session.execute(self.sql.idem_sweep, params)
        except DataconError as exc:
            log.warning("could not delete expired idempotency keys: %s", exc)
            return 0

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
        self._rows = store.decode_conversations
        self._encode = store.encode_conversation

    def create_conversation(
        self, new: NewConversation, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> Conversation:
        idem = resolve(idempotency_key, "create_conversation", lambda: {"new": new})
        conversation = Conversation(id=minted_id(new), created_at=utc_now(), metadata=new.metadata)
        table = self._store.schema.conversations
        params = self._store.extras(table, self._encode(conversation), extra)
        text = params.get("metadata")
        if text is not None:
            # The metadata as it will read back (JSON text, parsed).
            conversation = Conversation(
                id=conversation.id, created_at=conversation.created_at, metadata=json.loads(text)
            )
        conflict = f"conversation {conversation.id} already exists"
        with self._store.write(conflict, idem) as session:
            replayed: Conversation | None = self._store.replayed(session, idem, table.table, conversation, Conversation)
            if replayed is not None:
                return replayed
            session.execute(self._sql.conv_insert, params)
        return conversation

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
        return self._rows(rows)


def _by_item_id(ids: Sequence[str]) -> list[int]:
    """The positions of ``ids`` in item-id order (the order rows are written in)."""
    return sorted(range(len(ids)), key=ids.__getitem__)


class SqlItemStorage(BackendItems):
    """Items in the items table; links ``(conversation_id, item_id, added_at)`` in the links table."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._sql = store.sql
        self._d = store.dialect
        self._row = store.decode_item
        self._rows = store.decode_items
        self._unpack = store.unpack_items
        self._encode = store.encode_item
        self._items_table = store.schema.conversation_items
        self._links_table = store.schema.conversation_item_links
        # Whether the tables declare extra columns (their values come from the hook's extra).
        self._item_extras = bool(self._items_table.extra_columns)
        self._link_extras = bool(self._links_table.extra_columns)
        self._link_one = store.sql.link_insert(1)
        # Rows per append statement: the links' limit, scaled to the items' wider rows.
        width = len(store.sql.item_fields) + len(self._items_table.extra_columns)
        self._append_rows = max(1, self._d.max_rows_per_insert * 4 // max(width + len(store.sql.item_parts[1]), 8))
        # The bind-parameter names of row n of an append statement (item fields, then the
        # link's i/a/q), made once per n rather than formatted per row and call.
        self._row_keys: list[tuple[tuple[str, ...], str, str, str]] = []
        # The encoded row's keys: the item's fields, then its packed copy where there is one.
        self._encoded_fields = (*store.sql.item_fields, *((ITEM_PACKED,) if store.sql.items_packed else ()))
        # Whether an append's links bind their item ids apart (``i{n}``): the one-statement
        # form (a writable CTE) reads each from its item's own ``id{n}``.
        self._link_ids = not self._d.writable_cte

    def _keys(self, n: int) -> tuple[tuple[str, ...], str, str, str]:
        keys = self._row_keys
        while len(keys) <= n:
            k = len(keys)
            keys.append((tuple(f"{field}{k}" for field in self._encoded_fields), f"i{k}", f"a{k}", f"q{k}"))
        return keys[n]

    def create_item(
        self, new: NewConversationItem, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> ConversationItem:
        table = self._items_table
        if idempotency_key is None:  # the usual call: the record built directly, one statement
            item = created_item(new, new.content)
            params = self._encode(item)
            if self._item_extras:
                params = self._store.extras(table, params, extra)
            self._read_back(item, params)
            self._store.connector.write_one(self._sql.item_insert, params, f"item {item.id} already exists")
            return item
        idem = resolve(idempotency_key, "create_item", lambda: {"new": new})
        item = created_item(new, new.content)
        params = self._store.extras(table, self._encode(item), extra)
        self._read_back(item, params)
        conflict = f"item {item.id} already exists"
        with self._store.write(conflict, idem) as session:
            replayed: ConversationItem | None = self._store.replayed(session, idem, table.table, item, ConversationItem)
            if replayed is not None:
                return replayed
            session.execute(self._sql.item_insert, params)
        return item

    def _read_back(self, item: ConversationItem, row: Params) -> None:
        """Make ``item`` (a record of this call's, already encoded into ``row``) what will read
        back: its content parsed from the JSON written (encoded here if the column is skipped),
        no status if that column is skipped. In place: the record is the call's own, and
        building it again (``attrs.evolve``) cost more than the rest of the per-item work."""
        text = row["content"] if "content" in row else self._d.encode_json(item.content, "content")
        item.content = loads(text)
        if "status" not in row:
            item.status = None

    def append_items(
        self,
        conversation_id: str,
        items: Sequence[NewConversationItem],
        added_at: datetime | None = None,
        *,
        extra: Extra = NO_EXTRA,
        idempotency_key: Idempotency | str | None = None,
    ) -> list[ConversationItem]:
        if not items:
            return []
        idem = resolve(
            idempotency_key, "append_items", lambda: {"items": list(items), "added_at": added_at}, conversation_id
        )
        now = utc_now()
        at = self._d.encode_time(added_at or now)
        conflict = f"an item already exists or is already linked to {conversation_id} (nothing was appended)"
        one = self._sql.append_one() if idem is None and len(items) == 1 else None
        if one is not None:  # one message, the usual turn, and a dialect with writable CTEs
            return [self._append_one(one, conversation_id, items[0], now, at, extra, conflict)]
        # Everything is encoded before any I/O (a bad content writes nothing).
        records = [created_item(new, new.content, now) for new in items]
        encode = self._encode
        encoded = [encode(record) for record in records]
        links = self.link_params(conversation_id, extra)
        links = self._store.extras(self._items_table, links, extra, prefix="ix")
        size = self._append_rows
        batches = []
        for start in range(0, len(records), size):
            # Each statement writes its rows in item-id order (see _link), ranks in the call's.
            count = min(size, len(records) - start)
            params = dict(links) if len(records) > size else links
            for n, k in enumerate(_by_item_id([record.id for record in records[start : start + count]])):
                fields, i, a, q = self._keys(n)
                params.update(zip(fields, encoded[start + k].values(), strict=True))
                if self._link_ids:
                    params[i] = records[start + k].id
                params[a] = at
                params[q] = k + 1
            batches.append((self._sql.append(count, count), params))
        for record, row in zip(records, encoded, strict=True):
            self._read_back(record, row)  # as it will read back
        if idem is None and len(batches) == 1 and len(batches[0][0]) == 1:  # one statement: atomic by itself
            self._store.connector.write_one(batches[0][0][0], batches[0][1], conflict)
            return records
        with self._store.write(conflict, idem) as session:
            table = self._items_table.table
            replayed: list[ConversationItem] | None = self._store.replayed(
                session, idem, table, records, list[ConversationItem]
            )
            if replayed is not None:
                return replayed
            if len(batches) == 1 and len(batches[0][0]) == 1:
                session.execute(batches[0][0][0], batches[0][1])
            else:
                with session.transaction():
                    for statements, params in batches:
                        for statement in statements:
                            session.execute(statement, params)
        return records

    def _append_one(
        self,
        statement: str,
        conversation_id: str,
        new: NewConversationItem,
        now: datetime,
        at: Any,
        extra: Extra,
        conflict: str,
    ) -> ConversationItem:
        """``append_items`` of one item without a key: the general path's one statement (a
        writable CTE, atomic by itself, rank 1), whose params are the encoded row itself."""
        record = created_item(new, new.content, now)
        row = self._encode(record)
        self._read_back(record, row)
        row = self._store.extras(self._items_table, row, extra, prefix="ix")
        row = self._store.extras(self._links_table, row, extra)
        row["cid"] = row["scid"] = conversation_id
        row["a0"] = at
        self._store.connector.write_one(statement, row, conflict)
        return record

    def link_item(self, conversation_id: str, item_id: str, added_at: datetime, *, extra: Extra = NO_EXTRA) -> None:
        params = {"cid": conversation_id, "scid": conversation_id, "i0": item_id, "a0": self._d.encode_time(added_at)}
        params["q0"] = 1
        if self._link_extras:
            params = self._store.extras(self._links_table, params, extra)
        conflict = f"item {item_id} is already linked to {conversation_id}"
        self._store.connector.write_one(self._link_one, params, conflict)

    def link_items(
        self, conversation_id: str, items: Sequence[tuple[str, datetime]], *, extra: Extra = NO_EXTRA
    ) -> None:
        if items:
            conflict = f"an item is already linked to {conversation_id} (nothing was linked)"
            self._link(conversation_id, items, conflict, extra)

    def _link(self, conversation_id: str, items: Sequence[tuple[str, datetime]], conflict: str, extra: Extra) -> None:
        # One multi-row INSERT: a duplicate (already linked, or repeated in ``items``) fails
        # the whole statement, so nothing is linked. Beyond the dialect's row limit the
        # chunks (in the caller's order) run in one transaction, which keeps it all-or-nothing.
        # Each statement writes its rows in item-id order, whatever order the caller gave: each
        # row locks its key in the primary-key index, and two calls locking the same keys in
        # different orders would deadlock (DeadlockDetected) instead of one winning and the
        # other waiting for it and then failing with the unique violation (ConflictError). The
        # caller's order is bound as each row's rank, from which its sequence is computed
        # (render's link_row: concurrent calls never interleave their links either).
        size = self._d.max_rows_per_insert
        extras = self.link_params(conversation_id, extra)
        statements = []
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            order = _by_item_id([item_id for item_id, _ in chunk])
            params = self.rows_params(extras, [chunk[k] for k in order], [k + 1 for k in order])
            statements.append((self._sql.link_insert(len(chunk)), params))
        with self._store.connector.session(write=True, conflict=conflict) as session:
            if len(statements) == 1:
                session.execute(*statements[0])
                return
            with session.transaction():
                for statement, params in statements:
                    session.execute(statement, params)

    def link_params(self, conversation_id: str, extra: Extra) -> dict[str, Any]:
        """The bind parameters shared by every row of a links INSERT into one conversation."""
        params = {"cid": conversation_id, "scid": conversation_id}
        return self._store.extras(self._links_table, params, extra)

    def rows_params(
        self, extras: Params, chunk: Sequence[tuple[str, datetime]], ranks: Sequence[int] | None = None
    ) -> dict[str, Any]:
        """``extras`` plus ``i{n}``/``a{n}``/``q{n}`` for each ``(item_id, added_at)`` row of
        ``link_insert``; ``ranks`` are the rows' ranks in the call (default: 1, 2... as given)."""
        params = dict(extras)
        for n, (item_id, added_at) in enumerate(chunk):
            params[f"i{n}"] = item_id
            params[f"a{n}"] = self._d.encode_time(added_at)
            params[f"q{n}"] = n + 1 if ranks is None else ranks[n]
        return params

    def list_items(self, conversation_id: str, params: ListParams) -> list[ConversationItem]:
        sql, after = self._sql, params.after
        which = (0 if params.order is SortOrder.ASC else 1) + (2 if after is None else 0)
        args = {"cid": conversation_id, "after": after, "limit": params.limit}
        columns = (sql.items_asc, sql.items_desc, sql.items_first_asc, sql.items_first_desc)
        with self._store.connector.session(replica=True) as session:
            items, _ = self._fetch_items(session, sql.items_packed, columns, which, args)
        return items

    def _fetch_items(
        self,
        session: Session,
        packed: tuple[str, str, str, str] | None,
        columns: tuple[str, str, str, str],
        which: int,
        args: Params,
    ) -> tuple[list[ConversationItem], list[tuple[Any, ...]]]:
        """A page's items and rows by statement ``which`` of four: of ``packed`` (each row the
        item's packed copy first) where the table keeps copies, else, or when a row has no
        readable copy, of ``columns`` (the record of truth, which also raises any error)."""
        if packed is not None and self._unpack is not None:
            rows = session.fetchall(packed[which], args)
            items = self._unpack(rows)
            if items is not None:
                return items, rows
        rows = session.fetchall(columns[which], args)
        return self._rows(rows), rows

    def page_items(
        self, conversation_id: str, params: ListParams, position: Position | None
    ) -> tuple[list[PageRow], bool]:
        ascending = params.order is SortOrder.ASC
        sql = self._sql
        args: dict[str, Any] = {"cid": conversation_id, "limit": params.limit}
        which = (0 if ascending else 1) + (0 if position is None else 2)
        if position is None:
            args["after"] = params.after
        else:
            args.update(at=self._d.encode_time(position[0]), sq=position[1], after=position[2])
        d = self._d
        columns = (sql.list_asc, sql.list_desc, sql.list_pos_asc, sql.list_pos_desc)
        with self._store.connector.session(replica=True) as session:
            # Each row ends with the link's position.
            items, rows = self._fetch_items(session, sql.pages_packed, columns, which, args)
            more = False
            if rows and len(rows) >= params.limit:
                # Full: does a link follow the last row? (One index probe, same connection.)
                last = rows[-1]
                follows = {
                    "cid": conversation_id,
                    "at": d.encode_time(d.decode_time(last[-2])),
                    "sq": int(last[-1]),
                    "after": items[-1].id,
                    "limit": 1,
                }
                more = session.fetchone(sql.follows_asc if ascending else sql.follows_desc, follows) is not None
        decode_time = d.decode_time
        return [(item, decode_time(row[-2]), int(row[-1])) for item, row in zip(items, rows, strict=True)], more

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

    def unlink_items(self, conversation_id: str, item_ids: Sequence[str]) -> list[str]:
        with self._store.connector.session(write=True) as session, session.transaction():
            # A link deleted here is this call's (a concurrent one would delete 0 rows).
            removed = [
                item_id
                for item_id in dict.fromkeys(item_ids)
                if session.execute(self._sql.link_delete, {"cid": conversation_id, "iid": item_id})
            ]
            for item_id in removed:
                session.execute(self._sql.item_delete_unlinked, {"id": item_id, "lid": item_id})
        return removed


class SqlResponseStorage(BackendResponses):
    """Responses in the responses table; chains walked by one recursive query."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._sql = store.sql
        self._d = store.dialect
        self._row = store.decode_response
        self._rows = store.decode_responses
        self._encode = store.encode_response

    def store_response(
        self, response: StoredResponse, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> str:
        table = self._store.schema.responses
        conflict = f"response {response.id} already exists"
        if idempotency_key is None:  # the usual call: one statement
            params = self._store.extras(table, self._encode(response), extra)
            self._store.connector.write_one(self._sql.resp_insert, params, conflict)
            return response.id
        idem = resolve(idempotency_key, "store_response", lambda: {"response": response})
        params = self._store.extras(table, self._encode(response), extra)
        with self._store.write(conflict, idem) as session:
            replayed: str | None = self._store.replayed(session, idem, table.table, response.id, str)
            if replayed is not None:
                return replayed
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
        by_id = {response.id: response for response in self._rows(rows)}
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
        return self._rows(rows)

    def delete_identifier_responses(self, identifier: str) -> int:
        if self._sql.ident_delete is None:
            return 0
        with self._store.connector.session(write=True) as session:
            return session.execute(self._sql.ident_delete, {"sid": identifier})
