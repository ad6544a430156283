"""Redis failovers under a writer load: a Redis Cluster master and the Sentinel-managed master SIGKILLed.

Both topologies replicate asynchronously (as Redis does by default), so a write the master
acknowledged in the moment before it died may not have reached the replica that takes over:
the tests count those, and bound them to the writes acknowledged in the last
``LOSS_WINDOW`` seconds before the kill (older writes had long been replicated on
loopback). Nothing may be half written (each atomic write is one script, replicated as one
``MULTI``/``EXEC``), errors during the failover are ``BackendUnavailableError`` only, and the
same ``Storage`` must write again within ``RECOVERY_BOUND`` seconds of the kill. The killed
node is started again and the topology waited for until whole, for the tests that follow.
Figures go to ``figures`` (printed after the run; quoted in docs/scaling.md).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from datacon import RedisConfig, Storage, StorageFactoryConfig, create_storage
from tests.reliability import figures
from tests.reliability._load import Ack, WriterLoad
from tests.servers._redis_topologies import NODE_TIMEOUT_MS
from tests.servers.redis import PASSWORD

pytestmark = [pytest.mark.reliability, pytest.mark.redis]

TIMEOUT = 1.0
BOUND = 3 * TIMEOUT + 2.0
#: Failure detection (NODE_TIMEOUT_MS) plus the election and the client's topology refresh.
RECOVERY_BOUND = 20.0
#: How long the load runs before the kill.
STEADY = 2.0
#: Only writes acknowledged this close to the kill may be missing from the promoted replica.
LOSS_WINDOW = 1.0


def _storage(config: RedisConfig) -> Storage:
    return create_storage(StorageFactoryConfig(backend="redis", redis=config))


def _options() -> dict[str, Any]:
    return {
        "pool_max": 8,
        "retention_days": None,
        "pool_timeout_secs": TIMEOUT,
        "socket_timeout_secs": TIMEOUT,
        "connect_timeout_secs": TIMEOUT,
    }


def _run_failover(storage: Storage, kill: Any, name: str) -> dict[str, Any]:
    """Load ``storage``, call ``kill()`` (returns what it killed), measure; the load's checks."""
    load = WriterLoad(storage, secrets.token_hex(3), threads=4, bound=BOUND)
    try:
        load.start()
        assert load.wait_for(200, timeout=30), f"the load did not get going: {load.unexpected[:3]}"
        time.sleep(STEADY)  # a steady load, replicated as it goes, before the fault
        before = load.count()
        killed = kill()
        killed_at = time.monotonic()
        recovery = load.first_ack_after(killed_at + 0.001, timeout=RECOVERY_BOUND)
        assert recovery is not None, (
            f"no write acknowledged within {RECOVERY_BOUND} s: {load.unavailable_messages[-3:]}"
        )
        # A run of acknowledged writes after the first: the new master takes writes.
        assert load.wait_for(load.count() + 100, timeout=RECOVERY_BOUND), load.unavailable_messages[-3:]
        refused_after = _refused_until(load, killed_at)
    finally:
        load.stop()
    lost = load.missing(storage)
    torn = load.torn(storage)
    assert load.unexpected == [], f"errors other than BackendUnavailableError: {load.unexpected[:5]}"
    assert torn == [], f"{len(torn)} link_items batches half written, e.g. {torn[:3]}"
    assert all(PASSWORD not in str(exc) for exc in load.errors)
    late = [ack for ack in lost if ack.at < killed_at - LOSS_WINDOW]
    assert late == [], f"writes acknowledged more than {LOSS_WINDOW} s before the kill were lost: {late[:3]}"
    assert load.conflicts_after_retry == 0, "a write was re-sent by the driver"
    assert load.slow == [], f"calls slower than the configured timeouts allow ({BOUND} s): {load.slow[:5]}"
    refused = sum(load.unavailable.values())
    outage = refused_after if refused_after is not None else 0.0
    result = {
        "acks": len(load.acks),
        "before": before,
        "lost": len(lost),
        "lost_window": _window(lost, killed_at),
        "refused": refused,
        "errors": dict(load.unavailable),
        "outage": outage,
        "first_ack": recovery,
        "batches": len(load.batches),
        "killed": killed,
    }
    figures.record(
        f"faults[{name}]",
        f"{result['acks']} writes acknowledged ({before} before SIGKILL of the master {killed}); "
        f"{result['lost']} acknowledged writes lost{result['lost_window']}; "
        f"{result['batches']} link_items batches, none half written; {refused} calls refused "
        f"({result['errors']}); writes failed for {outage:.2f} s after the kill "
        f"(failure detection {NODE_TIMEOUT_MS} ms)",
    )
    return result


def _refused_until(load: WriterLoad, killed_at: float) -> float | None:
    """Seconds from the kill to the first steady writing: the first acknowledged write
    followed by nine more within 0.5 s."""
    with load._lock:  # the load's own bookkeeping
        acks = sorted(ack.at for ack in load.acks if ack.at > killed_at)
    if not acks:
        return None
    for i, at in enumerate(acks):
        window = [a for a in acks[i:] if a < at + 0.5]
        if len(window) >= 10:
            return at - killed_at
    return acks[-1] - killed_at


def _window(lost: list[Ack], killed_at: float) -> str:
    if not lost:
        return ""
    first = min(ack.at for ack in lost)
    return f" (all acknowledged in the {killed_at - first:.3f} s before the kill)"


def test_cluster_master_killed_under_load(redis_cluster_backend: Any) -> None:
    topology = redis_cluster_backend.topology
    config = redis_cluster_backend.redis_config(**_options())
    storage = _storage(config)
    victim: list[Any] = []

    def kill() -> str:
        node = topology.master_of("{datacon}:x")  # every key of the default schema is in this slot
        victim.append(node)
        node.kill()
        return f"127.0.0.1:{node.port}"

    try:
        result = _run_failover(storage, kill, "redis-cluster")
        assert result["outage"] < RECOVERY_BOUND
    finally:
        storage.close()
        if victim:
            topology.restart(victim[0])
        redis_cluster_backend.wipe()


def test_sentinel_master_killed_under_load(redis_sentinel_backend: Any) -> None:
    topology = redis_sentinel_backend.topology
    config = redis_sentinel_backend.redis_config(**_options())
    storage = _storage(config)
    victim: list[Any] = []

    def kill() -> str:
        node = topology.master()
        victim.append(node)
        node.kill()
        return f"127.0.0.1:{node.port}"

    try:
        result = _run_failover(storage, kill, "redis-sentinel")
        assert result["outage"] < RECOVERY_BOUND
        # The sentinels named another master, and the storage writes to it.
        assert topology.master() is not victim[0]
    finally:
        storage.close()
        if victim:
            topology.restart(victim[0])
        redis_sentinel_backend.wipe()
