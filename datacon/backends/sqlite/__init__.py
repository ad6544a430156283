"""The ``sqlite`` backend: the embedded, persistent default (stdlib ``sqlite3``, WAL).

The shared SQL layer (``datacon.backends._sql``) with :class:`SqliteDialect` over a small
thread-safe pool (:class:`SqliteConnector`). Timestamps are stored as integer microseconds
since the Unix epoch and JSON as text; ``":memory:"`` is one shared connection.
"""

from __future__ import annotations

from datacon.backends._sql import open_sql_backend, render
from datacon.backends._sql import schema_script as _schema_script
from datacon.backends.base import Backend
from datacon.config import SqliteConfig
from datacon.schema import SchemaConfig

from .connector import SqliteConnector
from .dialect import SqliteDialect

__all__ = ["SqliteConnector", "SqliteDialect", "open_backend", "schema_script"]


def open_backend(config: SqliteConfig, *, check_schema: bool = True) -> Backend:
    """The three SQLite storages on ``config.path`` (created if missing), schema brought up to date.

    :raises MigrationRequiredError: an existing older schema needs migrations and
        ``auto_migrate`` is off.
    """
    return open_sql_backend(SqliteConnector(config), SqliteDialect(), config.schema, check_schema=check_schema)


def schema_script(config: SqliteConfig) -> list[str]:
    """The whole schema of ``config`` at the latest version, as SQL; the file is not opened."""
    return _schema_script(render(config.schema or SchemaConfig(), SqliteDialect()))
