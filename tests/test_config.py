"""Configuration: upstream's validation rules and messages, parsing, files, and secret masking."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from datacon import (
    HistoryBackend,
    OracleConfig,
    PostgresConfig,
    RedisConfig,
    SqliteConfig,
    StorageFactoryConfig,
    create_storage,
    load_config,
)
from datacon.config import redact_url
from datacon.errors import ConfigError

SECRET = "s3cr3t-Pa55"


def test_backend_values() -> None:
    assert [b.value for b in HistoryBackend] == ["memory", "none", "sqlite", "postgres", "redis", "oracle"]
    assert StorageFactoryConfig().backend is HistoryBackend.MEMORY
    assert StorageFactoryConfig(backend="redis").backend is HistoryBackend.REDIS


@pytest.mark.parametrize(
    ("url", "field", "message"),
    [
        ("", "postgres.db_url", "db_url should not be empty"),
        ("   ", "postgres.db_url", "db_url should not be empty"),
        # libpq's parser decides (SPEC 7.1: anything libpq accepts); the fragments it quotes are hidden.
        ("not a url", "postgres.db_url", 'invalid db_url: missing "=" after "…" in connection info string'),
        (
            f"host=h password={SECRET} x",
            "postgres.db_url",
            'invalid db_url: missing "=" after "…" in connection info string',
        ),
        (f"postgres://u:{SECRET}%zz@h/db", "postgres.db_url", 'invalid db_url: invalid percent-encoded token: "…"'),
        ("postgres://h/db?nonsense=1", "postgres.db_url", 'invalid db_url: invalid URI query parameter: "nonsense"'),
        (f"postgres://u:{SECRET}@h:99999/db", "postgres.db_url", "invalid db_url: invalid port"),
        (f"postgres://u:{SECRET}@h1:5432,h2:x/db", "postgres.db_url", "invalid db_url: invalid port"),
        ("host=h port=0", "postgres.db_url", "invalid db_url: invalid port"),
        ("mysql://h/db", "postgres.db_url", "unsupported URL scheme: mysql"),
    ],
)
def test_postgres_url_rules(url: str, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        PostgresConfig(url).validate()
    assert info.value.field == field
    assert info.value.reason == message
    assert str(info.value) == f"{field}: {message}"
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgres:///mydb",  # the unix socket (or PGHOST)
        "postgresql:///mydb?host=/run/postgresql&port=5433",
        "postgresql://u@host:5432",  # database: libpq's default (PGDATABASE, else the user name)
        "postgresql://",  # everything from PG* variables
        "postgresql://app@db1:5432,db2:5433/chat?target_session_attrs=read-write",
        "host=db.internal port=5432 dbname=chat user=app",
        "host=/run/postgresql dbname=chat",
        "dbname=chat",
    ],
)
def test_postgres_accepts_what_libpq_accepts(url: str) -> None:
    PostgresConfig(url).validate()


def test_postgres_db_url_is_required_without_a_pool() -> None:
    config = StorageFactoryConfig.from_mapping({"backend": "postgres", "postgres": {"pool_max": 3}})
    with pytest.raises(ConfigError, match="db_url should not be empty") as caught:
        create_storage(config)
    assert caught.value.field == "postgres.db_url"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"host=h password={SECRET} dbname=d", "host=h password=**** dbname=d"),
        (f"host=h password='{SECRET} \\' x' user=u", "host=h password=**** user=u"),
        (f"host=h sslpassword={SECRET}", "host=h sslpassword=****"),
        (
            f"postgresql://u:{SECRET}@h/d?password={SECRET}&sslmode=require",
            "postgresql://u:****@h/d?password=****&sslmode=require",
        ),
    ],
)
def test_postgres_passwords_are_masked_in_every_form(url: str, shown: str) -> None:
    text = repr(PostgresConfig(url))
    assert SECRET not in text
    assert f"db_url={shown}, " in text


def test_postgres_valid_and_pool_max() -> None:
    PostgresConfig("postgres://user:pass@localhost:5432/mydb").validate()
    PostgresConfig("postgresql://localhost/mydb?sslmode=require").validate()
    with pytest.raises(ConfigError, match="pool_max must be greater than 0") as info:
        PostgresConfig("postgres://h/db", pool_max=0).validate()
    assert info.value.field == "postgres.pool_max"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "redis url should not be empty"),
        ("http://h:6379", "unsupported URL scheme: http"),
        ("redis:///0", "redis url must have a host"),
        ("nothing", "invalid redis url: relative URL without a base"),
    ],
)
def test_redis_url_rules(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        RedisConfig(url).validate()
    assert info.value.reason == message
    assert info.value.field == "redis.url"


def test_redis_valid_and_limits() -> None:
    RedisConfig("redis://localhost:6379/0").validate()
    RedisConfig("rediss://:pw@localhost:6380").validate()
    RedisConfig("redis://h", retention_days=None).validate()
    assert RedisConfig("redis://h").retention_days == 30
    with pytest.raises(ConfigError, match="pool_max must be greater than 0"):
        RedisConfig("redis://h", pool_max=0).validate()
    with pytest.raises(ConfigError, match="retention_days"):
        RedisConfig("redis://h", retention_days=0).validate()


def test_oracle_rules(tmp_path: Path) -> None:
    OracleConfig("host:1521/FREEPDB1", username="u", password=SECRET).validate()
    OracleConfig("host/svc", external_auth=True).validate()
    with pytest.raises(ConfigError, match="connect_descriptor should not be empty"):
        OracleConfig("", username="u").validate()
    with pytest.raises(ConfigError, match="username is required"):
        OracleConfig("h/s").validate()
    with pytest.raises(ConfigError, match="pool_max must be greater than 0"):
        OracleConfig("h/s", username="u", pool_max=0).validate()
    with pytest.raises(ConfigError, match="pool_min"):
        OracleConfig("h/s", username="u", pool_min=5, pool_max=2).validate()
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=f"Oracle wallet path '{missing}' is not a directory"):
        OracleConfig("h/s", username="u", wallet_path=str(missing)).validate()
    with pytest.raises(ConfigError, match=r"is missing tnsnames\.ora or sqlnet\.ora"):
        OracleConfig("h/s", username="u", wallet_path=str(tmp_path)).validate()
    (tmp_path / "sqlnet.ora").write_text("")
    OracleConfig("h/s", username="u", wallet_path=str(tmp_path)).validate()


def test_sqlite_rules(tmp_path: Path) -> None:
    SqliteConfig(":memory:").validate()
    assert SqliteConfig(tmp_path / "x.db").path == str(tmp_path / "x.db")  # type: ignore[arg-type]  # a Path is accepted
    with pytest.raises(ConfigError, match="sqlite path should not be empty"):
        SqliteConfig("").validate()
    with pytest.raises(ConfigError, match="pool_max must be greater than 0"):
        SqliteConfig("x.db", pool_max=0).validate()


def test_schema_errors_name_their_section() -> None:
    from datacon import SchemaConfig, TableConfig

    with pytest.raises(ConfigError) as info:
        PostgresConfig("postgres://h/db", schema=SchemaConfig(owner="a.b")).validate()
    assert info.value.field == "postgres.schema"
    assert "owner: invalid identifier" in str(info.value)
    with pytest.raises(ConfigError, match=r"responses\.table"):
        SqliteConfig("x.db", schema=SchemaConfig(responses=TableConfig("bad-name"))).validate()


def test_no_secret_in_repr_str_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    configs = [
        PostgresConfig(f"postgres://user:{SECRET}@db.example:5432/app"),
        RedisConfig(f"redis://:{SECRET}@cache.example:6379/0"),
        RedisConfig(f"rediss://default:{SECRET}@cache.example:6380"),
        OracleConfig("db.example:1521/svc", username="scott", password=SECRET),
        OracleConfig(f"scott/{SECRET}@db.example:1521/svc", username="scott"),
        StorageFactoryConfig(backend=HistoryBackend.POSTGRES, postgres=PostgresConfig(f"postgres://u:{SECRET}@h/db")),
    ]
    for config in configs:
        assert SECRET not in repr(config)
        assert SECRET not in str(config)
        assert "****" in repr(config) or "password" not in repr(config)
    assert redact_url(f"postgres://u:{SECRET}@h/db") == "postgres://u:****@h/db"
    assert redact_url("postgres://h/db") == "postgres://h/db"
    assert redact_url("postgres://u:p@[bad/db") == "<redacted>"
    # The factory logs which backend it opens; the log line must be masked too.
    with caplog.at_level(logging.DEBUG, logger="datacon"), pytest.raises(ConfigError):
        create_storage(
            StorageFactoryConfig(
                backend=HistoryBackend.POSTGRES, postgres=PostgresConfig(f"postgres://u:{SECRET}@h", pool_max=0)
            )
        )
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        (HistoryBackend.POSTGRES, "Postgres configuration is required when history_backend=postgres"),
        (HistoryBackend.REDIS, "Redis configuration is required when history_backend=redis"),
        (HistoryBackend.ORACLE, "oracle configuration is required when history_backend=oracle"),
        (HistoryBackend.SQLITE, "SQLite configuration is required when history_backend=sqlite"),
    ],
)
def test_factory_requires_the_backend_section(backend: HistoryBackend, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_storage(StorageFactoryConfig(backend=backend))


def test_factory_validates_before_connecting() -> None:
    with pytest.raises(ConfigError, match="unsupported URL scheme: mysql"):
        create_storage(StorageFactoryConfig(backend=HistoryBackend.POSTGRES, postgres=PostgresConfig("mysql://h/db")))


def test_memory_and_none_ignore_other_sections() -> None:
    config = StorageFactoryConfig(backend=HistoryBackend.MEMORY, postgres=PostgresConfig("bad"))
    with create_storage(config) as storage:
        assert storage.backend == "memory"


def test_from_mapping_upstream_shape() -> None:
    config = StorageFactoryConfig.from_mapping(
        {"history_backend": "postgres", "postgres": {"db_url": "postgres://u:p@localhost:5432/mydb", "pool_max": 8}}
    )
    assert config.backend is HistoryBackend.POSTGRES
    assert config.postgres == PostgresConfig("postgres://u:p@localhost:5432/mydb", pool_max=8)
    redis = StorageFactoryConfig.from_mapping(
        {"backend": "redis", "redis": {"url": "redis://h", "retention_days": None}}
    )
    assert redis.redis is not None
    assert redis.redis.retention_days is None
    assert StorageFactoryConfig.from_mapping({}).backend is HistoryBackend.MEMORY


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"backend": "mongo"}, "backend", "unknown backend 'mongo'"),
        ({"backend": "memory", "mysql": {}}, "config", "unknown configuration keys: mysql"),
        ({"backend": "redis", "redis": {"url": "redis://h", "pool_max": "many"}}, "redis.pool_max", "expected int"),
        ({"backend": "redis", "redis": {"url": "redis://h", "typo": 1}}, "redis", "extra fields found (typo)"),
        ({"backend": "redis", "redis": "redis://h"}, "redis", "expected a mapping"),
        ({"backend": "oracle", "oracle": {"username": "u"}}, "oracle", "required field missing"),
        ({"backend": "memory", "history_backend": "memory"}, "backend", "not both"),
    ],
)
def test_from_mapping_errors(data: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        StorageFactoryConfig.from_mapping(data)
    assert fragment in str(info.value)
    assert info.value.field.startswith(field)


def test_from_mapping_never_echoes_secrets() -> None:
    with pytest.raises(ConfigError) as info:
        StorageFactoryConfig.from_mapping(
            {"backend": "redis", "redis": {"url": f"redis://:{SECRET}@h", "pool_max": f"{SECRET}"}}
        )
    assert SECRET not in str(info.value)


YAML = """\
history_backend: sqlite
sqlite:
  path: data.db
  schema:
    auto_migrate: true
    responses:
      table: my_responses
      columns:
        safety_identifier: user_identifier
