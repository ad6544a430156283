"""The ``postgres`` backend: PostgreSQL through psycopg 3 and a ``psycopg_pool`` pool.

The shared SQL layer (``datacon.backends._sql``) with :class:`PostgresDialect`. Blocking
code; every single-statement operation is one round trip on an autocommit connection.
``schema.owner`` is ignored (use ``search_path``, e.g. ``?options=-csearch_path%3Dmyschema``).
"""

from __future__ import annotations

from datacon.backends._sql import open_sql_backend
from datacon.backends.base import Backend
from datacon.config import PostgresConfig

from .connector import MIGRATION_LOCK, PostgresConnector
from .dialect import PostgresDialect

__all__ = ["MIGRATION_LOCK", "PostgresConnector", "PostgresDialect", "open_backend"]


def open_backend(config: PostgresConfig, *, check_schema: bool = True) -> Backend:
    """The three Postgres storages over one pool; tables created and migrations checked.

    :raises BackendUnavailableError: the server cannot be reached (or refuses the login).
    :raises MigrationRequiredError: an existing older schema needs migrations and
        ``auto_migrate`` is off.
    """
    return open_sql_backend(PostgresConnector(config), PostgresDialect(), config.schema, check_schema=check_schema)
