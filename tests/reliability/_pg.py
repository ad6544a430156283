"""A PostgreSQL cluster the fault tests own: durable settings, killed and restarted at will."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.servers.postgres import DATABASE, USER, PostgresServer, postgres_bindir


class FaultablePostgres(PostgresServer):
    """tests/servers/postgres.py's cluster (initdb, password auth), restarted with durable
    settings so ``pg_ctl stop -m immediate`` behaves like a crash of a production server.

    The shared plugin runs with ``fsync=off`` and ``synchronous_commit=off`` for speed; with
    those an immediate stop may drop commits that were already acknowledged, which is the
    very thing these tests must detect in datacon, not provoke in the server.
    """

    def __init__(self, bindir: Path | None = None, extra: str = "") -> None:
        super().__init__(bindir or postgres_bindir())
        self.extra = extra  # more ``-c name=value`` server options (ssl, hba...)

    def options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} "
            f"-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=100 {self.extra}"
        )

    def start(self) -> None:
        """initdb and first start (the plugin's), then a restart with :meth:`options`; make the test database."""
        super().start()
        self.pg_ctl("-m", "fast", "-w", "stop")
        self.resume()
        with self.admin("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def pg_ctl(self, *args: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), *args)

    def kill(self) -> None:
        """``pg_ctl stop -m immediate``: every server process quits at once, no checkpoint (a crash)."""
        self.pg_ctl("-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """Start the cluster again on the same port (after a kill, WAL replay recovers it)."""
        self.pg_ctl("-o", self.options(), "-l", str(self.workdir / "server.log"), "-w", "-t", "60", "start")

    def admin(self, database: str = DATABASE) -> Any:
        """A superuser autocommit connection over the unix socket (trust auth, no password)."""
        import psycopg

        return psycopg.connect(host=str(self.workdir), port=self.port, user=USER, dbname=database, autocommit=True)
