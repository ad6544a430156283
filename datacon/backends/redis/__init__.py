"""The ``redis`` backend: records as hashes, links and indexes as sorted sets (redis-py).

Blocking code over a ``redis.BlockingConnectionPool`` of ``pool_max`` connections; every
operation is one round trip, and everything that must be atomic runs as one Lua script
or ``MULTI`` transaction. See ``store`` for the key layout, ``migrate`` for
``datacon migrate``.
"""

from __future__ import annotations

from datacon.config import RedisConfig
from datacon.storage import Storage

from .migrate import apply_migrations, schema_status
from .store import RedisConversationStorage, RedisItemStorage, RedisResponseStorage, RedisStore

__all__ = ["RedisStore", "apply_migrations", "durability", "open_storage", "schema_status"]


def durability(config: RedisConfig) -> tuple[bool, str]:
    """``(persists every write, what a crash loses)`` for ``datacon doctor`` (one connection)."""
    store = RedisStore(config, check=False)
    try:
        return store.durability()
    finally:
        store.close()


def open_storage(config: RedisConfig) -> Storage:
    """The three Redis storages over one pool (connections are opened on first use)."""
    store = RedisStore(config)
    return Storage(
        RedisResponseStorage(store),
        RedisConversationStorage(store),
        RedisItemStorage(store),
        backend="redis",
        max_concurrency=config.pool_max,
        close=store.close,
        pool_stats=store.pool_stats,
    )
