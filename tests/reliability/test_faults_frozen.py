"""A frozen server (SIGSTOP): connections stay open but nothing answers; calls must still time out."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from datacon import PostgresConfig, RedisConfig, Storage, StorageFactoryConfig, create_storage
from datacon.errors import BackendUnavailableError
from tests.reliability import figures
from tests.reliability._pg import FaultablePostgres
from tests.servers.redis import RedisServer, redis_executable

pytestmark = pytest.mark.reliability

TIMEOUT = 2.0
BOUND = 3 * TIMEOUT + 2.0  # pool wait + connect + read, plus slack


def call_while_frozen(storage: Storage, pids: list[int]) -> tuple[object, float]:
    """Freeze ``pids``, make one call, thaw them after ``BOUND`` s at the latest.

    Returns the call's outcome (result or exception; ``"hang"`` if it had not returned when
    the server was thawed) and how long it ran while the server was frozen.
    """
    outcome: list[object] = []
    storage.conversations.get_conversation("warm-up")  # a pooled connection is open
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:

        def call() -> None:
            try:
                outcome.append(storage.conversations.get_conversation("frozen"))
            except Exception as exc:  # kept, asserted by the caller
                outcome.append(exc)

        worker = threading.Thread(target=call, daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(BOUND)
        elapsed = time.monotonic() - started
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    worker.join(30)
    return (outcome[0] if elapsed < BOUND and outcome else "hang"), elapsed


def check_frozen(name: str, storage: Storage, pids: list[int], recovered: Callable[[], object]) -> None:
    outcome, elapsed = call_while_frozen(storage, pids)
    if outcome == "hang":
        figures.record(f"frozen server[{name}]", f"FINDING: the call was still blocked after {elapsed:.1f} s")
    assert outcome != "hang", f"the call hung for more than {BOUND} s (configured timeouts {TIMEOUT} s)"
    assert isinstance(outcome, BackendUnavailableError), f"got {outcome!r}"
    started = time.monotonic()
    recovered()  # the same storage works once the server answers again
    figures.record(
        f"frozen server[{name}]",
        f"call failed after {elapsed:.2f} s with {type(outcome).__name__}; "
        f"next call after thaw took {time.monotonic() - started:.3f} s",
    )


@pytest.mark.redis
def test_redis_frozen_server_times_out(tmp_path: Path) -> None:
    server = RedisServer(redis_executable(), tmp_path)
    server.start()
    config = RedisConfig(
        url=server.url, pool_max=2, pool_timeout_secs=TIMEOUT, socket_timeout_secs=TIMEOUT, connect_timeout_secs=TIMEOUT
    )
    try:
        with create_storage(StorageFactoryConfig(backend="redis", redis=config)) as storage:
            assert server.process is not None
            check_frozen("redis", storage, [server.process.pid], lambda: storage.conversations.get_conversation("x"))
    finally:
        server.stop()


def cluster_pids(postmaster: int) -> list[int]:
    """The postmaster and its children (backends, checkpointer, walwriter...)."""
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(entry))
    return pids


@pytest.mark.postgres
def test_postgres_frozen_server_times_out() -> None:
    server = FaultablePostgres()
    try:
        server.start()
        config = PostgresConfig(
            db_url=server.url(),
            pool_max=2,
            pool_timeout_secs=TIMEOUT,
            connect_timeout_secs=TIMEOUT,
            read_timeout_secs=TIMEOUT,
        )
        with create_storage(StorageFactoryConfig(backend="postgres", postgres=config)) as storage:
            postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
            check_frozen(
                "postgres", storage, cluster_pids(postmaster), lambda: storage.conversations.get_conversation("x")
            )
    finally:
        server.stop()
