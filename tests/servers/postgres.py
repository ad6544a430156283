"""PostgreSQL test server: a throwaway cluster on 127.0.0.1 (initdb + pg_ctl), password auth.

Set ``DATACON_TEST_POSTGRES_URL`` to use an existing server instead (``wipe`` truncates the
tables of the schema under test; migration tests create and drop their own databases).
Binaries come from ``$PGBIN`` or ``/usr/lib/postgresql/15/bin``. As root, the cluster runs
as the ``postgres`` user. Locally a missing PostgreSQL skips; in CI it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest

from datacon import PostgresConfig, SchemaConfig, StorageFactoryConfig, StorageHook
from datacon._serde import converter
from tests.servers._pgbouncer import PgBouncer, pgbouncer_executable
from tests.support import free_port, server_missing

USER = "datacon"
PASSWORD = "dc-pg-s3cret"
DATABASE = "datacon_test"
DEFAULT_BIN = "/usr/lib/postgresql/15/bin"


def _as_postgres(args: list[str]) -> list[str]:
    """Run as the ``postgres`` user when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory, started with ``pg_ctl``."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.workdir = Path(tempfile.mkdtemp(prefix="datacon-pg-"))
        self.data = self.workdir / "data"
        self.port = 0

    def _run(self, *args: str) -> None:
        result = subprocess.run(_as_postgres(list(args)), capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")

    def start(self) -> None:
        """initdb, then start on a free port; the unix socket stays in the work dir."""
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        for _attempt in range(3):  # a free port can be taken before the server binds it
            self.port = free_port()
            options = self.options()
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.workdir / "server.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
                return
            except RuntimeError:
                if _attempt == 2:
                    raise

    def options(self) -> str:
        """The server's command-line settings (port, loopback only, the socket in the work dir)."""
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )

    def stop(self) -> None:
        """Stop the cluster (fast shutdown) and remove its directory."""
        if self.data.exists():
            subprocess.run(
                _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
                check=False,
                timeout=120,
            )
        shutil.rmtree(self.workdir, ignore_errors=True)

    def url(self, database: str = DATABASE, password: str = PASSWORD, port: int | None = None) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{port or self.port}/{database}"


class PostgresBackend:
    """The ``postgres`` backend under test, bound to one database URL.

    ``options`` are extra ``PostgresConfig`` fields of every config it makes; ``admin_url``
    (default: ``url``) is where tests inspect and wipe tables, straight on the server.
    """

    name = "postgres"

    def __init__(self, url: str, options: dict[str, Any] | None = None, admin_url: str | None = None) -> None:
        self.url = url
        self.options = dict(options or {})
        self.admin_url = admin_url or url

    def postgres_config(
        self, schema: SchemaConfig | None = None, url: str | None = None, **options: Any
    ) -> PostgresConfig:
        return PostgresConfig(db_url=url or self.url, schema=schema, **{**self.options, **options})

    def config(self, schema: SchemaConfig | None = None, hook: StorageHook | None = None) -> StorageFactoryConfig:
        return StorageFactoryConfig(backend="postgres", postgres=self.postgres_config(schema), hook=hook)

    def connect(self, url: str | None = None) -> Any:
        """A plain autocommit psycopg connection (for inspecting tables in tests)."""
        import psycopg

        return psycopg.connect(url or self.admin_url, autocommit=True)

    def url_for(self, database: str) -> str:
        return urlsplit(self.admin_url)._replace(path=f"/{database}").geturl()

    def create_database(self) -> str:
        """A new empty database on the same server; its URL (drop it with ``drop_database``)."""
        name = f"dc_{secrets.token_hex(6)}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def wipe(self, schema: SchemaConfig | None = None) -> None:
        tables = [f'"{table.table.lower()}"' for table in (schema or SchemaConfig()).tables().values()]
        tables.append('"_idempotency_keys"')  # datacon's own table, shared by the schemas
        with self.connect() as conn:
            present = [t for t in tables if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is not None]
            if present:
                conn.execute(f"TRUNCATE {', '.join(present)}")


