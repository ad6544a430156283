"""Redis topologies for the tests: a 6-node Redis Cluster and a master + replica + 3 sentinels.

Started once per test run by the session fixtures in ``tests/servers/redis.py``, on free
loopback ports, every node with the test password; the processes are children of the test
run and are stopped at its end. Locally a missing ``redis-server``/``redis-cli`` skips; in
CI it fails (``server_missing``), and a topology that does not come up fails the run.
The fault tests (tests/reliability) kill a master and start it again; ``restart`` waits
until the topology is whole again, so tests that run after them find it usable.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.servers.redis import PASSWORD
from tests.support import free_port, server_missing

#: Sentinel's name for the monitored master.
SERVICE = "dcmaster"
#: How long a node may be silent before the cluster or the sentinels fail it over (ms).
NODE_TIMEOUT_MS = 1000


def redis_cli_executable() -> str:
    found = shutil.which("redis-cli")
    if found is None:
        server_missing("redis-cli is not installed (apt-get install redis-server; it builds the test Redis Cluster)")
    return found


def _wait(check: Any, what: str, timeout: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # the topology is still coming up
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {timeout:g} s (last error: {last!r}; logs in {logs})")


class _Node:
    """One ``redis-server`` process (data node or sentinel) with its own directory."""

    def __init__(self, executable: str, workdir: Path, port: int, args: list[str]) -> None:
        self.executable = executable
        self.workdir = workdir
        self.port = port
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - kept for the process's lifetime
        self.process = subprocess.Popen(
            [self.executable, *self.args], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL (a crash: no shutdown, no last replication)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def client(self, **options: Any) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD, decode_responses=True, **options)


def _data_args(port: int) -> list[str]:
    return [
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", ".",
        "--requirepass", PASSWORD, "--masterauth", PASSWORD,
    ]  # fmt: skip


class RedisClusterTopology:
    """Six ``redis-server`` nodes in cluster mode: three masters, one replica each."""

    def __init__(self, executable: str, cli: str, workdir: Path) -> None:
        self.executable = executable
        self.cli = cli
        self.workdir = workdir
        self.nodes: list[_Node] = []

    @property
    def url(self) -> str:
        return f"redis://:{PASSWORD}@{self.nodes[0].address}/0"

    def _node(self, base: Path, index: int) -> _Node:
        port, bus = free_port(), free_port()
        args = [
            *_data_args(port),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(bus),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-replica-validity-factor", "0",
        ]  # fmt: skip
        return _Node(self.executable, base / f"node{index}", port, args)

    def start(self, timeout: float = 60.0) -> None:
        """Start and join the six nodes; once more on fresh ports should the first try fail
        (a free port can be taken before a node binds it)."""
        try:
            self._start(timeout, self.workdir / "try1")
        except RuntimeError:
            self.stop()
            self._start(timeout, self.workdir / "try2")

    def _start(self, timeout: float, base: Path) -> None:
        self.nodes = [self._node(base, i) for i in range(6)]
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            _wait(
                lambda node=node: node.client(socket_timeout=1).ping(),
                f"cluster node {node.port} answering",
                15,
                self.workdir,
            )
        create = [self.cli, "-a", PASSWORD, "--no-auth-warning", "--cluster", "create"]
        create += [n.address for n in self.nodes] + ["--cluster-replicas", "1", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed: {done.stdout.decode()[-2000:]} {done.stderr.decode()}"
            )
        self.wait_whole(timeout)

    def wait_whole(self, timeout: float = 60.0) -> None:
        """Until every running node reports ``cluster_state:ok``, 3 masters with a replica each."""

        def whole() -> bool:
            for node in self.nodes:
                with node.client(socket_timeout=1) as client:
                    if client.cluster("info")["cluster_state"] != "ok":
                        return False
            masters = self.masters()
            if len(masters) != 3:
                return False
            with self.nodes[0].client(socket_timeout=1) as client:
                lines = str(client.execute_command("CLUSTER", "NODES")).splitlines()
            replicas = [line for line in lines if " slave " in f" {line.split()[2].replace(',', ' ')} "]
            healthy = [line for line in replicas if "fail" not in line.split()[2] and line.split()[7] == "connected"]
            if len(healthy) != 3:
                return False
            # ... and each replica's replication link up (its initial sync done).
            for node in self.nodes:
                if node.process is None:
                    continue
                with node.client(socket_timeout=1) as client:
                    info = client.info("replication")
                    if info["role"] == "slave" and info.get("master_link_status") != "up":
                        return False
            return True

        _wait(whole, "the Redis Cluster reported ok with 3 masters and 3 replicas", timeout, self.workdir)

    def masters(self) -> dict[str, _Node]:
        """Running masters by node address."""
        by_port = {n.port: n for n in self.nodes if n.process is not None}
        found: dict[str, _Node] = {}
        for node in by_port.values():
            with node.client(socket_timeout=1) as client:
                if client.info("replication")["role"] == "master":
                    found[node.address] = node
        return found

    def master_of(self, key: str) -> _Node:
        """The node serving ``key``'s slot now."""
        for node in self.masters().values():
            with node.client(socket_timeout=1) as client:
                slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                if self._serves(client, slot, node):
                    return node
        raise RuntimeError(f"no master serves {key!r}")

    @staticmethod
    def _serves(client: Any, slot: int, node: _Node) -> bool:
        for first, last, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if int(first) <= slot <= int(last):
                return int(master[1]) == node.port
        return False

    def restart(self, node: _Node, timeout: float = 60.0) -> None:
        """Start a killed node again (it rejoins, as a replica of its successor) and wait until whole."""
        node.start()
        _wait(lambda: node.client(socket_timeout=1).ping(), f"cluster node {node.port} answering", 15, self.workdir)
        self.wait_whole(timeout)

    def flush(self) -> None:
        for node in self.masters().values():
            with node.client(socket_timeout=5) as client:
                client.flushdb()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RedisSentinelTopology:
    """A master, one replica and three sentinels monitoring them as ``SERVICE``."""

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir
        self.data: list[_Node] = []
        self.sentinels: list[_Node] = []

    @property
    def url(self) -> str:
        # Only the password and database count: the host is found through the sentinels.
        return f"redis://:{PASSWORD}@127.0.0.1:{self.data[0].port}/0"

    @property
    def sentinel_addresses(self) -> list[str]:
        return [s.address for s in self.sentinels]

    def start(self, timeout: float = 60.0) -> None:
        """Start the five processes; once more on fresh ports should the first try fail."""
        try:
            self._start(timeout, self.workdir / "try1")
        except RuntimeError:
            self.stop()
            self._start(timeout, self.workdir / "try2")

    def _start(self, timeout: float, base: Path) -> None:
        self.data, self.sentinels = [], []
        master_port, replica_port = free_port(), free_port()
        master = _Node(self.executable, base / "master", master_port, _data_args(master_port))
        replica_args = [*_data_args(replica_port), "--replicaof", "127.0.0.1", str(master_port)]
        replica = _Node(self.executable, base / "replica", replica_port, replica_args)
        self.data = [master, replica]
        for node in self.data:
            node.start()
        for node in self.data:
            _wait(
                lambda node=node: node.client(socket_timeout=1).ping(), f"redis {node.port} answering", 15, self.workdir
            )
        for i in range(3):
            port = free_port()
            directory = base / f"sentinel{i}"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "sentinel.conf").write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n"
                f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
                f"sentinel down-after-milliseconds {SERVICE} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            node = _Node(self.executable, directory, port, [str(directory / "sentinel.conf"), "--sentinel"])
            node.start()
            self.sentinels.append(node)
        self.wait_whole(timeout)

    def _sentinel(self, node: _Node) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True, socket_timeout=1)

    def master(self) -> _Node:
        """The data node the sentinels name as master now."""
        with self._sentinel(self.sentinels[0]) as client:
            _host, port = client.sentinel_get_master_addr_by_name(SERVICE)
        return next(n for n in self.data if n.port == int(port))

    def wait_whole(self, timeout: float = 60.0) -> None:
        """Until every sentinel agrees on the master, knows the other two and one healthy replica."""

        def whole() -> bool:
            masters = set()
            for sentinel in self.sentinels:
                with self._sentinel(sentinel) as client:
                    state = client.sentinel_master(SERVICE)
                    if int(state["num-other-sentinels"]) != 2 or int(state["num-slaves"]) < 1:
                        return False
                    if "down" in str(state["flags"]):
                        return False
                    replicas = client.sentinel_slaves(SERVICE)
                    if not any("down" not in str(r["flags"]) and r.get("master-link-status") == "ok" for r in replicas):
                        return False
                    masters.add((state["ip"], int(state["port"])))
            if len(masters) != 1:
                return False
            (_, port) = masters.pop()
            node = next(n for n in self.data if n.port == port)
            with node.client(socket_timeout=1) as client:
                info = client.info("replication")
                return bool(info["role"] == "master" and int(info["connected_slaves"]) >= 1)

        _wait(whole, "the sentinels agreed on a master with a healthy replica", timeout, self.workdir)

    def restart(self, node: _Node, timeout: float = 60.0) -> None:
        """Start a killed data node again (the sentinels make it a replica) and wait until whole."""
        node.start()
        _wait(lambda: node.client(socket_timeout=1).ping(), f"redis {node.port} answering", 15, self.workdir)
        self.wait_whole(timeout)

    def flush(self) -> None:
        with self.master().client(socket_timeout=5) as client:
            client.flushdb()

    def stop(self) -> None:
        for node in self.sentinels + self.data:
            node.stop()
