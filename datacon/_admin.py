"""Operator actions on a configured storage: schema migration status and apply, health checks.

Migration seam. A SQL backend module (``datacon.backends.<name>``) may offer two functions,
which the ``datacon migrate`` command prefers when present::

    def schema_status(section) -> SchemaStatus   # reads only; creates nothing
    def apply_migrations(section) -> Sequence[int]  # applied versions, under the backend's lock

``section`` is the backend's config (``SqliteConfig``, ``PostgresConfig``...). Without them, this
module falls back to the public API: opening the storage with ``auto_migrate`` off reports the
pending SQL (``MigrationRequiredError.statements``; the latest version is the shared SQL
layer's ``LATEST``, the current one is parsed from upstream's message shape, the only place
the layer states it when migrations are pending), and opening it with ``auto_migrate`` on
applies them through the backend's own runner (Postgres takes its advisory lock there). The
fallback creates missing tables of a fresh database, as opening a storage always does.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from datacon.config import HistoryBackend, StorageFactoryConfig
from datacon.errors import ConfigError, DataconError, MigrationRequiredError
from datacon.factory import create_storage
from datacon.schema import SchemaConfig
from datacon.storage import Storage

__all__ = ["Check", "SchemaStatus", "apply_migrations", "doctor", "has_migrations", "schema_status"]

_SQL_BACKENDS = (HistoryBackend.SQLITE, HistoryBackend.POSTGRES, HistoryBackend.ORACLE)
_CURRENT = re.compile(r"current version: (\d+)")


@attrs.define(frozen=True)
class SchemaStatus:
    """Where a SQL schema stands.

    :ivar current: the version recorded in ``_schema_versions`` (or configured), ``None`` if unknown.
    :ivar latest: the newest version datacon knows, ``None`` if unknown.
    :ivar statements: the exact SQL still to apply, in order (empty when up to date).
    """

    backend: str
    current: int | None
    latest: int | None
    statements: tuple[str, ...] = ()

    @property
    def up_to_date(self) -> bool:
        return not self.statements


def has_migrations(config: StorageFactoryConfig) -> bool:
    """Whether the configured backend has a versioned SQL schema."""
    return HistoryBackend(config.backend) in _SQL_BACKENDS


def _seam(config: StorageFactoryConfig, name: str) -> Callable[..., Any] | None:
    backend = HistoryBackend(config.backend)
    if backend not in _SQL_BACKENDS:
        raise ConfigError(f"the {backend.value} backend has no schema migrations", "backend")
    section = config.section()
    if section is None:
        raise ConfigError(f"{backend.value} configuration is required when backend={backend.value}", backend.value)
    section.validate()
    try:
        module = importlib.import_module(f"datacon.backends.{backend.value}")
    except ImportError:
        return None  # create_storage reports the missing driver with the right extra
    function = getattr(module, name, None)
    return function if callable(function) else None


def _with_auto_migrate(config: StorageFactoryConfig, value: bool) -> StorageFactoryConfig:
    section = config.section()
    schema = section.schema or SchemaConfig()
    section = attrs.evolve(section, schema=attrs.evolve(schema, auto_migrate=value))
    return attrs.evolve(config, **{HistoryBackend(config.backend).value: section})


def schema_status(config: StorageFactoryConfig) -> SchemaStatus:
    """The schema version and the pending SQL of the configured SQL backend."""
    seam = _seam(config, "schema_status")
    backend = HistoryBackend(config.backend).value
    if seam is not None:
        status = seam(config.section())
        return SchemaStatus(backend, status.current, status.latest, tuple(status.statements))
    try:
        with create_storage(_with_auto_migrate(config, False)) as storage:
            current, latest = _recorded_versions(storage)
    except MigrationRequiredError as exc:
        from datacon.backends._sql import LATEST

        found = _CURRENT.search(str(exc))
        return SchemaStatus(backend, int(found[1]) if found else None, LATEST, exc.statements)
    return SchemaStatus(backend, current, latest, ())


def _recorded_versions(storage: Storage) -> tuple[int | None, int | None]:
    # The shared SQL layer's store: its rendered MAX(version) query and its LATEST constant.
    # (None, None) for a SQL backend built otherwise; the status then says only "up to date".
    store = getattr(getattr(storage.conversations, "inner", None), "_store", None)
    sql = getattr(store, "sql", None)
    if store is None or sql is None:
        return None, None
    from datacon.backends._sql import LATEST

    with store.connector.session() as session:
        row = session.fetchone(sql.max_version)
    return (int(row[0]) if row is not None and row[0] is not None else 0), LATEST


def apply_migrations(config: StorageFactoryConfig) -> SchemaStatus:
    """Apply the pending migrations (under the backend's lock); the status afterwards."""
    seam = _seam(config, "apply_migrations")
    if seam is not None:
        seam(config.section())
    else:
        create_storage(_with_auto_migrate(config, True)).close()
    return schema_status(config)


@attrs.define(frozen=True)
class Check:
    """One line of ``datacon doctor``: what was checked, whether it passed, and details."""

    name: str
    ok: bool
    detail: str


def sqlite_file_missing(config: StorageFactoryConfig) -> str | None:
    """The SQLite path if the config names a database file that does not exist yet."""
    if HistoryBackend(config.backend) is not HistoryBackend.SQLITE or config.sqlite is None:
        return None
    path = config.sqlite.path
    if path == ":memory:" or path.startswith("file:") or Path(path).exists():
        return None
    return path


def doctor(config: StorageFactoryConfig) -> list[Check]:
    """Validate the config, connect, and read the schema version; stops at the first failure.

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
    try:
        if has_migrations(config):
            # Reading the schema status connects: a failure here is the connection's.
            status = schema_status(config)
            schema = Check("schema", status.up_to_date, _schema_line(status))
        else:
            with create_storage(config) as storage:
                # A read of an id that cannot exist: proves the server answers, changes nothing.
                storage.conversations.get_conversation("datacon_doctor_probe")
    except DataconError as exc:
        checks.append(Check("connection", False, _describe(exc)))
        return checks
    checks.append(Check("connection", True, "connected"))
    if schema is not None:
        checks.append(schema)
    return checks


def _describe(exc: DataconError) -> str:
    return f"{type(exc).__name__}: {exc}"


def _schema_line(status: SchemaStatus) -> str:
    if status.up_to_date:
        return "up to date" + (f" (version {status.current})" if status.current is not None else "")
    version = (
        f"version {status.current}, latest {status.latest}"
        if status.current is not None and status.latest is not None
        else "an older version"
    )
    # The statements name what is missing (a migration's column, or a column the config
    # declares that a table lacks): the operator sees it without running the plan.
    pending = "; ".join(status.statements)
    return f"{version}: {len(status.statements)} statement(s) pending (see: datacon migrate plan): {pending}"


def describe_pending(statements: Sequence[str]) -> str:
    """The pending SQL as a script: one statement per line, each ending with ``;``."""
    return "\n".join(s if s.rstrip().endswith(";") else f"{s};" for s in statements)
