"""``create_storage``: build the configured backend, wrapped with checks and hooks."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from datacon._guard import GuardedConversationStorage, GuardedItemStorage, GuardedResponseStorage
from datacon.config import HistoryBackend, StorageFactoryConfig
from datacon.errors import ConfigError
from datacon.hooks import StorageHook
from datacon.storage import Storage

__all__ = ["create_storage", "wrap"]

log = logging.getLogger("datacon")

# backend -> (module, pip extra naming its driver, display name used in upstream's messages)
_BACKENDS: dict[HistoryBackend, tuple[str, str, str]] = {
    HistoryBackend.SQLITE: ("datacon.backends.sqlite", "", "SQLite"),
    HistoryBackend.POSTGRES: ("datacon.backends.postgres", "postgres", "Postgres"),
    HistoryBackend.REDIS: ("datacon.backends.redis", "redis", "Redis"),
    HistoryBackend.ORACLE: ("datacon.backends.oracle", "oracle", "oracle"),
}


def _open_backend(config: StorageFactoryConfig) -> Storage:
    backend = HistoryBackend(config.backend)
    if backend is HistoryBackend.MEMORY:
        from datacon.backends import memory

        return memory.open_storage()
    if backend is HistoryBackend.NONE:
        from datacon.backends import noop

        return noop.open_storage()
    module_name, extra, display = _BACKENDS[backend]
    section: Any = getattr(config, backend.value)
    if section is None:
        raise ConfigError(f"{display} configuration is required when history_backend={backend.value}", backend.value)
    section.validate()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # Only the backend's own driver can be missing here; name the extra that installs it.
        raise ConfigError(
            f"the {backend.value} backend needs its driver ({exc.name}): pip install 'datacon[{extra}]'",
            "backend",
        ) from None
    log.info("opening %s storage: %r", backend.value, section)
    storage: Storage = module.open_storage(section)
    return storage


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
    return wrap(_open_backend(config), config.hook)


def wrap(raw: Storage, hook: StorageHook | None) -> Storage:
    """``raw`` (a backend's own stores) behind the guard: arguments checked, ``hook`` run.

    This is the step ``create_storage`` adds after opening a backend; the result shares the
    backend's pool, and closing it closes the backend.
    """
    return Storage(
        GuardedResponseStorage(raw.responses, hook),
        GuardedConversationStorage(raw.conversations, hook),
        GuardedItemStorage(raw.items, hook),
        backend=raw.backend,
        max_concurrency=raw.max_concurrency,
        close=raw.close,
        pool_stats=raw.pool_stats,
    )