"""
TOML = """\
backend = "sqlite"
[sqlite]
path = "data.db"
[sqlite.schema]
auto_migrate = true
[sqlite.schema.responses]
table = "my_responses"
columns = { safety_identifier = "user_identifier" }
"""
JSON = json.dumps(
    {
        "backend": "sqlite",
        "sqlite": {
            "path": "data.db",
            "schema": {
                "auto_migrate": True,
                "responses": {"table": "my_responses", "columns": {"safety_identifier": "user_identifier"}},
            },
        },
    }
)


@pytest.mark.parametrize(("suffix", "text"), [(".yaml", YAML), (".yml", YAML), (".toml", TOML), (".json", JSON)])
def test_file_loader(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"datacon{suffix}"
    path.write_text(text)
    config = StorageFactoryConfig.from_file(path)
    assert config.backend is HistoryBackend.SQLITE
    assert config.sqlite is not None
    assert config.sqlite.path == "data.db"
    assert config.sqlite.schema is not None
    assert config.sqlite.schema.auto_migrate is True
    assert config.sqlite.schema.responses.col("safety_identifier") == "user_identifier"
    assert load_config(path)["sqlite"]["path"] == "data.db"


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bad.yaml", "a: [unclosed", "invalid YAML"),
        ("bad.json", "{nope", "invalid JSON at line 1"),
        ("bad.toml", "a = ", "invalid TOML"),
        ("list.yaml", "- a\n- b\n", "must contain a mapping"),
        ("conf.ini", "[x]", "unsupported config file type '.ini'"),
    ],
)
def test_file_loader_errors(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace(".", r"\.")):
        StorageFactoryConfig.from_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        StorageFactoryConfig.from_file(tmp_path / "absent.yaml")


def test_empty_yaml_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert StorageFactoryConfig.from_file(path).backend is HistoryBackend.MEMORY
