"""PgBouncer test server: a real ``pgbouncer`` in transaction pooling mode in front of the test cluster.

Started once per test run by ``tests/servers/postgres.py``'s ``pgbouncer_server`` fixture.
Clients authenticate to PgBouncer with SCRAM; PgBouncer logs in to PostgreSQL with the
passwords of its ``userlist.txt``. Every database name is forwarded (``* = …``) with a small
server pool, so client connections really share server connections; ``tx1`` forwards to the
test database with a pool of exactly one server connection (tests of the multiplexing).
Locally a missing ``pgbouncer`` skips; in CI it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import free_port, server_missing

#: Server connections per (database, user) pair: fewer than a storage's pool, so they are shared.
POOL_SIZE = 4


def pgbouncer_executable() -> str:
    """The ``pgbouncer`` binary, or a skip (locally) / failure (CI) when there is none."""
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if found is None:
        server_missing("pgbouncer is not installed (apt-get install pgbouncer)")
    return found


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class PgBouncer:
    """A ``pgbouncer`` child process on 127.0.0.1 forwarding to a PostgreSQL server."""

    def __init__(self, executable: str, pg_port: int, database: str, users: dict[str, str]) -> None:
        self.executable = executable
        self.pg_port = pg_port
        self.database = database
        self.users = dict(users)
        self.workdir = Path(tempfile.mkdtemp(prefix="datacon-pgbouncer-"))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        userlist = self.workdir / "userlist.txt"
        userlist.write_text("".join(f"{_quote(u)} {_quote(p)}\n" for u, p in self.users.items()))
        ini = self.workdir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"tx1 = host=127.0.0.1 port={self.pg_port} dbname={self.database} pool_size=1\n"
            f"* = host=127.0.0.1 port={self.pg_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = scram-sha-256\n"
            f"auth_file = {userlist}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {POOL_SIZE}\n"
            "max_client_conn = 1000\n"
            "max_db_connections = 0\n"
            "server_lifetime = 3600\n"
            f"logfile = {self.workdir / 'pgbouncer.log'}\n"
            f"pidfile = {self.workdir / 'pgbouncer.pid'}\n"
        )
        if os.geteuid() == 0:  # pgbouncer refuses to run as root: it switches to postgres (-u)
            for path in (self.workdir, userlist, ini):
                shutil.chown(path, "postgres", "postgres")
        return ini

    def start(self, timeout: float = 15.0) -> None:
        """Start on a free port and wait until it accepts a login."""
        import psycopg

        for _attempt in range(3):  # a free port can be taken before pgbouncer binds it
            self.port = free_port()
            ini = self._write_config()
            args = [self.executable, *(["-u", "postgres"] if os.geteuid() == 0 else []), str(ini)]
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            user, password = next(iter(self.users.items()))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    psycopg.connect(self.url(user, password), connect_timeout=2).close()
                    return
                except psycopg.OperationalError:
                    time.sleep(0.05)
            self.stop(remove=False)
        log = self.workdir / "pgbouncer.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise RuntimeError(f"pgbouncer did not start: {tail}")

    def url(self, user: str, password: str, database: str | None = None) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database or self.database}"

    def stop(self, remove: bool = True) -> None:
        """Stop pgbouncer (SIGTERM: immediate shutdown) and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)
