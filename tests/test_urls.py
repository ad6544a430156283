"""Opening from one URL (SPEC §7.1): ``from_url``, ``create_storage(url)``, ``${VAR}`` in files, ``--url``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

from datacon import (
    HistoryBackend,
    NewConversation,
    PostgresConfig,
    RedisConfig,
    SqliteConfig,
    StorageFactoryConfig,
    create_storage,
    load_config,
)
from datacon.aio import create_async_storage
from datacon.cli import cli
from datacon.config import expand_env
from datacon.errors import ConfigError

SECRET = "s3cr3t-Pa55"


# --- StorageFactoryConfig.from_url ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "backend", "section"),
    [
        ("memory://", HistoryBackend.MEMORY, None),
        ("none://", HistoryBackend.NONE, None),
        ("sqlite:///relative/path.db", HistoryBackend.SQLITE, SqliteConfig("relative/path.db")),
        ("sqlite:////absolute/path.db", HistoryBackend.SQLITE, SqliteConfig("/absolute/path.db")),
        ("sqlite://:memory:", HistoryBackend.SQLITE, SqliteConfig(":memory:")),
        (
            f"postgresql://app:{SECRET}@db1:5432,db2:5433/chat?target_session_attrs=read-write",
            HistoryBackend.POSTGRES,
            PostgresConfig(f"postgresql://app:{SECRET}@db1:5432,db2:5433/chat?target_session_attrs=read-write"),
        ),
        (
            "postgres:///chat?host=/run/postgresql",
            HistoryBackend.POSTGRES,
            PostgresConfig("postgres:///chat?host=/run/postgresql"),
        ),
        (f"redis://:{SECRET}@cache:6379/2", HistoryBackend.REDIS, RedisConfig(f"redis://:{SECRET}@cache:6379/2")),
        ("rediss://cache:6380/0", HistoryBackend.REDIS, RedisConfig("rediss://cache:6380/0")),
        ("unix:///run/redis.sock?db=3", HistoryBackend.REDIS, RedisConfig("unix:///run/redis.sock?db=3")),
    ],
)
def test_every_scheme_names_its_backend_and_keeps_the_url(url: str, backend: HistoryBackend, section: Any) -> None:
    config = StorageFactoryConfig.from_url(url)
    assert config.backend is backend
    assert config.section() == section


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "url should not be empty"),
        ("mysql://h/db", "unknown URL scheme 'mysql'"),
        (f"app:{SECRET}@db/chat", "not a storage URL"),
        (f"{SECRET}!://x", "not a storage URL"),
        (f"user:{SECRET}@host://x", "not a storage URL"),
        ("memory://something", "takes nothing after the scheme"),
        ("sqlite:///data.db?mode=ro", "SQLite URLs take no query options"),
        ("sqlite://host/data.db", "a SQLite URL has no host"),
        ("sqlite:///", "must name a database file"),
    ],
)
def test_a_bad_url_is_a_config_error_that_does_not_echo_it(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        StorageFactoryConfig.from_url(url)
    assert caught.value.field == "url"
    assert SECRET not in str(caught.value)


def test_create_storage_opens_a_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"  # tmp_path is absolute: sqlite:////tmp/…
    with create_storage(url) as storage:
        conversation = storage.conversations.create_conversation(NewConversation(metadata={"n": 1}))
    with create_storage(url) as storage:
        assert storage.conversations.get_conversation(conversation.id) == conversation
    assert (tmp_path / "chat.db").exists()
    with create_storage("memory://") as storage:
        assert storage.backend == "memory"


def test_create_storage_refuses_other_types() -> None:
    with pytest.raises(ConfigError, match="StorageFactoryConfig or a URL"):
        create_storage(42)  # type: ignore[arg-type]


@pytest.mark.postgres
def test_create_storage_opens_a_postgres_url(postgres_backend: Any) -> None:
    with create_storage(postgres_backend.url) as storage:
        assert storage.backend == "postgres"
        conversation = storage.conversations.create_conversation(NewConversation())
        assert storage.conversations.get_conversation(conversation.id) == conversation
    postgres_backend.wipe()


@pytest.mark.redis
def test_create_async_storage_opens_a_redis_url(redis_backend: Any) -> None:
    async def main() -> None:
        async with create_async_storage(redis_backend.url) as storage:
            conversation = await storage.conversations.create_conversation(NewConversation())
            assert await storage.conversations.get_conversation(conversation.id) == conversation

    anyio.run(main)
    redis_backend.wipe()


# --- ${VAR} expansion in config files -------------------------------------------------------------


ENV = {"PGPASS": SECRET, "EMPTY": "", "HOST": "db.internal"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${HOST}", "db.internal"),
        ("postgres://app:${PGPASS}@${HOST}:5432/chat", f"postgres://app:{SECRET}@db.internal:5432/chat"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),  # ":-": unset or empty
        ("${EMPTY-fallback}", ""),  # "-": only unset
        ("${MISSING-fallback}", "fallback"),
        ("${EMPTY}", ""),
        ("${HOST:-}", "db.internal"),
        ("${MISSING:-}", ""),
        ("$HOST and $$ and $", "$HOST and $$ and $"),  # only ${...} is a reference
    ],
)
def test_references_expand_with_the_shells_meaning(text: str, expected: str) -> None:
    assert expand_env({"postgres": {"db_url": text}}, environ=ENV) == {"postgres": {"db_url": expected}}


def test_a_missing_variable_without_default_names_it_and_the_field() -> None:
    with pytest.raises(ConfigError, match="environment variable NOPE is not set") as caught:
        expand_env({"postgres": {"db_url": "postgres://app:${NOPE}@h/db"}}, environ=ENV)
    assert caught.value.field == "postgres.db_url"


@pytest.mark.parametrize("text", ["${}", "${1ABC}", "${A B}", "${HOST", "x${PGPASS}y${"])
def test_a_malformed_reference_is_a_config_error_without_values(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        expand_env({"redis": {"url": text}}, environ=ENV)
    assert caught.value.field == "redis.url"
    assert SECRET not in str(caught.value)


def test_only_strings_are_expanded_lists_and_nested_mappings_included() -> None:
    data = {"a": 1, "b": [True, "${HOST}", {"c": "${HOST}"}], "${HOST}": None}
    assert expand_env(data, environ=ENV) == {"a": 1, "b": [True, "db.internal", {"c": "db.internal"}], "${HOST}": None}


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".toml"])
def test_config_files_expand_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    monkeypatch.setenv("DC_TEST_DB", str(tmp_path / "from-env.db"))
    file = tmp_path / f"datacon{suffix}"
    if suffix == ".toml":
        file.write_text('backend = "sqlite"\n[sqlite]\npath = "${DC_TEST_DB}"\npool_max = 2\n')
    elif suffix == ".json":
        file.write_text(json.dumps({"backend": "sqlite", "sqlite": {"path": "${DC_TEST_DB}", "pool_max": 2}}))
    else:
        file.write_text("backend: sqlite\nsqlite:\n  path: ${DC_TEST_DB}\n  pool_max: 2\n")
    assert load_config(file)["sqlite"]["path"] == str(tmp_path / "from-env.db")
    config = StorageFactoryConfig.from_file(file)
    assert config.sqlite == SqliteConfig(str(tmp_path / "from-env.db"), pool_max=2)
    monkeypatch.delenv("DC_TEST_DB")
    with pytest.raises(ConfigError, match="DC_TEST_DB is not set") as caught:
        StorageFactoryConfig.from_file(file)
    assert caught.value.field == "sqlite.path"


# --- the CLI: --url, and --config/--url after the command words -----------------------------------


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[str, Path, str]:
    """A SQLite database holding one conversation: its URL, a config file naming it, the id."""
    db = tmp_path / "cli.db"
    url = f"sqlite:///{db}"
    with create_storage(url) as storage:
        conversation_id = storage.conversations.create_conversation(NewConversation(metadata={"k": "v"})).id
    file = tmp_path / "cli.yaml"
    file.write_text(f"backend: sqlite\nsqlite:\n  path: {db}\n")
    return url, file, conversation_id


@pytest.mark.parametrize(
    "where",
    ["url-first", "url-last", "config-first", "config-last", "url-env", "config-env"],
)
def test_the_storage_is_named_before_or_after_the_command(seeded: tuple[str, Path, str], where: str) -> None:
    url, file, conversation_id = seeded
    words = ["conversations", "show", conversation_id, "--json"]
    env = None
    if where == "url-first":
        args = ["--url", url, *words]
    elif where == "url-last":
        args = [*words, "--url", url]
    elif where == "config-first":
        args = ["--config", str(file), *words]
    elif where == "config-last":
        args = [*words, "--config", str(file)]
    else:
        args, env = words, {"DATACON_URL": url} if where == "url-env" else {"DATACON_CONFIG": str(file)}
    result = run(*args, env=env)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == conversation_id


def test_doctor_and_migrate_take_url_after_the_command(seeded: tuple[str, Path, str]) -> None:
    url, file, _ = seeded
    doctor = run("doctor", "--url", url)
    assert doctor.exit_code == 0, doctor.stdout
    assert doctor.stdout.splitlines()[0] == "using the --url storage URL"
    assert "up to date" in doctor.stdout
    status = run("migrate", "status", "--json", "--config", str(file))
    assert json.loads(status.stdout)["up_to_date"] is True


def test_the_command_line_wins_over_the_environment(seeded: tuple[str, Path, str], tmp_path: Path) -> None:
    url, _, conversation_id = seeded
    result = run("conversations", "show", conversation_id, "--url", url, env={"DATACON_CONFIG": str(tmp_path / "x")})
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--url", "memory://", "--config", "f.yaml", "doctor"], None, "give --config or --url, not both"),
        (["--url", "memory://", "doctor", "--config", "f.yaml"], None, "give --config or --url, not both"),
        (["--url", "memory://", "doctor", "--url", "none://"], None, "give one --url"),
        (["doctor"], {"DATACON_URL": "memory://", "DATACON_CONFIG": "f.yaml"}, "are both set"),
    ],
)
def test_two_storages_named_at_once_is_a_usage_error(args: list[str], env: dict[str, str] | None, message: str) -> None:
    result = run(*args, env=env)
    assert result.exit_code == 2
    assert message in result.stderr


def test_doctor_never_shows_the_urls_password(redis_url_with_secret: str) -> None:
    result = run("doctor", "--url", redis_url_with_secret)
    assert SECRET not in result.stdout + result.stderr
    assert "****" in result.stdout


@pytest.fixture
def redis_url_with_secret() -> str:
    return f"redis://:{SECRET}@127.0.0.1:1/0"  # nothing listens on port 1: the connection check fails


def test_copy_takes_urls(seeded: tuple[str, Path, str], tmp_path: Path) -> None:
    url, _, conversation_id = seeded
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    result = run("copy", "--from", url, "--to", target, "--no-progress", "--verify")
    assert result.exit_code == 0, result.stderr
    with create_storage(target) as storage:
        assert storage.conversations.get_conversation(conversation_id) is not None
    assert "same configuration" in run("copy", "--from", url, "--to", url).stderr
