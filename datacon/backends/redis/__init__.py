"""The ``redis`` backend: records as hashes, links and indexes as sorted sets (redis-py).

Blocking code over a ``redis.BlockingConnectionPool`` of ``pool_max`` connections; every
operation is one round trip, and everything that must be atomic runs as one Lua script
or ``MULTI`` transaction. See ``store`` for the key layout, ``backend`` for export, import and
``datacon migrate`` (``migrate``).
"""

from __future__ import annotations

from datacon.backends.base import Backend
from datacon.config import RedisConfig

from .backend import RedisBackend
from .store import RedisStore

__all__ = ["RedisBackend", "RedisStore", "open_backend"]


def open_backend(config: RedisConfig, *, check_schema: bool = True) -> Backend:
    """The three Redis storages over one pool (connections are opened on first use).

    The usual opening checks the server's persistence settings once (``RedisStore.check_server``);
    ``check_schema=False`` (``datacon migrate``, ``doctor``) skips that. Redis never refuses to
    open for a pending layout migration (see ``migrate``).
    """
    return RedisBackend(config, check_server=check_schema)
