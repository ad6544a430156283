"""Backend choice and per-backend configuration, with upstream's validation rules.

Validation runs when the factory builds a backend (``create_storage``), or when you call
``validate()``. No ``repr``, ``str``, log line or error shows a password.
"""

from __future__ import annotations

import enum
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import SplitResult, urlsplit

import attrs
from cattrs.errors import BaseValidationError, ClassValidationError
from cattrs.v import transform_error

from datacon._serde import converter
from datacon.errors import ConfigError
from datacon.schema import SchemaConfig

if TYPE_CHECKING:
    from datacon.hooks import StorageHook

__all__ = [
    "HistoryBackend",
    "OracleConfig",
    "PostgresConfig",
    "RedisConfig",
    "SqliteConfig",
    "StorageFactoryConfig",
    "expand_env",
    "load_config",
    "redact_conninfo",
    "redact_url",
]


class HistoryBackend(enum.StrEnum):
    """Which backend stores the data. ``MEMORY`` is the default."""

    MEMORY = "memory"
    NONE = "none"
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    REDIS = "redis"
    ORACLE = "oracle"


# libpq also takes the password from a ``password`` query parameter.
_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&#]*")


def redact_url(url: str) -> str:
    """``url`` with any password (in the authority or a ``password`` query parameter) replaced
    by ``****``; ``<redacted>`` if it cannot be parsed."""
    try:
        parts = urlsplit(url)
        if parts.query and "password=" in parts.query:
            parts = parts._replace(query=_QUERY_PASSWORD.sub(r"\1****", parts.query))
        if parts.password is None:
            return parts.geturl()
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=f"{user}:****@{host}").geturl()
    except ValueError:
        return "<redacted>"


_DESCRIPTOR_PASSWORD = re.compile(r"^([^/@\s]+)/([^@]*)@")


def _redact_descriptor(value: str) -> str:
    # Oracle accepts "user/password@dsn" easy-connect strings; mask the password part.
    value = _DESCRIPTOR_PASSWORD.sub(r"\1/****@", value)
    return redact_url(value) if "://" in value else value