def postgres_bindir() -> Path:
    """The server binaries directory, or a skip (locally) / failure (CI) when there is none."""
    bindir = Path(os.environ.get("PGBIN", DEFAULT_BIN))
    if not (bindir / "initdb").exists() or not (bindir / "pg_ctl").exists():
        server_missing(
            f"PostgreSQL server binaries not found in {bindir} (set PGBIN) and DATACON_TEST_POSTGRES_URL is unset"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        server_missing("running as root needs runuser to start PostgreSQL as the postgres user")
    return bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    """The cluster the tests started (``None`` when DATACON_TEST_POSTGRES_URL is used)."""
    if os.environ.get("DATACON_TEST_POSTGRES_URL"):
        yield None
        return
    server = PostgresServer(postgres_bindir())
    try:
        server.start()
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{DATABASE}"')
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_backend(postgres_server: PostgresServer | None) -> PostgresBackend:
    if postgres_server is None:
        return PostgresBackend(os.environ["DATACON_TEST_POSTGRES_URL"])
    return PostgresBackend(postgres_server.url())


@pytest.fixture(scope="session")
def pgbouncer_server(postgres_backend: PostgresBackend) -> Iterator[PgBouncer]:
    """A ``pgbouncer`` in transaction pooling mode in front of the test server (one per run)."""
    executable = pgbouncer_executable()
    import psycopg.conninfo

    target = psycopg.conninfo.conninfo_to_dict(postgres_backend.admin_url)
    if target.get("host") not in (None, "127.0.0.1", "localhost"):
        server_missing("pgbouncer is only started in front of a PostgreSQL server on this machine")
    users = {str(target["user"]): str(target["password"])}
    bouncer = PgBouncer(executable, int(target.get("port") or 5432), str(target["dbname"]), users)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="session")
def pgbouncer_backend(pgbouncer_server: PgBouncer, postgres_backend: PostgresBackend) -> PostgresBackend:
    """The ``postgres`` backend through PgBouncer (``transaction_pooling=True``); tables wiped directly."""
    user, password = next(iter(pgbouncer_server.users.items()))
    return PostgresBackend(
        pgbouncer_server.url(user, password), {"transaction_pooling": True}, admin_url=postgres_backend.admin_url
    )


#: The application role of the DML-only run: it may read and write rows, nothing else.
DML_ROLE = "datacon_app"
DML_PASSWORD = "dc-app-s3cret"
DML_DATABASE = "datacon_dml"


