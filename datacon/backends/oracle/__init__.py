"""The ``oracle`` backend: Oracle Database through python-oracledb (thin mode) and its pool.

The shared SQL layer (``datacon.backends._sql``: generic storages, renderer, migrations
runner, ``_schema_versions``) with :class:`OracleDialect`: owner-qualified uppercase
identifiers, JSON as CLOB text, ``TIMESTAMP(6) WITH TIME ZONE``, DDL guarded by catalog
probes and PL/SQL blocks, ``INSERT ALL`` for several links, a single keyset query per page
(``FETCH NEXT``), and one recursive query (``CYCLE``) per response chain. Every
single-statement operation is one round trip on an autocommit connection.

Not run against an Oracle server in this repository's CI: see docs/oracle.md.
"""

from __future__ import annotations

from datacon.backends._sql import open_sql_backend, render
from datacon.backends._sql import schema_script as _schema_script
from datacon.backends.base import Backend
from datacon.config import OracleConfig
from datacon.schema import SchemaConfig

from .connector import OracleConnector, pool_params
from .dialect import OracleDialect, dialect_for

__all__ = [
    "OracleConnector",
    "OracleDialect",
    "dialect_for",
    "open_backend",
    "oracle_schema",
    "pool_params",
    "schema_script",
]


def oracle_schema(schema: SchemaConfig | None) -> SchemaConfig:
    """The schema as Oracle uses it: uppercased (``uppercase_for_oracle``), then validated."""
    uppercased = (schema or SchemaConfig()).uppercase_for_oracle()
    uppercased.validate()
    return uppercased


def open_backend(config: OracleConfig, *, check_schema: bool = True) -> Backend:
    """The three Oracle storages over one pool; tables created and migrations checked.

    :raises ConfigError: the schema is invalid, or ``external_auth`` in thin mode.
    :raises BackendUnavailableError: the database cannot be reached or refuses the login.
    :raises MigrationRequiredError: an existing older schema needs migrations and
        ``auto_migrate`` is off.
    """
    schema = oracle_schema(config.schema)
    return open_sql_backend(OracleConnector(config), dialect_for(schema), schema, check_schema=check_schema)


def schema_script(config: OracleConfig) -> list[str]:
    """The whole schema of ``config`` at the latest version (PL/SQL-guarded DDL); nothing is connected to."""
    schema = oracle_schema(config.schema)
    return _schema_script(render(schema, dialect_for(schema)))
