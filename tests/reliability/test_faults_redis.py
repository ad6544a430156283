"""Redis faults under a writer load: SHUTDOWN NOSAVE (AOF, appendfsync always) and CLIENT KILL."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from datacon import RedisConfig, StorageFactoryConfig, create_storage
from datacon.errors import BackendUnavailableError
from tests.reliability import figures
from tests.reliability._load import WriterLoad
from tests.servers.redis import PASSWORD, RedisServer, redis_executable

pytestmark = [pytest.mark.reliability, pytest.mark.redis]

# Short timeouts: a call during an outage must fail fast, never hang.
TIMEOUT = 1.0
# The longest a call may take: pool wait + connect + socket read, plus scheduling slack on 2 cores.
BOUND = 3 * TIMEOUT + 2.0


def admin(server: RedisServer):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis(host="127.0.0.1", port=server.port, password=server.password, socket_timeout=5)


def test_redis_killed_and_restarted_loses_no_acknowledged_write(tmp_path: Path) -> None:
    server = RedisServer(redis_executable(), tmp_path, extra_args=("--appendonly", "yes", "--appendfsync", "always"))
    server.start()
    config = RedisConfig(
        url=server.url,
        pool_max=8,
        retention_days=None,
        pool_timeout_secs=TIMEOUT,
        socket_timeout_secs=TIMEOUT,
        connect_timeout_secs=TIMEOUT,
    )
    storage = create_storage(StorageFactoryConfig(backend="redis", redis=config))
    load = WriterLoad(storage, secrets.token_hex(3), threads=4, bound=BOUND)
    try:
        load.start()
        assert load.wait_for(150, timeout=30), f"the load did not get going: {load.unexpected[:3]}"

        # Fault 1: the server dies without saving; only the AOF (fsynced on every write) survives.
        before_kill = load.count()
        with admin(server) as client:
            client.shutdown(nosave=True)
        assert server.process is not None
        server.process.wait(timeout=10)
        killed_at = time.monotonic()
        time.sleep(1.5)  # the outage: writers must get BackendUnavailableError, quickly
        during = sum(load.unavailable.values())
        with pytest.raises(BackendUnavailableError) as outage:
            storage.conversations.get_conversation("probe")
        assert PASSWORD not in str(outage.value)
        restart_issued = time.monotonic()
        server.start(port=server.port)  # returns once the server accepts connections again
        restarted_at = time.monotonic()
        recovery = load.first_ack_after(restarted_at, timeout=30)
        assert recovery is not None, f"the same Storage did not recover: {load.unavailable_messages[-3:]}"
        assert load.wait_for(load.count() + 100, timeout=30)

        # Fault 2: every client connection is killed under the load.
        before_client_kill = load.count()
        with admin(server) as client:
            killed = client.client_kill_filter(_type="normal", skipme=True)
        killed_clients_at = time.monotonic()
        client_recovery = load.first_ack_after(killed_clients_at, timeout=30)
        assert client_recovery is not None
        assert load.wait_for(load.count() + 100, timeout=30)
    finally:
        load.stop()

    try:
        lost = load.missing(storage)
        partial = load.torn(storage)
        assert load.unexpected == [], f"errors other than BackendUnavailableError: {load.unexpected[:5]}"
        assert load.slow == [], f"calls slower than the configured timeouts allow ({BOUND} s): {load.slow[:5]}"
        assert during > 0, "no write failed while the server was down: the fault was not observed"
        assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
        assert partial == [], f"{len(partial)} link_items batches half written, e.g. {partial[:3]}"
        assert all(PASSWORD not in str(exc) for exc in load.errors)
    finally:
        storage.close()
        server.stop()
    figures.record(
        "faults[redis]",
        f"{len(load.acks)} writes acknowledged ({before_kill} before SHUTDOWN NOSAVE, {before_client_kill} before "
        f"CLIENT KILL of {killed} connections), lost 0; {len(load.batches)} link_items batches attempted, none half "
        f"written; {sum(load.unavailable.values())} calls refused with {dict(load.unavailable)}; "
        f"server down {restart_issued - killed_at:.1f} s, back "
        f"{restarted_at - restart_issued:.2f} s after redis-server was started, "
        f"first write acknowledged {recovery:.3f} s later; {client_recovery:.3f} s from CLIENT KILL to the next "
        f"acknowledged write; {load.conflicts_after_retry} conflicts from driver retries",
    )
