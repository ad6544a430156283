"""PostgreSQL faults under a writer load: ``pg_ctl stop -m immediate`` and ``pg_terminate_backend``."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from datacon import NewConversation, PostgresConfig, StorageFactoryConfig, create_storage
from datacon.errors import BackendUnavailableError
from tests.reliability import figures
from tests.reliability._load import WriterLoad
from tests.reliability._pg import FaultablePostgres
from tests.reliability._secrets import find_instances
from tests.servers.postgres import PASSWORD

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

# Short timeouts: a call during an outage must fail fast, never hang.
POOL_TIMEOUT = 2.0
CONNECT_TIMEOUT = 2.0  # libpq's minimum
# The longest a call may take: pool wait + one connect attempt, plus scheduling slack on 2 cores.
BOUND = POOL_TIMEOUT + CONNECT_TIMEOUT + 2.0


@pytest.fixture
def cluster() -> Iterator[FaultablePostgres]:
    server = FaultablePostgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def terminate_datacon_backends(server: FaultablePostgres, wait_ms: int = 0) -> int:
    """``pg_terminate_backend`` every client connection but this one; how many were killed.

    With ``wait_ms``, each call waits (up to that long) until the backend has exited.
    """
    with server.admin() as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid, %s)) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            (wait_ms,),
        ).fetchone()
    return int(row[0])


def test_postgres_killed_and_restarted_loses_no_acknowledged_write(cluster: FaultablePostgres) -> None:
    config = PostgresConfig(
        db_url=cluster.url(), pool_max=8, pool_timeout_secs=POOL_TIMEOUT, connect_timeout_secs=CONNECT_TIMEOUT
    )
    storage = create_storage(StorageFactoryConfig(backend="postgres", postgres=config))
    load = WriterLoad(storage, secrets.token_hex(3), threads=4, bound=BOUND)
    try:
        load.start()
        assert load.wait_for(150, timeout=30), f"the load did not get going: {load.unexpected[:3]}"

        # Fault 1: the whole server dies at once (no shutdown checkpoint) and comes back.
        before_kill = load.count()
        cluster.kill()
        killed_at = time.monotonic()
        # The outage: writers must get BackendUnavailableError within the configured timeouts.
        # (Dead pooled connections are replaced at checkout, so a writer may first wait up to
        # the pool and connect timeouts for a new connection: poll up to BOUND, not a fixed nap.)
        time.sleep(0.5)
        while sum(load.unavailable.values()) == 0 and time.monotonic() - killed_at < BOUND:
            time.sleep(0.05)
        during = sum(load.unavailable.values())
        probe_started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as outage:
            storage.conversations.get_conversation("probe")
        probe_time = time.monotonic() - probe_started
        assert PASSWORD not in str(outage.value)
        restart_issued = time.monotonic()
        cluster.resume()  # returns once the server accepts connections again
        restarted_at = time.monotonic()
        recovery = load.first_ack_after(restarted_at, timeout=60)
        assert recovery is not None, f"the same Storage did not recover: {load.unavailable_messages[-3:]}"
        assert load.wait_for(load.count() + 100, timeout=60)

        # Fault 2: every client connection is terminated under the load.
        before_terminate = load.count()
        terminated = terminate_datacon_backends(cluster)
        terminated_at = time.monotonic()
        terminate_recovery = load.first_ack_after(terminated_at, timeout=60)
        assert terminate_recovery is not None
        assert load.wait_for(load.count() + 100, timeout=60)
    finally:
        load.stop()

    try:
        lost = load.missing(storage)
        partial = load.torn(storage)
        assert load.unexpected == [], f"errors other than BackendUnavailableError: {load.unexpected[:5]}"
        assert load.slow == [], f"calls slower than the configured timeouts allow ({BOUND} s): {load.slow[:5]}"
        assert during > 0, "no write failed while the server was down: the fault was not observed"
        assert probe_time <= BOUND
        assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
        assert partial == [], f"{len(partial)} link_items batches half written, e.g. {partial[:3]}"
        assert all(PASSWORD not in str(exc) for exc in load.errors)
    finally:
        storage.close()
    figures.record(
        "faults[postgres]",
        f"{len(load.acks)} writes acknowledged ({before_kill} before pg_ctl stop -m immediate, {before_terminate} "
        f"before pg_terminate_backend of {terminated} connections), lost 0; {len(load.batches)} link_items batches "
        f"attempted, none half written; {sum(load.unavailable.values())} calls refused with "
        f"{dict(load.unavailable)}; server down {restart_issued - killed_at:.1f} s, back "
        f"{restarted_at - restart_issued:.2f} s after pg_ctl start, first write acknowledged {recovery:.2f} s later; "
        f"{terminate_recovery:.3f} s from pg_terminate_backend to the next acknowledged write; "
        f"{load.conflicts_after_retry} conflicts from retries",
    )


@pytest.fixture(scope="module")
def restarted_cluster() -> Iterator[FaultablePostgres]:
    server = FaultablePostgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _count(server: FaultablePostgres, conversation_id: str) -> int:
    with server.admin() as conn:
        row = conn.execute("SELECT count(*) FROM conversations WHERE id = %s", (conversation_id,)).fetchone()
    return int(row[0])


@pytest.mark.parametrize("first", ["read", "write"])
@pytest.mark.parametrize("fault", ["restart fast", "restart immediate", "pg_terminate_backend"])
def test_first_calls_after_a_restart_succeed(restarted_cluster: FaultablePostgres, fault: str, first: str) -> None:
    """Every pooled connection dies with the server; the calls after it comes back must not fail."""
    from datacon.backends.postgres import PostgresConnector

    server = restarted_cluster
    pool_max = 4
    config = PostgresConfig(
        db_url=server.url(), pool_max=pool_max, pool_timeout_secs=POOL_TIMEOUT, connect_timeout_secs=CONNECT_TIMEOUT
    )
    tag = secrets.token_hex(3)
    with create_storage(StorageFactoryConfig(backend="postgres", postgres=config)) as storage:
        (connector,) = find_instances(storage, PostgresConnector)
        with ExitStack() as stack:  # fill the pool: four idle connections to the old server
            for _ in range(pool_max):
                stack.enter_context(connector.session())
        assert storage.pool_stats()["size"] == pool_max
        storage.conversations.create_conversation(NewConversation(id=f"before-{tag}"))

        if fault == "pg_terminate_backend":
            assert terminate_datacon_backends(server, wait_ms=5000) >= pool_max
        else:
            server.pg_ctl("-m", fault.split()[1], "-w", "stop")
            server.resume()

        calls: list[str] = []
        for n in range(2 * pool_max):  # more calls than dead connections
            if (n % 2 == 0) == (first == "read"):
                assert storage.conversations.get_conversation(f"before-{tag}") is not None
                calls.append("read")
            else:
                storage.conversations.create_conversation(NewConversation(id=f"after-{tag}-{n}"))
                calls.append("write")
        assert calls[0] == first
    # Writes stay exactly-once: each acknowledged create is there once, none was re-sent twice.
    for n in range(2 * pool_max):
        if calls[n] == "write":
            assert _count(server, f"after-{tag}-{n}") == 1
