"""Operator actions on a configured storage: schema migration status and apply, health checks.

They use only the backend contract (``datacon.backends.base``): the backend is opened with
``factory.open_backend(config, check_schema=False)``, and a backend with a versioned schema
is :class:`~datacon.backends.base.Versioned` (``schema_status()``, ``apply_migrations()``).
Reading the status (``migrate status``/``plan``, ``doctor``) writes nothing, even in an empty
database; ``schema_script`` renders a backend's whole schema without connecting
(``migrate sql``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import attrs

from datacon.backends.base import Backend, Durable, SchemaStatus, Versioned
from datacon.config import HistoryBackend, StorageFactoryConfig
from datacon.errors import ConfigError, DataconError
from datacon.factory import open_backend, wrap
from datacon.storage import HealthReport

__all__ = ["Check", "SchemaReport", "apply_migrations", "doctor", "schema_script", "schema_status"]


@attrs.define(frozen=True)
class SchemaReport:
    """Where the configured backend's schema stands (``Versioned.schema_status()`` and its name).

    :ivar current: the version recorded (or configured, if higher).
    :ivar latest: the newest version datacon knows.
    :ivar statements: the exact SQL still to apply, in order (empty when up to date).
    """

    backend: str
    current: int
    latest: int
    statements: tuple[str, ...] = ()

    @property
    def up_to_date(self) -> bool:
        return not self.statements

    @classmethod
    def of(cls, backend: Backend, status: SchemaStatus) -> SchemaReport:
        return cls(backend.kind, status.current, status.latest, status.pending_statements)


@contextmanager
def _opened(config: StorageFactoryConfig) -> Iterator[Backend]:
    backend = open_backend(config, check_schema=False)
    try:
        yield backend
    finally:
        backend.close()


def schema_status(config: StorageFactoryConfig) -> SchemaReport | None:
    """The schema version and the pending SQL of the configured backend; ``None`` if it has no schema."""
    with _opened(config) as backend:
        if not isinstance(backend, Versioned):
            return None
        return SchemaReport.of(backend, backend.schema_status())


class _SchemaScript(Protocol):
    """A SQL backend package's ``schema_script(section)``: its whole schema as SQL, offline."""

    def __call__(self, config: Any, /) -> list[str]: ...


#: The backends whose package renders its schema without connecting (``schema_script``).
_SCRIPTED = {
    HistoryBackend.SQLITE: "datacon.backends.sqlite",
    HistoryBackend.POSTGRES: "datacon.backends.postgres",
    HistoryBackend.ORACLE: "datacon.backends.oracle",
}


def schema_script(config: StorageFactoryConfig) -> list[str]:
    """The complete DDL of the configured SQL schema at the latest version, without connecting:
    ``_schema_versions``, the tables, the rows recording the version, the indexes.

    :raises ConfigError: the backend has no SQL schema, or its configuration is invalid.
    """
    backend = HistoryBackend(config.backend)
    if backend not in _SCRIPTED:
        raise ConfigError(f"the {backend.value} backend has no SQL schema", "backend")
    section = config.section()
    if section is None:
        raise ConfigError(f"{backend.value} configuration is required when backend={backend.value}", backend.value)
    if section.schema is not None:
        section.schema.validate()
    try:
        module = importlib.import_module(_SCRIPTED[backend])
    except ImportError as exc:
        raise ConfigError(f"the {backend.value} backend needs its driver ({exc.name})", "backend") from None
    script: _SchemaScript = module.schema_script
    return script(section)


def apply_migrations(config: StorageFactoryConfig) -> SchemaReport:
    """Apply the pending migrations (under the backend's lock); the status afterwards."""
    with _opened(config) as backend:
        if not isinstance(backend, Versioned):
            raise ConfigError(f"the {backend.kind} backend has no schema migrations", "backend")
        backend.apply_migrations()
        return SchemaReport.of(backend, backend.schema_status())


