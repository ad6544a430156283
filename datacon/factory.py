"""``create_storage``: open the configured backend (its ``open_backend``) and put the guard in front."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from datacon._guard import (
    GuardedConversationStorage,
    GuardedItemStorage,
    GuardedResponseStorage,
    GuardedRetention,
)
from datacon.backends.base import Backend, OpenBackend
from datacon.backends.idempotency import DEFAULT_TTL_SECS
from datacon.config import HistoryBackend, StorageFactoryConfig
from datacon.errors import ConfigError
from datacon.hooks import StorageHook
from datacon.storage import Gate, Storage
from datacon.telemetry import observer_for

__all__ = ["create_storage", "open_backend", "wrap"]

log = logging.getLogger(__name__)

# backend -> (package, pip extra naming its driver, display name used in upstream's messages)
_BACKENDS: dict[HistoryBackend, tuple[str, str, str]] = {
    HistoryBackend.MEMORY: ("datacon.backends.memory", "", "memory"),
    HistoryBackend.NONE: ("datacon.backends.noop", "", "none"),
    HistoryBackend.SQLITE: ("datacon.backends.sqlite", "", "SQLite"),
    HistoryBackend.POSTGRES: ("datacon.backends.postgres", "postgres", "Postgres"),
    HistoryBackend.REDIS: ("datacon.backends.redis", "redis", "Redis"),
    HistoryBackend.ORACLE: ("datacon.backends.oracle", "oracle", "oracle"),
}
# Backends without a config section.
_SECTIONLESS = (HistoryBackend.MEMORY, HistoryBackend.NONE)


def open_backend(config: StorageFactoryConfig, *, check_schema: bool = True) -> Backend:
    """The configured backend, unguarded: its package's ``open_backend`` entry point.

    The backend's section is validated first; a missing driver is a ``ConfigError`` naming
    the pip extra. ``check_schema=False`` skips the migration check of a versioned backend
    (``datacon migrate`` then reads and applies them through ``Versioned``).
    """
    backend = HistoryBackend(config.backend)
    package, extra, display = _BACKENDS[backend]
    section: Any = None
    if backend not in _SECTIONLESS:
        section = getattr(config, backend.value)
        if section is None:
            raise ConfigError(
                f"{display} configuration is required when history_backend={backend.value}", backend.value
            )
        section.validate()
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        # Only the backend's own driver can be missing here; name the extra that installs it.
        raise ConfigError(
            f"the {backend.value} backend needs its driver ({exc.name}): pip install 'datacon-store[{extra}]'",
            "backend",
        ) from None
    if section is not None:
        log.info("opening %s storage: %r", backend.value, section)
    entry: OpenBackend = module.open_backend
    return entry(section, check_schema=check_schema)


def create_storage(config: StorageFactoryConfig | str | None = None) -> Storage:
    """Build the storages of ``config.backend`` (memory when ``config`` is ``None``).

    ``config`` may be a URL (``postgresql://…``, ``redis://…``, ``sqlite:///data.db``…), read by
    :meth:`~datacon.config.StorageFactoryConfig.from_url`. The configuration is validated first
    (``ConfigError`` names the field); SQL backends create missing tables and check
    migrations (``MigrationRequiredError``). Every backend is wrapped so that arguments are
    checked and ``config.hook`` runs around each operation.
    """
    if isinstance(config, str):
        config = StorageFactoryConfig.from_url(config)
    config = config or StorageFactoryConfig()
    if not isinstance(config, StorageFactoryConfig):
        raise ConfigError(
            f"create_storage takes a StorageFactoryConfig or a URL, got {type(config).__name__}", "config"
        )
    return wrap(
        open_backend(config),
        config.hook,
        slow_operation_secs=config.slow_operation_secs,
        idempotency_ttl_secs=config.idempotency_ttl_secs,
    )


def wrap(
    backend: Backend,
    hook: StorageHook | None,
    *,
    slow_operation_secs: float | None = None,
    idempotency_ttl_secs: int = DEFAULT_TTL_SECS,
) -> Storage:
    """``backend`` behind the guard (arguments checked, ids minted, ``hook`` run): a ``Storage``.

    This is the step ``create_storage`` adds after opening a backend; the result shares the
    backend's pool, and closing it closes the backend. Operations are traced and measured
    when OpenTelemetry is installed, and logged when slower than ``slow_operation_secs``
    (:mod:`datacon.telemetry`). Idempotency keys are kept ``idempotency_ttl_secs``.
    """
    observer = observer_for(backend.kind, slow_operation_secs, backend.pool_stats)
    ttl = idempotency_ttl_secs
    gate = Gate(backend.kind)  # closed by Storage.close(): every call after it is refused alike
    return Storage(
        backend,
        GuardedResponseStorage(backend.responses, hook, observer, gate, ttl),
        GuardedConversationStorage(backend.conversations, hook, observer, gate, ttl),
        GuardedItemStorage(backend.items, hook, observer, gate, ttl),
        observer=observer,
        gate=gate,
        retention=GuardedRetention(backend, hook, observer, gate),
    )
