"""TLS settings reach the drivers: ``rediss://`` (redis-py) and ``sslmode`` (libpq)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from datacon import NewConversation, PostgresConfig, RedisConfig, StorageFactoryConfig, create_storage
from datacon.errors import BackendUnavailableError
from tests.reliability._pg import FaultablePostgres
from tests.reliability._secrets import find_instances
from tests.servers.postgres import PASSWORD as PG_PASSWORD
from tests.servers.postgres import PostgresBackend
from tests.servers.redis import RedisServer, redis_executable
from tests.support import free_port, server_missing

pytestmark = pytest.mark.reliability

SECRET = "Tls-S3cret-pw"
SHORT: dict[str, Any] = {"pool_timeout_secs": 2.0, "socket_timeout_secs": 2.0, "connect_timeout_secs": 2.0}


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and its key (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        server_missing("openssl is not installed: cannot make a test certificate")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


def redis_storage(url: str) -> StorageFactoryConfig:
    return StorageFactoryConfig(backend="redis", redis=RedisConfig(url=url, **SHORT))


@pytest.mark.redis
def test_rediss_url_makes_redis_py_use_ssl_connections(tmp_path: Path) -> None:
    import redis

    server = RedisServer(redis_executable(), tmp_path, password=SECRET)
    server.start()
    try:
        with create_storage(redis_storage(f"rediss://:{SECRET}@127.0.0.1:{server.port}/0")) as storage:
            pools = find_instances(storage, redis.ConnectionPool)
            assert len(pools) == 1
            assert issubclass(pools[0].connection_class, redis.SSLConnection)
            # The server speaks plain RESP and never answers the TLS ClientHello: the handshake
            # times out (connect_timeout_secs), as a datacon error.
            with pytest.raises(BackendUnavailableError) as info:
                storage.conversations.get_conversation("x")
        assert SECRET not in str(info.value)
        assert isinstance(info.value.__cause__, redis.ConnectionError | redis.TimeoutError)
        with create_storage(redis_storage(f"redis://:{SECRET}@127.0.0.1:{server.port}/0")) as plain:
            pools = find_instances(plain, redis.ConnectionPool)
            assert len(pools) == 1
            assert not issubclass(pools[0].connection_class, redis.SSLConnection)
    finally:
        server.stop()


@pytest.mark.redis
def test_rediss_against_a_tls_server_verifies_the_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls_port = free_port()
    server = RedisServer(
        redis_executable(),
        tmp_path,
        password=SECRET,
        extra_args=(
            "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-auth-clients", "no",
        ),
    )  # fmt: skip
    try:
        server.start()
    except RuntimeError:
        server_missing("this redis-server was built without TLS support")
    try:
        base = f"rediss://:{SECRET}@127.0.0.1:{tls_port}/0"
        # Trusting the server's certificate through the URL's query string: it works.
        trusted = f"{base}?ssl_cert_reqs=required&ssl_ca_certs={cert}"
        with create_storage(redis_storage(trusted)) as storage:
            made = storage.conversations.create_conversation(NewConversation(metadata={"tls": True}))
            got = storage.conversations.get_conversation(made.id)
            assert got is not None
            assert got.metadata == {"tls": True}
        # Without the CA the self-signed certificate is refused: verification is on by default.
        with create_storage(redis_storage(base)) as storage, pytest.raises(BackendUnavailableError) as info:
            storage.conversations.get_conversation("x")
        assert "certificate" in str(info.value.__cause__).lower()
        assert SECRET not in str(info.value)
    finally:
        server.stop()


def postgres_storage(url: str) -> StorageFactoryConfig:
    config = PostgresConfig(db_url=url, pool_max=2, pool_timeout_secs=2.0, connect_timeout_secs=2.0)
    return StorageFactoryConfig(backend="postgres", postgres=config)


@pytest.mark.postgres
def test_sslmode_require_against_a_plain_server_is_refused_by_libpq(postgres_backend: PostgresBackend) -> None:
    import psycopg

    separator = "&" if "?" in postgres_backend.url else "?"
    with pytest.raises(BackendUnavailableError) as info:
        create_storage(postgres_storage(f"{postgres_backend.url}{separator}sslmode=require"))
    # libpq's own words: the setting reached it (psycopg passes the URL's query to libpq).
    assert "SSL" in str(info.value)
    assert isinstance(info.value.__cause__, psycopg.OperationalError)
    assert PG_PASSWORD not in str(info.value)
    assert PG_PASSWORD not in str(info.value.__cause__)
    # The same URL without sslmode works: only the setting made the difference.
    with create_storage(postgres_storage(postgres_backend.url)) as storage:
        assert storage.conversations.get_conversation("x") is None


@pytest.mark.postgres
def test_sslmode_against_a_tls_server_encrypts_and_verifies() -> None:
    import psycopg

    server = FaultablePostgres()
    try:
        cert, key = self_signed(server.workdir)
        for path in (cert, key):
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        server.extra = f"-c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"
        server.start()
        base = server.url()
        for query in ("sslmode=require", f"sslmode=verify-full&sslrootcert={cert}"):
            with create_storage(postgres_storage(f"{base}?{query}")) as storage:
                made = storage.conversations.create_conversation(NewConversation(metadata={"tls": query}))
                got = storage.conversations.get_conversation(made.id)
                assert got is not None
                assert got.metadata == {"tls": query}
                with server.admin() as conn:
                    (encrypted,) = conn.execute(
                        "SELECT array_agg(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                        "WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL"
                    ).fetchone()
                assert encrypted
                assert all(encrypted), f"{query}: a pooled connection is not encrypted"
        # verify-full with a CA that did not sign the server's certificate: libpq refuses the
        # server (before any password is sent).
        (server.workdir / "other").mkdir()
        other_ca, _ = self_signed(server.workdir / "other")
        with pytest.raises(BackendUnavailableError) as info:
            create_storage(postgres_storage(f"{base}?sslmode=verify-full&sslrootcert={other_ca}"))
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
        assert "certificate verify failed" in str(info.value)
        assert PG_PASSWORD not in str(info.value)
    finally:
        server.stop()


@pytest.mark.redis
def test_sentinel_over_tls_finds_the_master_with_the_urls_tls_settings(tmp_path: Path) -> None:
    """A TLS-only master and a TLS-only sentinel: ``rediss://`` with the CA reaches both."""
    import redis

    cert, key = self_signed(tmp_path)
    tls = ("--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert))
    master_port = free_port()
    master = RedisServer(
        redis_executable(),
        tmp_path,
        password=SECRET,
        extra_args=("--tls-port", str(master_port), *tls, "--tls-auth-clients", "no"),
    )
    try:
        master.start()
    except RuntimeError:
        server_missing("this redis-server was built without TLS support")
    sentinel_port = free_port()
    directory = tmp_path / "sentinel"
    directory.mkdir()
    conf = directory / "sentinel.conf"
    conf.write_text(
        f"port 0\ntls-port {sentinel_port}\nbind 127.0.0.1\ndir {directory}\n"
        f"tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {cert}\ntls-auth-clients no\n"
        "tls-replication yes\n"
        f"sentinel monitor tlsmain 127.0.0.1 {master_port} 1\nsentinel auth-pass tlsmain {SECRET}\n"
    )
    sentinel = subprocess.Popen(
        [redis_executable(), str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=directory,
    )
    try:
        trust = f"ssl_cert_reqs=required&ssl_ca_certs={cert}"
        # The URL's host names a port nothing listens on: only the password, TLS and db count.
        url = f"rediss://:{SECRET}@127.0.0.1:{free_port()}/0?{trust}"
        config = RedisConfig(url=url, sentinels=[f"127.0.0.1:{sentinel_port}"], sentinel_service="tlsmain", **SHORT)
        made = None
        for _ in range(100):  # the sentinel needs a moment to start and reach the master
            try:
                with create_storage(StorageFactoryConfig(backend="redis", redis=config)) as storage:
                    made = storage.conversations.create_conversation(NewConversation(metadata={"tls": True}))
                    assert storage.conversations.get_conversation(made.id) == made
                    pools = find_instances(storage, redis.ConnectionPool)
                    assert all(issubclass(p.connection_class, redis.SSLConnection) for p in pools)
                break
            except BackendUnavailableError:
                time.sleep(0.1)
        assert made is not None, "the sentinel never named the TLS master"
        # Without the CA neither the sentinel nor the master is trusted.
        untrusted = RedisConfig(
            url=f"rediss://:{SECRET}@127.0.0.1:1/0",
            sentinels=[f"127.0.0.1:{sentinel_port}"],
            sentinel_service="tlsmain",
            **SHORT,
        )
        with create_storage(StorageFactoryConfig(backend="redis", redis=untrusted)) as storage:
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError) as info:
                storage.conversations.get_conversation("x")
        assert SECRET not in str(info.value)
        # Refused at once (no retries with a backoff of seconds behind the timeouts' back).
        assert time.monotonic() - started < 2 * SHORT["connect_timeout_secs"]
    finally:
        sentinel.terminate()
        sentinel.wait(timeout=10)
        master.stop()
