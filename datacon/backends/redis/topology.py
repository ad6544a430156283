"""How the Redis backend reaches its server: one URL, a Redis Cluster, or a master found through Sentinel.

``open_client`` builds the client the store uses for all three; the rest of the backend does
not care which, except that in a cluster every key of one schema carries one hash tag
(``keys.Keys``) so each script and transaction runs on the one master serving that slot.

- **One server**: a ``BlockingConnectionPool`` from the URL (as before).
- **Cluster**: redis-py's ``RedisCluster`` started from the URL's node; one blocking pool of
  ``pool_max`` per node. It learns the slot map when created (so an unreachable cluster is
  reported then) and again after a connection error or a ``MOVED`` reply; like the single
  server, a command that fails is not re-sent (``Retry(NoBackoff(), 0)``): a write whose
  connection dropped has an unknown outcome, and re-sending a create would report a conflict
  with itself.
- **Sentinel**: ``redis.sentinel.Sentinel`` over the ``sentinels`` addresses; the pool is a
  blocking sentinel-managed pool, whose connections ask the sentinels for the master of
  ``sentinel_service`` when they connect, and drop and re-ask when the server they reach
  answers as a replica (after a failover). The URL gives the password, user, TLS and
  database; its host is not used. Sentinels are asked without a password (``sentinel_kwargs``
  carry only the timeouts, and with a ``rediss://`` URL its TLS settings).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

from datacon.config import RedisConfig, sentinel_address

from .url import connection_pool

__all__ = ["Topology", "open_client"]


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """A sentinel-managed pool that waits ``timeout`` for a free connection (like the plain one)."""


class Topology:
    """The client and what the store asks of its pools: address, sizes, close."""

    def __init__(self, kind: str, client: Any, pool: Any, password: str | None) -> None:
        self.kind = kind  # "server", "cluster" or "sentinel"
        self.client = client
        self.pool = pool  # None for a cluster (one pool per node)
        self.password = password

    def pools(self) -> list[Any]:
        if self.kind != "cluster":
            return [self.pool]
        nodes = self.client.get_nodes()
        return [n.redis_connection.connection_pool for n in nodes if n.redis_connection is not None]

    def address(self) -> str:
        """Where the server is, without credentials."""
        if self.kind == "cluster":
            return "cluster " + ",".join(sorted(n.name for n in self.client.get_primaries()))
        kwargs = self.pool.connection_kwargs
        if self.kind == "sentinel":
            master = self.pool.master_address
            at = f"{master[0]}:{master[1]}" if master else "not yet discovered"
            return f"sentinel service {self.pool.service_name} (master {at})/{kwargs.get('db', 0)}"
        if "path" in kwargs:
            return str(kwargs["path"])
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"

    def close(self) -> None:
        if self.kind == "cluster":
            self.client.close()
        else:
            self.pool.disconnect()


def open_client(config: RedisConfig) -> Topology:
    """datacon's own client for ``config`` (not for an application's ``client``)."""
    options: dict[str, Any] = {
        "max_connections": config.pool_max,
        "timeout": config.pool_timeout_secs,
        "socket_timeout": config.socket_timeout_secs,
        "socket_connect_timeout": config.connect_timeout_secs,
        "decode_responses": True,
    }
    # hiredis, when installed, is picked up by redis-py as its reply parser. The URL's options
    # are checked now (ConfigError), not at first use.
    pool = connection_pool(config.url, **options)
    password = pool.connection_kwargs.get("password")
    secret = str(password) if password else None
    if config.cluster:
        cluster = redis.RedisCluster.from_url(
            config.url,
            connection_pool_class=redis.BlockingConnectionPool,
            retry=Retry(NoBackoff(), 0),
            **options,
        )
        return Topology("cluster", cluster, None, secret)
    if config.sentinels:
        kwargs = dict(pool.connection_kwargs)
        for name in ("host", "port", "path"):
            kwargs.pop(name, None)
        tls = issubclass(pool.connection_class, redis.SSLConnection)
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": config.socket_timeout_secs,
            "socket_connect_timeout": config.connect_timeout_secs,
            # redis-py's clients of the sentinels would otherwise retry 3 times with a
            # backoff of seconds: a sentinel that cannot be asked is passed over at once.
            "retry": Retry(NoBackoff(), 0),
        }
        if tls:
            # The sentinels are asked over TLS too, trusting what the URL trusts (its ssl_*
            # options: CA, verification, client certificate).
            sentinel_kwargs["ssl"] = True
            sentinel_kwargs.update({k: v for k, v in kwargs.items() if k.startswith("ssl_")})
        addresses = [sentinel_address(entry) for entry in config.sentinels]
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [a for a in addresses if a is not None], sentinel_kwargs=sentinel_kwargs
        )
        managed = _BlockingSentinelPool(  # type: ignore[no-untyped-call]
            config.sentinel_service,
            sentinel,
            connection_class=SentinelManagedSSLConnection if tls else SentinelManagedConnection,
            max_connections=config.pool_max,
            timeout=config.pool_timeout_secs,
            **kwargs,
        )
        return Topology("sentinel", redis.Redis(connection_pool=managed), managed, secret)
    return Topology("server", redis.Redis(connection_pool=pool), pool, secret)
