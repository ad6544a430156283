"""The ``postgres`` backend: PostgreSQL through psycopg 3 and a ``psycopg_pool`` pool.

The shared SQL layer (``datacon.backends._sql``) with :class:`PostgresDialect`. Blocking
code; every single-statement operation is one round trip on an autocommit connection.
``schema.owner`` is ignored (use ``search_path``, e.g. ``?options=-csearch_path%3Dmyschema``).
"""

from __future__ import annotations

from datacon.backends._sql import check_identifiers, open_sql_storage
from datacon.config import PostgresConfig
from datacon.schema import SchemaConfig
from datacon.storage import Storage

from .connector import MIGRATION_LOCK, PostgresConnector
from .dialect import PostgresDialect

__all__ = ["MIGRATION_LOCK", "PostgresConnector", "PostgresDialect", "open_storage"]


def open_storage(config: PostgresConfig) -> Storage:
    """The three Postgres storages over one pool; tables created and migrations checked.

    :raises ConfigError: ``db_url`` is not a URL libpq accepts, or a schema name does not fit
        PostgreSQL's 63-byte identifiers.
    :raises BackendUnavailableError: the server cannot be reached (or refuses the login).
    :raises MigrationRequiredError: an existing older schema needs migrations and
        ``auto_migrate`` is off.
    """
    dialect = PostgresDialect()
    check_identifiers(config.schema or SchemaConfig(), dialect)  # before connecting
    return open_sql_storage(PostgresConnector(config), dialect, config.schema)
