"""SQLite test backend: one database file in a session tmp dir (no server to start).

``wipe`` deletes the rows of the schema's tables rather than the file, since a storage
opened by a module-scoped fixture may still be using it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from datacon import SchemaConfig, SqliteConfig, StorageFactoryConfig, StorageHook


class SqliteBackend:
    """The ``sqlite`` backend under test, on one database file."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def sqlite_config(self, schema: SchemaConfig | None = None, **options: object) -> SqliteConfig:
        return SqliteConfig(path=str(self.path), schema=schema, **options)  # type: ignore[arg-type]

    def config(self, schema: SchemaConfig | None = None, hook: StorageHook | None = None) -> StorageFactoryConfig:
        return StorageFactoryConfig(backend="sqlite", sqlite=self.sqlite_config(schema), hook=hook)

    def wipe(self, schema: SchemaConfig | None = None) -> None:
        tables = [table.table for table in (schema or SchemaConfig()).tables().values()]
        tables.append("_idempotency_keys")  # datacon's own table, shared by the schemas
        with sqlite3.connect(self.path, timeout=30) as conn:
            existing = {row[0].lower() for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for table in tables:
                if table.lower() in existing:
                    conn.execute(f'DELETE FROM "{table}"')
        conn.close()


@pytest.fixture(scope="session")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> SqliteBackend:
    return SqliteBackend(tmp_path_factory.mktemp("sqlite") / "datacon-test.db")
