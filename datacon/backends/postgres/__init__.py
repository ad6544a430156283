"""The ``postgres`` backend: PostgreSQL through psycopg 3 and a ``psycopg_pool`` pool.

The shared SQL layer (``datacon.backends._sql``) with :class:`PostgresDialect`. Blocking
code; every single-statement operation is one round trip on an autocommit connection.
``schema.owner`` is ignored (use ``search_path``, e.g. ``?options=-csearch_path%3Dmyschema``).
"""

from __future__ import annotations

from datacon.backends._sql import open_sql_backend, render
from datacon.backends._sql import schema_script as _schema_script
from datacon.backends.base import Backend
from datacon.config import PostgresConfig
from datacon.schema import SchemaConfig

from .connector import MIGRATION_LOCK, PostgresConnector
from .dialect import PostgresDialect

__all__ = ["MIGRATION_LOCK", "PostgresConnector", "PostgresDialect", "open_backend", "schema_script"]


def open_backend(config: PostgresConfig, *, check_schema: bool = True) -> Backend:
    """The three Postgres storages over one pool; tables created and migrations checked.

    :raises BackendUnavailableError: the server cannot be reached (or refuses the login).
    :raises MigrationRequiredError: an existing older schema needs migrations and
        ``auto_migrate`` is off.
    """
    return open_sql_backend(PostgresConnector(config), PostgresDialect(), config.schema, check_schema=check_schema)


def schema_script(config: PostgresConfig) -> list[str]:
    """The whole schema of ``config`` at the latest version, as SQL; nothing is connected to."""
    return _schema_script(render(config.schema or SchemaConfig(), PostgresDialect()))