@attrs.define(frozen=True)
class Check:
    """One line of ``datacon doctor``: what was checked, whether it passed, and details."""

    name: str
    ok: bool
    detail: str
    #: A passing check that still deserves attention (shown as ``WARN``; exit status 0).
    warning: bool = False


def sqlite_file_missing(config: StorageFactoryConfig) -> str | None:
    """The SQLite path if the config names a database file that does not exist yet."""
    if HistoryBackend(config.backend) is not HistoryBackend.SQLITE or config.sqlite is None:
        return None
    path = config.sqlite.path
    if path == ":memory:" or path.startswith("file:") or Path(path).exists():
        return None
    return path


def doctor(config: StorageFactoryConfig) -> list[Check]:
    """Validate the config, connect (``Storage.health``), read the schema version and (Redis) the
    server's durability; stops at the first failure.

    Details never contain a secret: configs are shown through their masking ``repr``, and
    errors through datacon's messages, which never include URLs or passwords.
    """
    checks: list[Check] = []
    backend = HistoryBackend(config.backend)
    section = config.section()
    try:
        if backend in (HistoryBackend.MEMORY, HistoryBackend.NONE):
            checks.append(Check("config", True, f"backend {backend.value} (nothing is persisted beyond the process)"))
        elif section is None:
            raise ConfigError(f"{backend.value} configuration is required when backend={backend.value}", backend.value)
        else:
            section.validate()
            checks.append(Check("config", True, f"backend {backend.value}: {section!r}"))
    except DataconError as exc:
        checks.append(Check("config", False, str(exc)))
        return checks
    missing = sqlite_file_missing(config)
    if missing is not None:
        checks.append(Check("database", False, f"no SQLite database at {missing} (it is created on first write)"))
        return checks
    schema: Check | None = None
    durability: Check | None = None
    connection = "connected"
    try:
        with _opened(config) as opened:
            if isinstance(opened, Versioned):
                # Reading the schema status connects: a failure here is the connection's.
                status = SchemaReport.of(opened, opened.schema_status())
                schema = Check("schema", status.up_to_date, _schema_line(status))
            if schema is None or schema.ok:
                # Storage.health(): a read of an id that cannot exist (nothing is written), timed,
                # and the pool's counters (an older schema could fail that read: skipped then).
                report = wrap(opened, None).health()
                if not report.ok:
                    checks.append(Check("connection", False, report.error or "the health check failed"))
                    return checks
                connection = _health_line(report)
            if isinstance(opened, Durable):
                try:
                    found = opened.durability()
                except DataconError as exc:
                    durability = Check("durability", False, _describe(exc))
                else:
                    durability = Check("durability", True, found.detail, warning=not found.persists)
    except DataconError as exc:
        checks.append(Check("connection", False, _describe(exc)))
        return checks
    checks.append(Check("connection", True, connection))
    if schema is not None:
        checks.append(schema)
    if durability is not None:
        checks.append(durability)
    return checks


def _health_line(report: HealthReport) -> str:
    pool = ", ".join(f"{name} {value}" for name, value in sorted(report.pool.items()))
    return f"connected (round trip {report.latency_secs * 1000:.1f} ms{'; pool: ' + pool if pool else ''})"


def _describe(exc: DataconError) -> str:
    return f"{type(exc).__name__}: {exc}"


def _schema_line(status: SchemaReport) -> str:
    if status.up_to_date:
        return f"up to date (version {status.current})"
    # The statements name what is missing (a migration's column, or a column the config
    # declares that a table lacks): the operator sees it without running the plan.
    return (
        f"version {status.current}, latest {status.latest}: "
        f"{len(status.statements)} statement(s) pending (see: datacon migrate plan): {'; '.join(status.statements)}"
    )


def describe_pending(statements: Sequence[str]) -> str:
    """The pending SQL as a script: one statement per line, each ending with ``;``."""
    return "\n".join(s if s.rstrip().endswith(";") else f"{s};" for s in statements)
