"""The ``postgres`` backend: PostgreSQL through psycopg 3 and a ``psycopg_pool`` pool.

The shared SQL layer (``datacon.backends._sql``) with :class:`PostgresDialect`. Blocking
code; every single-statement operation is one round trip on an autocommit connection.
With ``schema.owner`` the tables are in that (existing) schema, as upstream puts them
(``owner."table"``); without, in the connection's ``search_path``.
"""

from __future__ import annotations

from datacon.backends._sql import check_identifiers, open_sql_backend, render
from datacon.backends._sql import schema_script as _schema_script
from datacon.backends.base import Backend
from datacon.config import PostgresConfig
from datacon.errors import ConfigError
from datacon.schema import SchemaConfig

from .connector import MIGRATION_LOCK, PostgresConnector
from .dialect import PostgresDialect, dialect_for

__all__ = ["MIGRATION_LOCK", "PostgresConnector", "PostgresDialect", "open_backend", "schema_script"]


def open_backend(config: PostgresConfig, *, check_schema: bool = True) -> Backend:
    """The three Postgres storages over one pool; tables created and migrations checked.

    :raises ConfigError: ``db_url`` is not a URL libpq accepts, a schema name does not fit
        PostgreSQL's 63-byte identifiers, or the ``owner`` schema does not exist.
    :raises BackendUnavailableError: the server cannot be reached (or refuses the login).
    :raises MigrationRequiredError: an existing older schema needs migrations and
        ``auto_migrate`` is off.
    """
    schema = config.schema or SchemaConfig()
    dialect = dialect_for(schema)
    check_identifiers(schema, dialect)  # before connecting
    connector = PostgresConnector(config)
    if schema.owner:
        _check_owner(connector, dialect, schema.owner)
    return open_sql_backend(connector, dialect, config.schema, check_schema=check_schema)


def _check_owner(connector: PostgresConnector, dialect: PostgresDialect, owner: str) -> None:
    # Tables are never created in another schema than the one configured; nor is the schema
    # created here (that takes the database's CREATE privilege, and a typo would go unseen).
    try:
        with connector.session() as session:
            found = session.fetchone(dialect.schema_exists_sql(), {"name": owner.lower()})
    except BaseException:
        connector.close()
        raise
    if found is None:
        connector.close()
        raise ConfigError(
            f"owner: the database has no schema '{owner.lower()}' to put the tables in "
            f"(create it first: CREATE SCHEMA {dialect.ident(owner)})",
            "postgres.schema",
        )


def schema_script(config: PostgresConfig) -> list[str]:
    """The whole schema of ``config`` at the latest version, as SQL; nothing is connected to."""
    schema = config.schema or SchemaConfig()
    return _schema_script(render(schema, dialect_for(schema)))
