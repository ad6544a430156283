"""PostgreSQL failover under a writer load: the primary killed (``pg_ctl stop -m immediate``),
the streaming standby promoted (``pg_ctl promote``), the same ``Storage`` (a multi-host
``db_url`` with ``target_session_attrs=read-write``) writing again.

Each case has a primary + standby pair of its own (the fault destroys it), with durable
settings (fsync on), replicating synchronously (``synchronous_standby_names = '*'``,
``synchronous_commit = on``: no acknowledged write may be lost) or asynchronously (the loss
is measured and reported, not asserted to be zero).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator

import pytest

from datacon import NewConversation, PostgresConfig, StorageFactoryConfig, create_storage
from datacon.backends.postgres.connector import REPLICA_RETRY_SECS
from datacon.errors import BackendUnavailableError
from tests.reliability import figures
from tests.reliability._load import WriterLoad
from tests.servers._pg_replication import ReplicatedPair
from tests.servers.postgres import PASSWORD, postgres_bindir

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

POOL_TIMEOUT = 2.0
CONNECT_TIMEOUT = 2.0  # libpq's minimum
# The longest one call may take: pool wait + one connect attempt (two hosts), plus slack on 2 cores.
BOUND = POOL_TIMEOUT + 2 * CONNECT_TIMEOUT + 2.0
# From `pg_ctl promote` returning to the first acknowledged write through the same Storage
# (measured: 0.6-1.1 s). With psycopg_pool's default reconnect back-off it was 12 s after a
# 15 s outage (see connector.RECONNECT_SECS).
RECOVERY_BOUND = 4.0
# How long the standby's WAL receiver is stopped just before the primary is killed.
LAG_SECS = 1.0
# Asynchronous replication's normal delay on loopback is milliseconds; a write acknowledged this
# long before the standby's link failed must have reached it.
ASYNC_DELAY = 0.5
# How long the primary stays dead before the standby is promoted, per replication mode.
DOWN = {"sync": 10.0, "async": 3.0}
# How long after the kill a read from the standby may take to come: the standby restarts after
# its WAL receiver is killed, and a replica that failed a read is skipped for
# REPLICA_RETRY_SECS before one read tries it again. (The primary stays down meanwhile.)
READ_BACK_BOUND = REPLICA_RETRY_SECS + BOUND


@pytest.fixture(params=["sync", "async"])
def pair(request: pytest.FixtureRequest) -> Iterator[ReplicatedPair]:
    synchronous = "on" if request.param == "sync" else None
    servers = ReplicatedPair(postgres_bindir(), synchronous=synchronous, durable=True)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


def test_primary_killed_standby_promoted_the_storage_recovers(pair: ReplicatedPair) -> None:
    mode = "async" if pair.primary.synchronous is None else "sync"
    # The standby also serves reads (read_urls): they go on while there is no primary.
    config = PostgresConfig(
        db_url=pair.failover_url(),
        read_urls=[pair.read_url()],
        pool_max=8,
        pool_timeout_secs=POOL_TIMEOUT,
        connect_timeout_secs=CONNECT_TIMEOUT,
    )
    storage = create_storage(StorageFactoryConfig(backend="postgres", postgres=config))
    load = WriterLoad(storage, secrets.token_hex(3), threads=4, bound=BOUND)
    try:
        load.start()
        assert load.wait_for(300, timeout=60), f"the load did not get going: {load.unexpected[:3]}"
        lag_before = pair.replay_lag_bytes()

        # The link to the standby fails for LAG_SECS before the primary dies: its WAL receiver
        # stopped, then killed with what it had not read yet (the standby's postmaster restarts
        # it). Asynchronous commits go on without the standby; synchronous ones wait for it.
        receiver = pair.standby.walreceiver_pid()
        lag_started = time.monotonic()
        os.kill(receiver, signal.SIGSTOP)
        try:
            acked_before_lag = load.count()
            time.sleep(LAG_SECS)
            before_kill = load.count()
            pair.primary.kill()
            killed_at = time.monotonic()
        finally:
            os.kill(receiver, signal.SIGKILL)
        # The outage is observed: writers fail (the standby refuses writes: read-write wanted).
        while sum(load.unavailable.values()) == 0 and time.monotonic() - killed_at < BOUND:
            time.sleep(0.05)
        during = sum(load.unavailable.values())
        with pytest.raises(BackendUnavailableError) as outage:
            storage.conversations.create_conversation(NewConversation())
        assert PASSWORD not in str(outage.value)
        # Reads of what the standby has are served by it meanwhile (once it is back from the
        # restart its WAL receiver's death caused).
        known = next(ack.key[0] for ack in load.acks if ack.kind == "conversation")
        read_back: float | None = None
        attempts = 0
        while read_back is None and time.monotonic() - killed_at < max(DOWN[mode], READ_BACK_BOUND):
            attempts += 1
            try:
                if storage.conversations.get_conversation(known) is not None:
                    read_back = time.monotonic() - killed_at
            except BackendUnavailableError:
                time.sleep(0.05)
        assert read_back is not None, "no read was served by the standby while the primary was down"

        # A failover manager takes a while to decide; the pool must not back off meanwhile.
        time.sleep(max(0.0, DOWN[mode] - (time.monotonic() - killed_at)))
        promote_issued = time.monotonic()
        pair.standby.promote()  # returns once the standby accepts writes
        promoted_at = time.monotonic()
        recovery = load.first_ack_after(promoted_at, timeout=60)
        assert recovery is not None, f"the same Storage did not recover: {load.unavailable_messages[-3:]}"
        assert load.wait_for(load.count() + 200, timeout=60)
    finally:
        load.stop()

    try:
        lost = load.missing(storage)
        partial = load.torn(storage)
        assert load.unexpected == [], f"errors other than BackendUnavailableError: {load.unexpected[:5]}"
        assert load.slow == [], f"calls slower than the configured timeouts allow ({BOUND} s): {load.slow[:5]}"
        assert during > 0, "no write failed while the primary was down: the fault was not observed"
        assert recovery <= RECOVERY_BOUND, f"{recovery:.2f} s from promotion to the first write"
        assert partial == [], f"{len(partial)} link_items batches half written, e.g. {partial[:3]}"
        assert all(PASSWORD not in str(exc) for exc in load.errors)
        if mode == "sync":
            assert lost == [], f"{len(lost)} acknowledged writes lost with synchronous replication: {lost[:3]}"
        else:
            # Asynchronous: what is lost is what the standby had not received, i.e. writes
            # acknowledged while its link was down (or a moment before: replication delay).
            early = [ack for ack in lost if ack.at < lag_started - ASYNC_DELAY]
            assert early == [], f"{len(early)} writes acknowledged before the standby fell behind were lost"
            assert all(ack.at <= killed_at for ack in lost), "a write acknowledged after the failover was lost"
    finally:
        storage.close()
    last = max((ack.at for ack in load.acks if ack.at <= killed_at), default=killed_at)
    window = f" (all acknowledged in the last {killed_at - min(a.at for a in lost):.3f} s)" if lost else ""
    figures.record(
        f"failover[postgres-{mode}]",
        f"reads served by the standby while writes failed ({attempts} attempt(s) to the first, "
        f"{read_back:.2f} s after the kill); "
        f"{len(load.acks)} writes acknowledged ({before_kill} before the primary was killed, "
        f"{before_kill - acked_before_lag} of them in the {LAG_SECS:g} s the standby was stopped), "
        f"{len(lost)} lost{window}; "
        f"replay lag {lag_before} bytes a moment before the kill; primary down "
        f"{promote_issued - killed_at:.1f} s before promotion, pg_ctl promote took "
        f"{promoted_at - promote_issued:.2f} s, "
        f"first write acknowledged {recovery:.2f} s after it (bound {RECOVERY_BOUND:g} s); "
        f"{sum(load.unavailable.values())} calls refused ({dict(load.unavailable)}); last ack before kill "
        f"{killed_at - last:.3f} s before it; {len(load.batches)} link_items batches, none half written",
    )
