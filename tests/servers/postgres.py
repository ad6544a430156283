"""PostgreSQL test server: a throwaway cluster on 127.0.0.1 (initdb + pg_ctl), password auth.

Set ``DATACON_TEST_POSTGRES_URL`` to use an existing server instead (``wipe`` truncates the
tables of the schema under test; migration tests create and drop their own databases).
Binaries come from ``$PGBIN`` or ``/usr/lib/postgresql/15/bin``. As root, the cluster runs
as the ``postgres`` user. Locally a missing PostgreSQL skips; in CI it fails.
"""

from __future__ import annotations

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

import pytest

from datacon import PostgresConfig, SchemaConfig, StorageFactoryConfig, StorageHook
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
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
            )
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