class DmlOnlyBackend(PostgresBackend):
    """The ``postgres`` backend as deployed by a cautious DBA: the application connects as a
    role with only SELECT/INSERT/UPDATE/DELETE on the tables and ``create_tables: false``.

    Each schema it is used with gets a database of its own (schemas share ``_schema_versions``,
    so two would not fit one empty database): the DBA (the test superuser) creates it, applies
    what ``datacon migrate sql`` prints with ``psql``, and grants the role its rights. ``url``
    and ``admin_url`` are those of the default schema's database.
    """

    def __init__(self, server: PostgresBackend, bindir: Path | None) -> None:
        self.server = server
        self.bindir = bindir
        self._databases: dict[str, tuple[str, str]] = {}  # repr(schema) -> (app url, admin url)
        url, admin = self.apply_schema(attrs.evolve(SchemaConfig(), create_tables=False))
        super().__init__(url, admin_url=admin)

    def postgres_config(
        self, schema: SchemaConfig | None = None, url: str | None = None, **options: Any
    ) -> PostgresConfig:
        schema = attrs.evolve(schema or SchemaConfig(), create_tables=False)
        app_url, _ = self.apply_schema(schema)
        return super().postgres_config(schema, url or app_url, **options)

    def wipe(self, schema: SchemaConfig | None = None) -> None:
        _, admin = self.apply_schema(attrs.evolve(schema or SchemaConfig(), create_tables=False))
        tables = [f'"{table.table.lower()}"' for table in (schema or SchemaConfig()).tables().values()]
        tables.append('"_idempotency_keys"')
        with self.server.connect(admin) as conn:
            conn.execute(f"TRUNCATE {', '.join(tables)}")

    def databases(self) -> list[str]:
        return [urlsplit(admin).path.lstrip("/") for _, admin in self._databases.values()]

    def apply_schema(self, schema: SchemaConfig) -> tuple[str, str]:
        """The database for ``schema`` (made on first use: ``datacon migrate sql`` applied by the
        DBA, DML granted to the role); its application and admin URLs."""
        key = repr(schema)
        if key in self._databases:
            return self._databases[key]
        from click.testing import CliRunner

        from datacon.cli import cli

        name = f"{DML_DATABASE}_{len(self._databases)}"
        with self.server.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        admin = self.server.url_for(name)
        parts = urlsplit(admin)
        url = parts._replace(netloc=f"{DML_ROLE}:{DML_PASSWORD}@{parts.netloc.rpartition('@')[2]}").geturl()
        config = PostgresConfig(db_url=admin, schema=schema)
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "datacon.json"
            file.write_text(json.dumps({"backend": "postgres", "postgres": converter.unstructure(config)}))
            result = CliRunner().invoke(cli, ["migrate", "sql", "--config", str(file)], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            script = Path(tmp) / "schema.sql"
            script.write_text(result.stdout)
            psql = self.bindir / "psql" if self.bindir is not None else None
            with self.server.connect(admin) as conn:
                conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # PostgreSQL 15's default, made sure of
            if psql is not None and psql.exists():
                run = subprocess.run(
                    [str(psql), admin, "-v", "ON_ERROR_STOP=1", "-q", "-f", str(script)],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=60,
                )
                assert run.returncode == 0, run.stderr
            else:
                with self.server.connect(admin) as conn:
                    conn.execute(result.stdout)
        with self.server.connect(admin) as conn:
            conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {DML_ROLE}")
        self._databases[key] = (url, admin)
        return url, admin


@pytest.fixture(scope="session")
def postgres_dml_backend(postgres_backend: PostgresBackend) -> Iterator[DmlOnlyBackend]:
    """Databases whose tables a DBA created, and the application's DML-only role."""
    from psycopg import sql

    def drop(conn: Any, databases: list[str]) -> None:
        for name in databases:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f"DROP ROLE IF EXISTS {DML_ROLE}")

    with postgres_backend.connect() as conn:
        stale = [row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'datacon_dml%'")]
        drop(conn, stale)
        create = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")  # no CREATEDB, no CREATEROLE, not a superuser
        conn.execute(create.format(sql.Identifier(DML_ROLE), sql.Literal(DML_PASSWORD)))
    backend: DmlOnlyBackend | None = None
    try:
        backend = DmlOnlyBackend(postgres_backend, Path(os.environ.get("PGBIN", DEFAULT_BIN)))
        yield backend
    finally:
        with postgres_backend.connect() as conn:
            drop(conn, backend.databases() if backend is not None else [])


@pytest.fixture(scope="session")
def postgres_replica_pair() -> Iterator[Any]:
    """A primary and a streaming hot standby (``pg_basebackup -R``), started once per run.

    Commits wait until the standby has applied them (``synchronous_commit = remote_apply``),
    so the conformance suite can read its own writes from the replica; a test that wants
    real lag pauses the standby's replay and writes with ``synchronous_commit = local``.
    """
    from tests.servers._pg_replication import ReplicatedPair

    pair = ReplicatedPair(postgres_bindir(), synchronous="remote_apply")
    try:
        try:
            pair.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            server_missing(f"the PostgreSQL primary + standby could not start: {exc}")
        yield pair
    finally:
        pair.stop()


@pytest.fixture(scope="session")
def postgres_replica_backend(postgres_replica_pair: Any) -> PostgresBackend:
    """The ``postgres`` backend with the standby as its read replica (``read_urls``); tables
    inspected and wiped on the primary."""
    return PostgresBackend(postgres_replica_pair.url(), {"read_urls": [postgres_replica_pair.read_url()]})
