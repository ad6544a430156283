"""Test helpers shared by every suite: the backend-under-test interface and server policy."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, NoReturn, Protocol

import pytest

from datacon import (
    ColumnDef,
    ConversationItemStorage,
    ConversationStorage,
    ResponseStorage,
    SchemaConfig,
    Storage,
    StorageFactoryConfig,
    StorageHook,
    TableConfig,
)
from datacon.backends._sql import SqlBackend, SqlStore

IN_CI = bool(os.environ.get("CI"))


def server_missing(reason: str) -> NoReturn:
    """A backend's server cannot be had: fail in CI (never a silent skip), skip locally."""
    if IN_CI:
        pytest.fail(f"{reason} (CI is set: a missing server fails the run)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sql_store(storage: Storage) -> SqlStore:
    """The shared SQL layer's store behind a SQL backend's ``storage``."""
    raw = storage.raw
    assert isinstance(raw, SqlBackend), raw
    return raw.store


class BackendUnderTest(Protocol):
    """What a tests/servers/<name>.py plugin's ``<name>_backend`` fixture returns."""

    name: str

    def config(self, schema: SchemaConfig | None = None, hook: StorageHook | None = None) -> StorageFactoryConfig:
        """A factory config for this backend (a ready server), with ``schema`` and ``hook``."""
        ...

    def wipe(self, schema: SchemaConfig | None = None) -> None:
        """Remove every record stored under ``schema`` (called after each test)."""
        ...


#: The conformance suite's second run: renamed tables and columns, extra and skipped columns.
RENAMED_SCHEMA = SchemaConfig(
    auto_migrate=False,
    conversations=TableConfig(
        table="dc_convs",
        columns={"id": "conv_id", "metadata": "conv_meta"},
        extra_columns={"tenant_id": ColumnDef("VARCHAR(64)", default_value="tenant-default")},
    ),
    responses=TableConfig(
        table="dc_resps",
        columns={"safety_identifier": "user_ident", "raw_response": "raw_json"},
        extra_columns={"stored_by": ColumnDef("VARCHAR(64)", default_value="system"), "score": ColumnDef("INTEGER")},
        skip_columns={"model"},
    ),
    conversation_items=TableConfig(
        table="dc_items",
        columns={"item_type": "kind", "content": "body"},
        extra_columns={"tenant_id": ColumnDef("VARCHAR(64)")},
        skip_columns={"status"},
    ),
    conversation_item_links=TableConfig(
        table="dc_links",
        columns={"added_at": "linked_at", "conversation_id": "conv_ref"},
        extra_columns={"tenant_id": ColumnDef("VARCHAR(64)")},
    ),
)


class Case:
    """One conformance run: a storage (sync API, or the async facade behind an adapter)."""

    def __init__(self, backend: str, variant: str, storage: Any, schema: SchemaConfig | None) -> None:
        self.backend = backend
        self.variant = variant
        self.storage = storage
        # The sync API's types: the async facade's adapter offers the same methods.
        self.conversations: ConversationStorage = storage.conversations
        self.items: ConversationItemStorage = storage.items
        self.responses: ResponseStorage = storage.responses
        self.schema = schema

    def skipped(self, table: str, field: str) -> bool:
        """Whether ``table.field`` is a skipped column in this run (reads give the default)."""
        if self.schema is None:
            return False
        config: TableConfig = self.schema.tables()[table]
        return config.is_skipped(field)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