# libpq's key=value form: a password value, bare or single-quoted (with \' and \\ escapes).
_CONNINFO_SECRET = re.compile(r"(?<![\w.-])((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def redact_conninfo(value: str) -> str:
    """A libpq connection string (``postgresql://`` URL or ``key=value`` pairs) with every
    ``password``/``sslpassword`` replaced by ``****``."""
    if _URL_SCHEME.match(value):
        masked = redact_url(value)
        # libpq also reads passwords from the query string (password=, sslpassword=).
        return re.sub(r"([?&](?:ssl)?password=)[^&#]*", r"\1****", masked)
    return _CONNINFO_SECRET.sub(r"\1****", value)


def _libpq_reason(message: str, conninfo: str) -> str:
    """libpq's parse error without the fragments it quotes from the string (they may be part
    of a password), except a fragment the string uses as a parameter name (``"foo"=``)."""
    first = message.strip().splitlines()[0] if message.strip() else "cannot be parsed"

    def keep_names(match: re.Match[str]) -> str:
        fragment = match[1]
        is_name = re.fullmatch(r"[a-z_]+", fragment) is not None and f"{fragment}=" in conninfo
        return f'"{fragment}"' if is_name or fragment == "=" else '"…"'

    return re.sub(r'"([^"]*)"', keep_names, first)


#: libpq's values of ``target_session_attrs`` (``read-write`` picks the primary of a multi-host URL).
_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")


def _check_libpq(conninfo: str, field: str, kind: str = "db_url") -> None:
    """Parse ``conninfo`` with libpq's own parser (when psycopg is installed) and check its ports."""
    url = _URL_SCHEME.match(conninfo)
    if url is not None and url[1] not in ("postgres", "postgresql"):
        raise ConfigError(f"unsupported URL scheme: {url[1]}", field)
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # the backend reports the missing driver when it is opened
        if url is None and "=" not in conninfo:
            raise ConfigError(f"invalid {kind}: neither a postgresql:// URL nor key=value pairs", field) from None
        return
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise ConfigError(f"invalid {kind}: {_libpq_reason(str(exc), conninfo)}", field) from None
    for port in str(params.get("port") or "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"invalid {kind}: invalid port", field)
    # libpq checks this one only when it connects (after the pool's connect timeout).
    attrs_ = params.get("target_session_attrs")
    if attrs_ is not None and attrs_ not in _SESSION_ATTRS:
        raise ConfigError(f"invalid {kind}: target_session_attrs must be one of {', '.join(_SESSION_ATTRS)}", field)


def _parse_url(url: str, field: str, kind: str, schemes: tuple[str, ...]) -> SplitResult:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{kind} should not be empty", field)
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        # The parser's text may quote the URL; say what is wrong without it.
        reason = "invalid port" if "port" in str(exc).lower() else "malformed URL"
        raise ConfigError(f"invalid {kind}: {reason}", field) from None
    if not parts.scheme:
        raise ConfigError(f"invalid {kind}: relative URL without a base", field)
    if parts.scheme not in schemes:
        raise ConfigError(f"unsupported URL scheme: {parts.scheme}", field)
    if not parts.hostname:
        raise ConfigError(f"{kind} must have a host", field)
    return parts


def _redact_conninfos(value: object) -> str:
    # read_urls: each one as redact_conninfo shows it (anything else by its type only).
    if isinstance(value, (list, tuple)):
        return repr([redact_conninfo(url) if isinstance(url, str) else f"<{type(url).__name__}>" for url in value])
    return f"<{type(value).__name__}>"


def _object_repr(value: object) -> str:
    # An application's pool or client: its type only (its repr may show a connection string).
    return "None" if value is None else f"<{type(value).__name__}>"


def _check_pool_max(value: int, field: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError("pool_max must be greater than 0", field)


def _check_positive(value: float, field: str, name: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be greater than 0", field)


def _validate_schema(schema: SchemaConfig | None, section: str) -> None:
    if schema is None:
        return
    try:
        schema.validate()
    except ConfigError as exc:
        raise ConfigError(exc.reason, f"{section}.schema") from None


@attrs.define(frozen=True)
class PostgresConfig:
    """PostgreSQL: ``db_url`` like ``postgres://user:pass@host:5432/db``; a pool of ``pool_max``.

    ``db_url`` is anything libpq accepts: a ``postgresql://``/``postgres://`` URL (several
    ``host:port`` pairs, ``?host=/run/postgresql`` for a unix socket) or ``key=value`` pairs
    (``host=db dbname=chat user=app``); what it leaves out comes from libpq's ``PG*``
    environment variables and defaults. Passwords are masked in every ``repr`` and message.

    TLS settings (``sslmode``, ``sslrootcert``...) go in the URL's query string and pass
    through to libpq unchanged.

    ``pool`` (code only) is an application's own open ``psycopg_pool.ConnectionPool``, used
    instead of ``db_url`` and the pool settings; datacon borrows its connections (setting
    autocommit while it holds one) and never closes it.
    """

    db_url: str = attrs.field(default="", repr=redact_conninfo)
    pool_max: int = 16
    schema: SchemaConfig | None = None
    pool_timeout_secs: float = 30.0
    connect_timeout_secs: float = 10.0
    #: How long one statement may wait for the server's answer before the connection is
    #: dropped and ``BackendUnavailableError`` raised (libpq itself never gives up on a
    #: server that stopped answering). ``None`` waits forever.
    read_timeout_secs: float | None = 60.0
    #: Set behind a transaction-mode pooler (PgBouncer ``pool_mode = transaction``): no
    #: prepared statements (psycopg ``prepare_threshold=None``), no session-level state, and
    #: migrations lock with a transaction-scoped advisory lock.
    transaction_pooling: bool = False
    #: Connections the pool keeps open even when idle (0 to ``pool_max``).
    pool_min: int = 1
    #: An idle connection above ``pool_min`` is closed after this long.
    max_idle_secs: float = 600.0
    #: Every connection is replaced after this long (picks up new server settings, spreads
    #: reconnects over time; a connection in use is replaced when it comes back).
    max_lifetime_secs: float = 3600.0
    #: Check each connection with a round trip (``SELECT 1``) when it is taken from the pool,
    #: so one the network silently dropped is replaced before use (costs that round trip).
    check_connection: bool = False
    pool: Any = attrs.field(default=None, repr=_object_repr)
    #: Read replicas (libpq URLs like ``db_url``): gets, lists, pages and chains go to one of
    #: them (round robin), each through its own pool of ``pool_max`` connections; writes, schema
    #: checks and migrations go to ``db_url``. In a ``request_context``, reads after a write
    #: through the same storage go to ``db_url`` (they see it). A replica that cannot be reached
    #: is skipped for a while (``db_url`` serves). Left out of the hash (a list is unhashable).
    read_urls: list[str] = attrs.field(factory=list, repr=_redact_conninfos, hash=False)

    def validate(self) -> None:
        """``db_url`` as libpq reads it (or ``pool``), ``read_urls`` likewise, pool sizes and
        timeouts, the schema."""
        _check_read_urls(self)
        if self.pool is not None:
            _check_given_pool(self)
            _validate_schema(self.schema, "postgres")
            return
        if not isinstance(self.db_url, str) or not self.db_url.strip():
            raise ConfigError("db_url should not be empty", "postgres.db_url")
        # Whatever libpq accepts: a URL (multi-host, ?host=/socket, parts left to PG* variables)
        # or key=value pairs; libpq's parser decides.
        _check_libpq(self.db_url.strip(), "postgres.db_url")
        _check_pool_max(self.pool_max, "postgres.pool_max")
        _check_positive(self.pool_timeout_secs, "postgres.pool_timeout_secs", "pool_timeout_secs")
        _check_positive(self.connect_timeout_secs, "postgres.connect_timeout_secs", "connect_timeout_secs")
        if self.read_timeout_secs is not None:
            _check_positive(self.read_timeout_secs, "postgres.read_timeout_secs", "read_timeout_secs")
        if not isinstance(self.transaction_pooling, bool):
            raise ConfigError("transaction_pooling must be true or false", "postgres.transaction_pooling")
        pool_min = self.pool_min
        if not isinstance(pool_min, int) or isinstance(pool_min, bool) or pool_min < 0 or pool_min > self.pool_max:
            raise ConfigError("pool_min must be between 0 and pool_max", "postgres.pool_min")
        _check_positive(self.max_idle_secs, "postgres.max_idle_secs", "max_idle_secs")
        _check_positive(self.max_lifetime_secs, "postgres.max_lifetime_secs", "max_lifetime_secs")
        if not isinstance(self.check_connection, bool):
            raise ConfigError("check_connection must be true or false", "postgres.check_connection")
        _validate_schema(self.schema, "postgres")


def sentinel_address(entry: object) -> tuple[str, int] | None:
    """``("host", port)`` of a ``"host:port"`` sentinel entry (``[v6]:port`` too), else ``None``."""
    if not isinstance(entry, str):
        return None
    host, separator, port = entry.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def _check_topology(config: RedisConfig) -> None:
    if not isinstance(config.cluster, bool):
        raise ConfigError("cluster must be true or false", "redis.cluster")
    if not isinstance(config.sentinel_service, str):
        raise ConfigError("sentinel_service must be a string", "redis.sentinel_service")
    if config.cluster:
        if config.client is not None:
            raise ConfigError(
                "cluster makes datacon's own cluster client: give cluster or client, not both", "redis.cluster"
            )
        if config.wait_replicas or config.wait_aof:
            # WAIT/WAITAOF name no key, so a cluster pipeline cannot send them to the master
            # that took the write.
            raise ConfigError("wait_replicas and wait_aof are not supported with cluster", "redis.cluster")
        if isinstance(config.url, str) and config.url.strip().lower().startswith("unix://"):
            raise ConfigError("cluster needs a redis:// or rediss:// url naming one of its nodes", "redis.url")
        try:
            path = urlsplit(config.url.strip()).path if isinstance(config.url, str) else ""
        except ValueError:
            path = ""
        if path.strip("/") not in ("", "0"):
            raise ConfigError("a Redis Cluster has only database 0 (drop the /N from the url)", "redis.url")
    if config.sentinels is None:
        if config.sentinel_service:
            raise ConfigError("sentinel_service is set but sentinels is not", "redis.sentinels")
        return
    if not isinstance(config.sentinels, list | tuple) or not config.sentinels:
        raise ConfigError('sentinels must be a non-empty list of "host:port"', "redis.sentinels")
    for n, entry in enumerate(config.sentinels):
        if sentinel_address(entry) is None:
            raise ConfigError(f'sentinels[{n}] is not "host:port"', "redis.sentinels")
    if not config.sentinel_service.strip():
        raise ConfigError(
            "sentinel_service is required with sentinels (the monitored master's name)", "redis.sentinel_service"
        )
    if config.cluster:
        raise ConfigError("give cluster or sentinels, not both", "redis.sentinels")
    if config.client is not None:
        raise ConfigError(
            "sentinels find datacon's own connections: give sentinels or client, not both", "redis.sentinels"
        )


def _check_given_client(config: RedisConfig) -> None:
    try:
        import redis
    except ImportError:
        redis = None  # type: ignore[assignment]
    if redis is None or not isinstance(config.client, redis.Redis):
        raise ConfigError(
            f"client must be a redis.Redis (passed in code), got {type(config.client).__name__}", "redis.client"
        )
    if config.url:
        raise ConfigError("give url or client, not both", "redis.client")
    if not config.client.connection_pool.connection_kwargs.get("decode_responses"):
        raise ConfigError("the client must be made with decode_responses=True", "redis.client")


def _check_read_urls(config: PostgresConfig) -> None:
    urls = config.read_urls
    if not isinstance(urls, (list, tuple)):
        raise ConfigError(f"read_urls must be a list of URLs, got {type(urls).__name__}", "postgres.read_urls")
    if urls and config.pool is not None:
        raise ConfigError("read_urls need db_url: they cannot be used with pool", "postgres.read_urls")
    for n, url in enumerate(urls):
        field = f"postgres.read_urls[{n}]"
        if not isinstance(url, str) or not url.strip():
            raise ConfigError("a read URL should be a non-empty string", field)
        _check_libpq(url.strip(), field, "read URL")


def _check_given_pool(config: PostgresConfig) -> None:
    try:
        import psycopg_pool
    except ImportError:
        psycopg_pool = None  # type: ignore[assignment]
    if psycopg_pool is None or not isinstance(config.pool, psycopg_pool.ConnectionPool):
        raise ConfigError(
            f"pool must be a psycopg_pool.ConnectionPool (passed in code), got {type(config.pool).__name__}",
            "postgres.pool",
        )
    if config.db_url:
        raise ConfigError("give db_url or pool, not both", "postgres.pool")
    if config.pool.closed:
        raise ConfigError("the pool is not open: open it (pool.open()) before passing it", "postgres.pool")


@attrs.define(frozen=True)
class RedisConfig:
    """Redis: ``url`` like ``redis://:pass@host:6379/0`` (``rediss://`` for TLS,
    ``unix://:pass@/run/redis.sock?db=0`` for a unix socket).

    ``retention_days`` sets a TTL on every record (``None``: never expire).

    Durability (docs/backends.md): Redis acknowledges a write once it is in the server's
    memory. ``wait_replicas=N`` makes every write also wait (``WAIT``) until ``N`` replicas
    have it; ``wait_aof=True`` until the server's append-only file is fsynced to disk
    (``WAITAOF``, Redis 7.2 or later; with ``wait_replicas`` the replicas' files too). Either
    waits at most ``wait_timeout_ms``; a write not confirmed by then raises
    ``BackendUnavailableError`` (it was applied on the primary, its durability is unknown).

    Topologies (docs/backends.md, Redis Cluster and Sentinel): ``cluster=True`` when ``url``
    names any node of a Redis Cluster (every key of one schema shares one hash tag, so every
    operation stays atomic); ``sentinels=["host:port", ...]`` with ``sentinel_service`` to find
    the master through Sentinel and follow it across failovers (``url`` then gives only the
    password, TLS and database number).
    """

    url: str = attrs.field(default="", repr=redact_url)
    pool_max: int = 16
    retention_days: int | None = 30
    schema: SchemaConfig | None = None
    pool_timeout_secs: float = 30.0
    socket_timeout_secs: float = 10.0
    connect_timeout_secs: float = 10.0
    wait_replicas: int = 0
    wait_aof: bool = False
    wait_timeout_ms: int = 1000
    #: Code only: the application's own ``redis.Redis`` (made with ``decode_responses=True``),
    #: used instead of ``url`` and the pool settings; datacon never closes it or its pool.
    client: Any = attrs.field(default=None, repr=_object_repr)
    cluster: bool = False
    #: Left out of the hash (a list is unhashable), so the config stays hashable.
    sentinels: list[str] | None = attrs.field(default=None, hash=False)
    sentinel_service: str = ""

    def validate(self) -> None:
        """Upstream's rules: URL scheme, host, ``pool_max > 0``; plus ``retention_days > 0``,
        the timeouts and wait settings, the topology settings, and the URL's options as
        redis-py reads them."""
        _check_topology(self)
        if self.client is not None:
            _check_given_client(self)
        elif isinstance(self.url, str) and self.url.strip().lower().startswith("unix://"):
            # redis-py's unix socket form: unix://[[user]:[password]@]/path/to/redis.sock[?db=N]
            try:
                path = urlsplit(self.url.strip()).path
            except ValueError:
                path = ""
            if not path:
                raise ConfigError("a unix:// redis url must name the socket's path", "redis.url")
        else:
            _parse_url(self.url, "redis.url", "redis url", ("redis", "rediss"))
        _check_pool_max(self.pool_max, "redis.pool_max")
        if self.retention_days is not None and (
            not isinstance(self.retention_days, int)
            or isinstance(self.retention_days, bool)
            or self.retention_days <= 0
        ):
            # Deliberate: upstream would EXPIRE 0, deleting every record as it is written.
            raise ConfigError("retention_days must be greater than 0, or null for no expiry", "redis.retention_days")
        _check_positive(self.pool_timeout_secs, "redis.pool_timeout_secs", "pool_timeout_secs")
        _check_positive(self.socket_timeout_secs, "redis.socket_timeout_secs", "socket_timeout_secs")
        _check_positive(self.connect_timeout_secs, "redis.connect_timeout_secs", "connect_timeout_secs")
        if not isinstance(self.wait_replicas, int) or isinstance(self.wait_replicas, bool) or self.wait_replicas < 0:
            raise ConfigError("wait_replicas must be 0 or more", "redis.wait_replicas")
        if not isinstance(self.wait_aof, bool):
            raise ConfigError("wait_aof must be true or false", "redis.wait_aof")
        if (
            not isinstance(self.wait_timeout_ms, int)
            or isinstance(self.wait_timeout_ms, bool)
            or self.wait_timeout_ms <= 0
        ):
            raise ConfigError("wait_timeout_ms must be greater than 0", "redis.wait_timeout_ms")
        _validate_schema(self.schema, "redis")
        if self.client is not None:
            return  # the application's client: no URL of datacon's to check
        try:
            from datacon.backends.redis.url import connection_pool
        except ImportError:
            return  # without redis-py, create_storage names the extra to install
        connection_pool(self.url, "redis.url")


@attrs.define(frozen=True)
class OracleConfig:
    """Oracle (python-oracledb thin mode). ``password`` is never shown in a repr or an error."""

    connect_descriptor: str = attrs.field(repr=_redact_descriptor)
    username: str = ""
    password: str = attrs.field(default="", repr=False)
    wallet_path: str | None = None
    external_auth: bool = False
    pool_min: int = 1
    pool_max: int = 16
    pool_timeout_secs: int = 30
    schema: SchemaConfig | None = None

    def validate(self) -> None:
        """Descriptor, credentials, pool sizes and the wallet directory."""
        if not isinstance(self.connect_descriptor, str) or not self.connect_descriptor.strip():
            raise ConfigError("connect_descriptor should not be empty", "oracle.connect_descriptor")
        if not self.external_auth and not self.username:
            raise ConfigError("username is required unless external_auth is true", "oracle.username")
        _check_pool_max(self.pool_max, "oracle.pool_max")
        if not isinstance(self.pool_min, int) or self.pool_min < 0 or self.pool_min > self.pool_max:
            raise ConfigError("pool_min must be between 0 and pool_max", "oracle.pool_min")
        if not isinstance(self.pool_timeout_secs, int) or self.pool_timeout_secs < 0:
            raise ConfigError("pool_timeout_secs must be 0 or more", "oracle.pool_timeout_secs")
        if self.wallet_path is not None:
            path = Path(self.wallet_path)
            if not path.is_dir():
                raise ConfigError(f"Oracle wallet path '{self.wallet_path}' is not a directory", "oracle.wallet_path")
            if not (path / "tnsnames.ora").exists() and not (path / "sqlnet.ora").exists():
                raise ConfigError(
                    f"Oracle wallet path '{self.wallet_path}' is missing tnsnames.ora or sqlnet.ora",
                    "oracle.wallet_path",
                )
        _validate_schema(self.schema, "oracle")


@attrs.define(frozen=True)
class SqliteConfig:
    """SQLite: a database file (created if missing), or ``":memory:"``.

    ``pool_max`` connections serve concurrent threads (WAL lets readers run beside the
    single writer); ``busy_timeout_secs`` is how long a writer waits for the lock.
    """

    path: str = attrs.field(converter=os.fspath)
    schema: SchemaConfig | None = None
    pool_max: int = 8
    busy_timeout_secs: float = 30.0

    def validate(self) -> None:
        """A non-empty path, ``pool_max > 0`` and a positive busy timeout."""
        if not isinstance(self.path, str) or not self.path.strip():
            raise ConfigError("sqlite path should not be empty", "sqlite.path")
        _check_pool_max(self.pool_max, "sqlite.pool_max")
        _check_positive(self.busy_timeout_secs, "sqlite.busy_timeout_secs", "busy_timeout_secs")
        _validate_schema(self.schema, "sqlite")


_SECTIONS: dict[str, type[Any]] = {
    "postgres": PostgresConfig,
    "redis": RedisConfig,
    "oracle": OracleConfig,
    "sqlite": SqliteConfig,
}

T = TypeVar("T")


def _structure(cls: type[T], data: Any, section: str) -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping, got {type(data).__name__}", section)
    try:
        return converter.structure(dict(data), cls)
    except ConfigError:
        raise
    except (ClassValidationError, BaseValidationError) as exc:
        # transform_error gives "<problem> @ $.path"; values (and so secrets) are not echoed.
        messages = transform_error(exc, path=section)
        problem, _, where = messages[0].rpartition(" @ ")
        raise ConfigError(problem or messages[0], where or section) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid configuration ({type(exc).__name__})", section) from None


def _check_slow_secs(_instance: object, _attribute: object, value: float | None) -> None:
    if value is not None:
        _check_positive(value, "slow_operation_secs", "slow_operation_secs")


#: The longest ``idempotency_ttl_secs`` accepted: ten years (kept far inside every backend's
#: timestamp and ``PX`` range).
IDEMPOTENCY_TTL_MAX = 10 * 365 * 86_400


def _check_idempotency_ttl(_instance: object, _attribute: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= IDEMPOTENCY_TTL_MAX:
        raise ConfigError(
            f"idempotency_ttl_secs must be a whole number of seconds from 1 to {IDEMPOTENCY_TTL_MAX}",
            "idempotency_ttl_secs",
        )


#: URL schemes of ``StorageFactoryConfig.from_url``.
_URL_SCHEMES: dict[str, HistoryBackend] = {
    "memory": HistoryBackend.MEMORY,
    "none": HistoryBackend.NONE,
    "sqlite": HistoryBackend.SQLITE,
    "postgresql": HistoryBackend.POSTGRES,
    "postgres": HistoryBackend.POSTGRES,
    "redis": HistoryBackend.REDIS,
    "rediss": HistoryBackend.REDIS,
    "unix": HistoryBackend.REDIS,
}


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,19}")


def _sqlite_path(rest: str) -> str:
    """The database path of a ``sqlite://`` URL (``rest`` is what follows ``sqlite://``)."""
    if "?" in rest or "#" in rest:
        raise ConfigError("SQLite URLs take no query options", "url")
    if rest == ":memory:":
        return rest
    if not rest.startswith("/"):
        raise ConfigError(
            "a SQLite URL has no host: sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite://:memory:",
            "url",
        )
    path = rest[1:]
    if not path or path.endswith("/"):
        raise ConfigError("a SQLite URL must name a database file", "url")
    return path


@attrs.define
class StorageFactoryConfig:
    """What ``create_storage`` builds: the backend, its config, and an optional hook."""

    backend: HistoryBackend = attrs.field(default=HistoryBackend.MEMORY, converter=HistoryBackend)
    postgres: PostgresConfig | None = None
    redis: RedisConfig | None = None
    oracle: OracleConfig | None = None
    sqlite: SqliteConfig | None = None
    hook: StorageHook | None = None
    #: Operations slower than this many seconds are logged as a warning (logger
    #: ``datacon.telemetry``, with ``operation``/``backend``/``duration`` in ``extra``); ``None``: off.
    slow_operation_secs: float | None = attrs.field(default=None, validator=_check_slow_secs)
    #: How long an idempotency key is kept (at least) after the write that used it (SPEC 7.3).
    idempotency_ttl_secs: int = attrs.field(default=86_400, validator=_check_idempotency_ttl)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> StorageFactoryConfig:
        """Parse upstream's YAML/JSON shape (``history_backend`` or ``backend``, then sections).

        Unknown keys are errors, so a typo is reported rather than ignored.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"configuration must be a mapping, got {type(data).__name__}", "config")
        rest = dict(data)
        if "history_backend" in rest and "backend" in rest:
            raise ConfigError("give either 'backend' or 'history_backend', not both", "backend")
        raw_backend = rest.pop("history_backend", rest.pop("backend", "memory"))
        try:
            backend = HistoryBackend(raw_backend)
        except ValueError:
            choices = ", ".join(b.value for b in HistoryBackend)
            raise ConfigError(f"unknown backend {raw_backend!r} (expected one of: {choices})", "backend") from None
        options: dict[str, Any] = {}
        slow = rest.get("slow_operation_secs")
        if isinstance(slow, str):  # e.g. from ${SLOW_SECS:-0.5}
            try:
                slow = float(slow)
            except ValueError:
                raise ConfigError("slow_operation_secs must be a number of seconds", "slow_operation_secs") from None
        if slow is not None:
            options["slow_operation_secs"] = slow
        rest.pop("slow_operation_secs", None)
        ttl = rest.pop("idempotency_ttl_secs", None)
        if isinstance(ttl, str):  # e.g. from ${IDEMPOTENCY_TTL:-86400}
            try:
                ttl = int(ttl)
            except ValueError:
                raise ConfigError(
                    "idempotency_ttl_secs must be a whole number of seconds", "idempotency_ttl_secs"
                ) from None
        if ttl is not None:
            options["idempotency_ttl_secs"] = ttl
        unknown = sorted(set(rest) - set(_SECTIONS))
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(map(str, unknown))}", "config")
        sections = {name: _structure(_SECTIONS[name], value, name) for name, value in rest.items() if value is not None}
        return cls(backend=backend, **sections, **options)

    @classmethod
    def from_url(cls, url: str) -> StorageFactoryConfig:
        """The backend and its config named by one URL; the URL is kept verbatim.

        ``memory://``, ``none://``, ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
        ``sqlite://:memory:``; ``postgresql://…``/``postgres://…`` (anything libpq accepts in URL
        form) as ``PostgresConfig.db_url``; ``redis://…``, ``rediss://…``, ``unix://…`` as
        ``RedisConfig.url``. Server URLs are validated when the storage is created. An unknown
        scheme is a ``ConfigError``; the URL itself never appears in an error.
        """
        if not isinstance(url, str) or not url.strip():
            raise ConfigError("url should not be empty", "url")
        scheme, separator, rest = url.strip().partition("://")
        backend = _URL_SCHEMES.get(scheme.lower()) if separator else None
        if backend is None:
            known = ", ".join(f"{name}://" for name in _URL_SCHEMES)
            # Only a well-formed scheme is echoed: whatever else was typed may hold a secret.
            valid = separator and _SCHEME.fullmatch(scheme) is not None
            shown = f"unknown URL scheme {scheme!r}" if valid else "not a storage URL"
            raise ConfigError(f"{shown} (expected one of: {known})", "url")
        if backend in (HistoryBackend.MEMORY, HistoryBackend.NONE):
            if rest:
                raise ConfigError(f"a {scheme}:// URL takes nothing after the scheme", "url")
            return cls(backend=backend)
        if backend is HistoryBackend.SQLITE:
            return cls(backend=backend, sqlite=SqliteConfig(_sqlite_path(rest)))
        if backend is HistoryBackend.POSTGRES:
            return cls(backend=backend, postgres=PostgresConfig(db_url=url))
        return cls(backend=backend, redis=RedisConfig(url=url))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> StorageFactoryConfig:
        """Load a YAML (``.yaml``/``.yml``), JSON (``.json``) or TOML (``.toml``) config file."""
        return cls.from_mapping(load_config(path))

    def section(self) -> Any:
        """The config object of the chosen backend, or ``None`` for memory and none."""
        return getattr(self, self.backend.value, None)


_ENV_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_ENV_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?", re.DOTALL)


def expand_env(value: Any, where: str = "config", environ: Mapping[str, str] | None = None) -> Any:
    """``value`` with ``${VAR}`` and ``${VAR:-default}`` in every string replaced, as a shell would.

    ``${VAR:-default}`` gives the default when ``VAR`` is unset or empty, ``${VAR-default}``
    only when it is unset; ``${VAR}`` of an unset variable is a ``ConfigError`` naming it (and
    ``where``, the key path). Mappings and lists are expanded recursively (values, not keys);
    other values are returned as they are. Expanded values never appear in an error.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        if "${" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            body = _ENV_BODY.fullmatch(match[1])
            if body is None:
                raise ConfigError(f"invalid environment reference ${{{match[1]}}}", where)
            name, operator, default = body.groups()
            found = env.get(name)
            if operator == ":-" and not found:
                return str(default)
            if operator == "-" and found is None:
                return str(default)
            if found is None:
                raise ConfigError(f"environment variable {name} is not set (no default given)", where)
            return found

        expanded = _ENV_REFERENCE.sub(substitute, value)
        # A reference left unterminated: "${" with no "}" after it in the original text.
        if "${" in _ENV_REFERENCE.sub("", value):
            raise ConfigError("unterminated environment reference '${' (missing '}')", where)
        return expanded
    if isinstance(value, Mapping):
        return {
            key: expand_env(item, f"{where}.{key}" if where != "config" else str(key), env)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [expand_env(item, f"{where}[{n}]", env) for n, item in enumerate(value)]
    return value


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML, JSON or TOML file into a mapping (format chosen by the file's suffix).

    String values expand ``${VAR}`` and ``${VAR:-default}`` from the environment
    (:func:`expand_env`), so a file can take its password from a secret store's variable.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(file)!r}: {exc.strerror}", "config") from None
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(f"unsupported config file type {suffix!r} (use .yaml, .yml, .json or .toml)", "config")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - parser errors of three libraries; report the kind and location only
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        if isinstance(exc, json.JSONDecodeError):
            where = f" at line {exc.lineno}"
        raise ConfigError(f"cannot parse {file.name}: invalid {suffix.lstrip('.').upper()}{where}", "config") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file.name} must contain a mapping at the top level", "config")
    expanded: dict[str, Any] = expand_env(data)
    return expanded
