"""The shared SQL storages over Oracle: Oracle's statements, extra-column keys, empty strings."""

from __future__ import annotations

from typing import Any

import attrs

from datacon.backends._sql import (
    Connector,
    SqlConversationStorage,
    SqlItemStorage,
    SqlResponseStorage,
    SqlStore,
)
from datacon.backends.extras import extra_values
from datacon.context import current_extra_columns
from datacon.models import ConversationItem
from datacon.schema import SchemaConfig, TableConfig
from datacon.storage import Storage

from .dialect import OracleDialect, render_oracle

__all__ = ["OracleItemStorage", "OracleStore", "open_oracle_storage"]


class OracleStore(SqlStore):
    """``SqlStore`` with Oracle's own statements (``render_oracle``).

    Extra columns are declared uppercased in Oracle (upstream ``uppercase_for_oracle``);
    a hook may supply a value under the declared name in any case (``tenant_id`` or
    ``TENANT_ID``), an exact uppercase key winning. Upstream matched the uppercase key only.
    """

    def __init__(self, connector: Connector, dialect: OracleDialect, schema: SchemaConfig) -> None:
        super().__init__(connector, dialect, schema)
        # SqlStore rendered the generic statements; Oracle's differ in nearly every clause.
        self.sql = render_oracle(schema, dialect)

    def extras(self, table: TableConfig, params: dict[str, Any]) -> dict[str, Any]:
        if not table.extra_columns:
            return params
        supplied = current_extra_columns()
        folded = {key.upper(): value for key, value in supplied.items() if value is not None and not key.isupper()}
        folded.update({key: value for key, value in supplied.items() if value is not None and key.isupper()})
        for n, (_, value) in enumerate(extra_values(table, folded)):
            params[f"x{n}"] = self.dialect.encode_extra(value)
        return params


class OracleItemStorage(SqlItemStorage):
    """Items; an empty ``item_type`` reads back as ``""`` (Oracle stores ``''`` as NULL)."""

    def _row(self, row: tuple[Any, ...]) -> ConversationItem:
        item = super()._row(row)
        item_type: str | None = item.item_type  # NULL when an empty item_type was stored
        return item if item_type is not None else attrs.evolve(item, item_type="")


def open_oracle_storage(connector: Connector, dialect: OracleDialect, schema: SchemaConfig) -> Storage:
    """Bootstrap the schema (tables, migrations, indexes) and return the three storages.

    The connector is closed if the bootstrap fails.
    """
    try:
        store = OracleStore(connector, dialect, schema)
        store.open()
    except BaseException:
        connector.close()
        raise
    return Storage(
        SqlResponseStorage(store),
        SqlConversationStorage(store),
        OracleItemStorage(store),
        backend=dialect.name,
        max_concurrency=connector.max_concurrency,
        close=connector.close,
        pool_stats=connector.stats,
    )
