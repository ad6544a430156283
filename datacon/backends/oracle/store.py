"""The shared SQL storages over Oracle: Oracle's statements, extra-column keys, empty strings."""

from __future__ import annotations

from typing import Any

import attrs

from datacon.backends._sql import (
    Connector,
    Dialect,
    SqlItemStorage,
    SqlStore,
)
from datacon.backends.base import Extra
from datacon.backends.extras import extra_values
from datacon.models import ConversationItem
from datacon.schema import SchemaConfig, TableConfig

from .dialect import OracleDialect, render_oracle

__all__ = ["OracleItemStorage", "OracleStore"]


class OracleStore(SqlStore):
    """``SqlStore`` with Oracle's own statements (``render_oracle``).

    Extra columns are declared uppercased in Oracle (upstream ``uppercase_for_oracle``);
    a hook may supply a value under the declared name in any case (``tenant_id`` or
    ``TENANT_ID``), an exact uppercase key winning. Upstream matched the uppercase key only.
    """

    def __init__(self, connector: Connector, dialect: Dialect, schema: SchemaConfig) -> None:
        assert isinstance(dialect, OracleDialect)
        super().__init__(connector, dialect, schema)
        # SqlStore rendered the generic statements; Oracle's differ in nearly every clause.
        self.sql = render_oracle(schema, dialect)

    def extras(self, table: TableConfig, params: dict[str, Any], extra: Extra) -> dict[str, Any]:
        if not table.extra_columns:
            return params
        supplied = extra
        folded = {key.upper(): value for key, value in supplied.items() if value is not None and not key.isupper()}
        folded.update({key: value for key, value in supplied.items() if value is not None and key.isupper()})
        for n, (_, value) in enumerate(extra_values(table, folded)):
            params[f"x{n}"] = self.dialect.encode_extra(value)
        return params


class OracleItemStorage(SqlItemStorage):
    """Items; an empty ``item_type`` reads back as ``""`` (Oracle stores ``''`` as NULL)."""

    def decode(self, row: tuple[Any, ...]) -> ConversationItem:
        item = super().decode(row)
        item_type: str | None = item.item_type  # NULL when an empty item_type was stored
        return item if item_type is not None else attrs.evolve(item, item_type="")
