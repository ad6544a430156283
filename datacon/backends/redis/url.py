"""The Redis URL, read by redis-py's own parser when the storage is created."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

import redis

from datacon.errors import ConfigError

__all__ = ["connection_pool"]

_UNKNOWN = re.compile(r"unexpected keyword argument '([^']+)'")


def _mask(text: str, url: str) -> str:
    try:
        secret = urlsplit(url).password
    except ValueError:
        secret = None
    if secret:
        for form in {secret, unquote(secret)}:
            text = text.replace(form, "****")
    return text


def connection_pool(url: str, field: str = "redis.url", **options: Any) -> redis.BlockingConnectionPool:
    """The pool for ``url``; ``ConfigError`` unless redis-py can build a connection from it.

    redis-py parses the query string only when a pool makes its first connection, so an
    option it does not know (``?sslmode=require``) or cannot convert (``?socket_timeout=abc``)
    would fail the first call with a raw ``TypeError``/``ValueError``. Here the pool and one
    connection object are built (nothing is connected) so that the mistake is found at
    creation. ``options`` are the pool settings datacon passes itself. The message names the
    option, never the password.
    """
    try:
        pool = redis.BlockingConnectionPool.from_url(url, **options)
        pool.connection_class(**pool.connection_kwargs)
        return pool
    except TypeError as exc:
        found = _UNKNOWN.search(str(exc))
        name = found[1] if found else "?"
        reason = f"invalid redis url: unknown option '{_mask(name, url)}' (not a redis-py setting)"
        raise ConfigError(reason, field) from None
    except (ValueError, redis.RedisError) as exc:
        raise ConfigError(f"invalid redis url: {_mask(str(exc), url)}", field) from None
