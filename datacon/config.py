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

    TLS settings (``sslmode``, ``sslrootcert``...) go in the URL's query string and pass
    through to libpq unchanged.
    """

    db_url: str = attrs.field(repr=redact_url)
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

    def validate(self) -> None:
        """Upstream's rules: URL scheme, host, database name, ``pool_max > 0``."""
        parts = _parse_url(self.db_url, "postgres.db_url", "db_url", ("postgres", "postgresql"))
        if not parts.path.lstrip("/"):
            raise ConfigError("db_url must include a database name", "postgres.db_url")
        _check_pool_max(self.pool_max, "postgres.pool_max")
        _check_positive(self.pool_timeout_secs, "postgres.pool_timeout_secs", "pool_timeout_secs")
        _check_positive(self.connect_timeout_secs, "postgres.connect_timeout_secs", "connect_timeout_secs")
        if self.read_timeout_secs is not None:
            _check_positive(self.read_timeout_secs, "postgres.read_timeout_secs", "read_timeout_secs")
        if not isinstance(self.transaction_pooling, bool):
            raise ConfigError("transaction_pooling must be true or false", "postgres.transaction_pooling")
        _validate_schema(self.schema, "postgres")


@attrs.define(frozen=True)
class RedisConfig:
    """Redis: ``url`` like ``redis://:pass@host:6379/0`` (``rediss://`` for TLS).

    ``retention_days`` sets a TTL on every record (``None``: never expire).
    """

    url: str = attrs.field(repr=redact_url)
    pool_max: int = 16
    retention_days: int | None = 30
    schema: SchemaConfig | None = None
    pool_timeout_secs: float = 30.0
    socket_timeout_secs: float = 10.0
    connect_timeout_secs: float = 10.0

    def validate(self) -> None:
        """Upstream's rules: URL scheme, host, ``pool_max > 0``; plus ``retention_days > 0``."""
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
        _validate_schema(self.schema, "redis")


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
