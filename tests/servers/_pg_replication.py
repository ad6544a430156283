"""A PostgreSQL primary and a streaming hot standby on loopback (``pg_basebackup -R``).

Used by the ``postgres_replica`` fixtures of tests/servers/postgres.py (the conformance suite
with ``read_urls``) and by the failover fault tests, which kill the primary and promote the
standby. Both servers are clusters of tests/servers/postgres.py's kind (password auth, the
unix socket in the work dir), each in its own temporary directory.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from tests.servers.postgres import DATABASE, PASSWORD, USER, PostgresServer
from tests.support import free_port


class ReplicatedServer(PostgresServer):
    """One server of a replicated pair: its settings, a superuser socket connection, kill and
    promote. ``synchronous``: the ``synchronous_commit`` level with every standby synchronous
    (``synchronous_standby_names = '*'``), or ``None`` for asynchronous replication.
    ``durable``: fsync and full-page writes on (as a production server; the fault tests)."""

    def __init__(self, bindir: Path, synchronous: str | None, durable: bool) -> None:
        super().__init__(bindir)
        self.synchronous = synchronous
        self.durable = durable

    def options(self) -> str:
        # synchronous_standby_names is set by ReplicatedPair.start once the standby streams
        # (with it set and no standby yet, every commit would wait); not here, where it would
        # override that ALTER SYSTEM.
        durability = "on" if self.durable else "off"
        replication = f"-c synchronous_commit={self.synchronous or 'on'}"
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} "
            f"-c fsync={durability} -c full_page_writes={durability} -c max_connections=200 "
            f"-c wal_level=replica -c max_wal_senders=5 -c hot_standby=on -c wal_receiver_status_interval=1 "
            f"{replication}"
        )

    def pg_ctl(self, *args: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), *args)

    def launch(self) -> None:
        """``pg_ctl start`` with :meth:`options` (waits until it accepts connections)."""
        self.pg_ctl("-o", self.options(), "-l", str(self.workdir / "server.log"), "-w", "-t", "60", "start")

    def kill(self) -> None:
        """``pg_ctl stop -m immediate``: every server process quits at once (a crash)."""
        self.pg_ctl("-m", "immediate", "-w", "stop")

    def admin(self, database: str = DATABASE) -> Any:
        """A superuser autocommit connection over the unix socket (trust auth, no password)."""
        import psycopg

        return psycopg.connect(host=str(self.workdir), port=self.port, user=USER, dbname=database, autocommit=True)

    def log_tail(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


class StandbyServer(ReplicatedServer):
    """A hot standby cloned from a running primary with ``pg_basebackup -R`` (streaming)."""

    def clone(self, primary: ReplicatedServer) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        source = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{primary.port}/postgres"
        self._run(
            str(self.bindir / "pg_basebackup"), "-D", str(self.data), "-R", "-X", "stream", "-c", "fast", "-d", source
        )
        for _attempt in range(3):  # a free port can be taken before the server binds it
            self.port = free_port()
            try:
                self.launch()
                return
            except RuntimeError:
                if _attempt == 2:
                    raise

    def promote(self) -> None:
        """``pg_ctl promote -w``: returns once the standby accepts writes."""
        self.pg_ctl("-w", "-t", "60", "promote")

    def walreceiver_pid(self) -> int:
        """The process receiving WAL from the primary (stop it to make the standby fall behind)."""
        with self.admin() as conn:
            row = conn.execute("SELECT pid FROM pg_stat_wal_receiver").fetchone()
        if row is None or row[0] is None:
            raise RuntimeError("the standby has no WAL receiver")
        return int(row[0])

    def pause_replay(self, timeout: float = 30.0) -> None:
        """Pause WAL replay and wait until it is paused (the request takes effect between records)."""
        deadline = time.monotonic() + timeout
        with self.admin() as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
            while conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] != "paused":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the standby's replay did not pause within {timeout:g} s")
                time.sleep(0.01)

    def resume_replay(self) -> None:
        with self.admin() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


class ReplicatedPair:
    """A primary and one streaming standby, started (and waited for) by :meth:`start`."""

    def __init__(self, bindir: Path, *, synchronous: str | None = "remote_apply", durable: bool = False) -> None:
        self.primary = ReplicatedServer(bindir, synchronous, durable)
        self.standby = StandbyServer(bindir, synchronous, durable)

    def start(self, timeout: float = 60.0) -> None:
        self.primary.start()  # initdb + start with the replication settings
        with self.primary.admin("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        self.standby.clone(self.primary)
        if self.primary.synchronous is not None:
            # Only the primary's: a promoted standby has no standby of its own to wait for.
            with self.primary.admin("postgres") as conn:
                conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
                conn.execute("SELECT pg_reload_conf()")
        self.wait_streaming(timeout)

    def wait_streaming(self, timeout: float = 60.0) -> None:
        """Wait until the standby streams from the primary (and is synchronous, if asked)."""
        want = "async" if self.primary.synchronous is None else "sync"
        deadline = time.monotonic() + timeout
        while True:
            with self.primary.admin("postgres") as conn:
                rows = conn.execute("SELECT state, sync_state FROM pg_stat_replication").fetchall()
            if any(state == "streaming" and sync == want for state, sync in rows):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the standby is not streaming ({want}) after {timeout:g} s: {rows}; "
                    f"standby log: {self.standby.log_tail()}"
                )
            time.sleep(0.05)

    def replay_lag_bytes(self) -> int:
        """Bytes of WAL the primary has written that the standby has not replayed yet."""
        with self.primary.admin("postgres") as conn:
            row = conn.execute(
                "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0) FROM pg_stat_replication"
            ).fetchone()
        return int(row[0])

    def url(self) -> str:
        """The primary's URL."""
        return self.primary.url()

    def read_url(self) -> str:
        """The standby's URL."""
        return self.standby.url()

    def failover_url(self) -> str:
        """Both servers, the writable one chosen by libpq (``target_session_attrs=read-write``)."""
        return (
            f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}/"
            f"{DATABASE}?target_session_attrs=read-write"
        )

    def stop(self) -> None:
        for server in (self.standby, self.primary):
            server.stop()
