"""Oracle test backend: an existing Oracle Database named by environment variables.

No Oracle server can be started by the tests (there is no installable one), so the
``oracle`` conformance parameters run only when ``DATACON_TEST_ORACLE_DSN``,
``DATACON_TEST_ORACLE_USER`` and ``DATACON_TEST_ORACLE_PASSWORD`` are set (see
docs/oracle.md for Oracle Database Free in a container); otherwise they are skipped with
that reason, also in CI: the one backend allowed to skip there. ``wipe`` deletes the rows
of the four tables of the schema under test.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from datacon import OracleConfig, SchemaConfig, StorageFactoryConfig, StorageHook

ENV_DSN = "DATACON_TEST_ORACLE_DSN"
ENV_USER = "DATACON_TEST_ORACLE_USER"
ENV_PASSWORD = "DATACON_TEST_ORACLE_PASSWORD"
SKIP_REASON = (
    f"no Oracle server: set {ENV_DSN}, {ENV_USER} and {ENV_PASSWORD} to run the oracle "
    "tests (docs/oracle.md shows how with Oracle Database Free)"
)


class OracleBackend:
    """The ``oracle`` backend under test, on one existing database account."""

    name = "oracle"

    def __init__(self, dsn: str, user: str, password: str) -> None:
        self.dsn = dsn
        self.user = user
        self.password = password

    def oracle_config(self, schema: SchemaConfig | None = None, **options: Any) -> OracleConfig:
        return OracleConfig(
            connect_descriptor=self.dsn, username=self.user, password=self.password, schema=schema, **options
        )

    def config(self, schema: SchemaConfig | None = None, hook: StorageHook | None = None) -> StorageFactoryConfig:
        return StorageFactoryConfig(backend="oracle", oracle=self.oracle_config(schema), hook=hook)

    def connect(self) -> Any:
        """A plain python-oracledb connection (for inspecting tables in tests)."""
        import oracledb

        return oracledb.connect(user=self.user, password=self.password, dsn=self.dsn)

    def wipe(self, schema: SchemaConfig | None = None) -> None:
        """DELETE the rows of the schema's four tables (those that exist)."""
        from datacon.backends.oracle import dialect_for, oracle_schema

        uppercased = oracle_schema(schema)
        dialect = dialect_for(uppercased)
        with self.connect() as conn, conn.cursor() as cursor:
            for table in uppercased.tables().values():
                probe = dialect.table_name_for_probe(table.table)
                cursor.execute(dialect.table_exists_sql(), {"name": probe})
                if cursor.fetchone() is not None:
                    cursor.execute(f"DELETE FROM {dialect.table(table.table)}")  # validated, quoted names
            conn.commit()


@pytest.fixture(scope="session")
def oracle_backend() -> OracleBackend:
    """The configured Oracle database, or a skip naming the variables to set."""
    dsn, user, password = (os.environ.get(name, "") for name in (ENV_DSN, ENV_USER, ENV_PASSWORD))
    if not (dsn and user and password):
        # Deliberately not tests.support.server_missing: no Oracle server can exist on the
        # CI machines, so this skip is allowed (and stays a skip) even when CI is set.
        pytest.skip(SKIP_REASON)
    return OracleBackend(dsn, user, password)
