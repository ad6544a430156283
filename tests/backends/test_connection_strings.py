"""Every connection-string form the drivers accept, each opened against the real test servers.

PostgreSQL: a URL, libpq ``key=value`` pairs (quoted values included), several hosts, a unix
socket (``?host=/dir``), and ``PG*`` environment variables; each also as ``create_storage(url)``
where it is a URL. Passwords never appear in a ``repr``, a message or a log line.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from datacon import NewConversation, PostgresConfig, StorageFactoryConfig, create_storage
from datacon.errors import BackendUnavailableError
from tests.servers.postgres import DATABASE, PASSWORD, USER, PostgresBackend, PostgresServer
from tests.support import free_port

pytestmark = pytest.mark.postgres

# A role whose password needs libpq's quoting: a space, a quote, a backslash.
ODD_ROLE = "dc_odd_password"
ODD_PASSWORD = "it's a s3cret\\pass"


@pytest.fixture(scope="module")
def local_server(postgres_server: PostgresServer | None) -> PostgresServer:
    if postgres_server is None:
        pytest.skip("these forms need the cluster the tests start (its port and unix socket directory)")
    return postgres_server


def round_trip(config: PostgresConfig | str) -> None:
    """Open, write a conversation, read it back, delete it."""
    target = config if isinstance(config, str) else StorageFactoryConfig(backend="postgres", postgres=config)
    with create_storage(target) as storage:
        assert storage.backend == "postgres"
        conversation = storage.conversations.create_conversation(NewConversation(metadata={"form": "ok"}))
        assert storage.conversations.get_conversation(conversation.id) == conversation
        assert storage.conversations.delete_conversation(conversation.id)


def test_url(postgres_backend: PostgresBackend) -> None:
    round_trip(PostgresConfig(postgres_backend.url))
    round_trip(postgres_backend.url)


def test_key_value_pairs(local_server: PostgresServer) -> None:
    conninfo = f"host=127.0.0.1 port={local_server.port} dbname={DATABASE} user={USER} password={PASSWORD}"
    round_trip(PostgresConfig(conninfo))
    assert PASSWORD not in repr(PostgresConfig(conninfo))


@pytest.fixture(scope="module")
def odd_role(postgres_backend: PostgresBackend, local_server: PostgresServer) -> Iterator[str]:
    from psycopg import sql

    def drop(conn: Any) -> None:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ODD_ROLE,)).fetchone():
            conn.execute(f"REASSIGN OWNED BY {ODD_ROLE} TO {USER}")  # tables it may have created
            conn.execute(f"DROP ROLE {ODD_ROLE}")

    with postgres_backend.connect() as conn:
        drop(conn)
        create = sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}")
        conn.execute(create.format(sql.Identifier(ODD_ROLE), sql.Literal(ODD_PASSWORD)))
    try:
        yield ODD_ROLE
    finally:
        with postgres_backend.connect() as conn:
            drop(conn)


def test_quoted_key_value_password(local_server: PostgresServer, odd_role: str) -> None:
    quoted = ODD_PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    conninfo = f"host=127.0.0.1 port={local_server.port} dbname={DATABASE} user={odd_role} password='{quoted}'"
    round_trip(PostgresConfig(conninfo))
    shown = repr(PostgresConfig(conninfo))
    assert "s3cret" not in shown
    assert "password=****" in shown


def test_several_hosts_the_first_one_down(local_server: PostgresServer) -> None:
    down = free_port()  # nothing listens there: libpq goes on to the next host
    url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{down},127.0.0.1:{local_server.port}/{DATABASE}"
    round_trip(PostgresConfig(url, connect_timeout_secs=5))
    key_value = (
        f"host=127.0.0.1,127.0.0.1 port={down},{local_server.port} dbname={DATABASE} user={USER} password={PASSWORD}"
    )
    round_trip(PostgresConfig(key_value))


def test_unix_socket(local_server: PostgresServer) -> None:
    socket_dir = local_server.workdir  # the cluster's unix_socket_directories (local auth: trust)
    round_trip(f"postgresql://{USER}@/{DATABASE}?host={socket_dir}&port={local_server.port}")
    round_trip(PostgresConfig(f"host={socket_dir} port={local_server.port} dbname={DATABASE} user={USER}"))


def test_pg_environment_variables(local_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(local_server.port),
        "PGUSER": USER,
        "PGPASSWORD": PASSWORD,
        "PGDATABASE": DATABASE,
    }.items():
        monkeypatch.setenv(name, value)
    round_trip("postgresql://")
    round_trip(PostgresConfig("dbname=" + DATABASE))


@pytest.mark.parametrize("form", ["url", "key-value", "quoted"])
def test_a_refused_login_never_shows_the_password(
    local_server: PostgresServer, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    wrong = f"wrong-{secrets.token_hex(4)}"
    target: dict[str, Any] = {
        "url": f"postgresql://{USER}:{wrong}@127.0.0.1:{local_server.port}/{DATABASE}",
        "key-value": f"host=127.0.0.1 port={local_server.port} dbname={DATABASE} user={USER} password={wrong}",
        "quoted": f"host=127.0.0.1 port={local_server.port} dbname={DATABASE} user={USER} password='{wrong} x'",
    }
    config = PostgresConfig(target[form], connect_timeout_secs=3)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendUnavailableError) as caught:
        create_storage(StorageFactoryConfig(backend="postgres", postgres=config))
    text = f"{caught.value} {caught.value.__cause__} {caplog.text} {config!r}"
    assert "password authentication failed" in str(caught.value)
    assert wrong not in text
