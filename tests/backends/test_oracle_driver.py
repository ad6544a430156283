"""Oracle pieces that need no server: pool parameters, error mapping, bind values, extras.

Errors are real python-oracledb exceptions: a refused connection to a closed local port
(thin mode fails at once with DPY-6005), and errors the driver builds from ORA-/DPY-
codes through its own ``_Error`` class (the class every python-oracledb error carries).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import oracledb
import pytest
from oracledb import errors as ora_errors

from datacon import (
    ColumnDef,
    OracleConfig,
    SchemaConfig,
    StorageFactoryConfig,
    TableConfig,
    create_storage,
)
from datacon.backends._sql import SqlStore
from datacon.backends.base import NO_EXTRA
from datacon.backends.oracle import OracleConnector, dialect_for, oracle_schema, pool_params
from datacon.backends.oracle.connector import CALL_TIMEOUT_SECS, bind_names, secrets_of
from datacon.backends.oracle.errors import Scrubber, convert, translate
from datacon.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    PoolTimeoutError,
)
from tests.support import free_port

#: A test password that must never appear in a datacon message.
PASSWORD = "0ra-S3cret-pw"
D = dialect_for(oracle_schema(None))


def _config(**options: object) -> OracleConfig:
    base: dict[str, object] = {
        "connect_descriptor": f"127.0.0.1:{free_port()}/FREEPDB1",
        "username": "datacon",
        "password": PASSWORD,
    }
    base.update(options)
    return OracleConfig(**base)  # type: ignore[arg-type]


def _driver_error(message: str, code: int = 0) -> oracledb.Error:
    """The exception python-oracledb raises for ``message`` (an ORA- error when ``code``)."""
    error = ora_errors._Error(message, code=code)
    exc: oracledb.Error = error.exc_type(error)
    return exc


def _dpy_error(number: int) -> oracledb.Error:
    exc = ora_errors._create_exception(number)
    assert isinstance(exc, oracledb.Error)
    return exc


# --- config -> create_pool keyword arguments ------------------------------------------------


def test_pool_params_map_the_config() -> None:
    config = _config(pool_min=2, pool_max=7, pool_timeout_secs=5)
    params = pool_params(config, thin=True)
    assert params["dsn"] == config.connect_descriptor
    assert params["user"] == "datacon"
    assert params["password"] == PASSWORD
    assert (params["min"], params["max"], params["increment"]) == (2, 7, 1)
    assert params["getmode"] == oracledb.POOL_GETMODE_TIMEDWAIT
    assert params["wait_timeout"] == 5000
    assert callable(params["session_callback"])
    assert "externalauth" not in params
    assert "config_dir" not in params
    # Every key is a create_pool parameter.
    oracledb.PoolParams(**{k: v for k, v in params.items() if k not in ("dsn", "password", "user")})


def test_pool_timeout_zero_waits_without_limit() -> None:
    params = pool_params(_config(pool_timeout_secs=0), thin=True)
    assert params["getmode"] == oracledb.POOL_GETMODE_WAIT
    assert "wait_timeout" not in params


def test_wallet_path_is_the_config_dir_and_wallet_location(tmp_path: Path) -> None:
    (tmp_path / "tnsnames.ora").write_text("mydb = (DESCRIPTION=(ADDRESS=(PROTOCOL=tcps)(HOST=h)(PORT=1522)))\n")
    config = _config(wallet_path=str(tmp_path), connect_descriptor="mydb")
    config.validate()
    params = pool_params(config, thin=True)
    assert params["config_dir"] == str(tmp_path)
    assert params["wallet_location"] == str(tmp_path)


def test_wallet_path_checks_come_from_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        _config(wallet_path=str(tmp_path / "missing")).validate()
    with pytest.raises(ConfigError, match=r"missing tnsnames\.ora or sqlnet\.ora"):
        _config(wallet_path=str(tmp_path)).validate()


def test_external_auth_sends_no_credentials_in_thick_mode_and_is_refused_in_thin() -> None:
    config = _config(external_auth=True, username="", password="")
    params = pool_params(config, thin=False)
    assert params["externalauth"] is True
    assert params["homogeneous"] is False
    assert "user" not in params
    assert "password" not in params
    with pytest.raises(ConfigError, match="Thick mode") as caught:
        pool_params(config, thin=True)
    assert caught.value.field == "oracle.external_auth"


def test_connector_sizes_and_reports_an_unopened_pool() -> None:
    connector = OracleConnector(_config(pool_min=0, pool_max=3))
    try:
        assert connector.max_concurrency == 3
        assert connector.stats() == {"size": 0, "in_use": 0, "max": 3}
    finally:
        connector.close()
        connector.close()  # idempotent
    assert connector.stats()["size"] == 0
    assert CALL_TIMEOUT_SECS > 0


# --- error mapping at the one seam ----------------------------------------------------------


def test_a_refused_connection_is_backend_unavailable_without_the_password() -> None:
    config = _config()
    with pytest.raises(oracledb.Error) as raw:
        oracledb.connect(user="datacon", password=PASSWORD, dsn=config.connect_descriptor)
    assert raw.value.args[0].full_code == "DPY-6005"
    error = convert(raw.value, "", Scrubber(secrets_of(config)), 30)
    assert type(error) is BackendUnavailableError
    assert str(error).startswith("Oracle unavailable: DPY-6005: cannot connect to database")
    assert PASSWORD not in str(error)
    assert "Help:" not in str(error)


def test_create_storage_on_a_closed_port_fails_fast_and_chained() -> None:
    config = StorageFactoryConfig(backend="oracle", oracle=_config())
    with pytest.raises(BackendUnavailableError) as caught:
        create_storage(config)
    assert isinstance(caught.value.__cause__, oracledb.Error)
    assert caught.value.__cause__.args[0].full_code == "DPY-6005"
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)
    assert PASSWORD not in repr(config)


def test_a_password_in_the_descriptor_is_scrubbed_from_the_drivers_message() -> None:
    # python-oracledb refuses "user/password@..." when a user is also given, and quotes the
    # connect string in its message (DPY-4018): the password in it must not come through.
    descriptor = f"datacon/{PASSWORD}@127.0.0.1:{free_port()}/FREEPDB1"
    with pytest.raises(BackendError) as caught:
        create_storage(StorageFactoryConfig(backend="oracle", oracle=_config(connect_descriptor=descriptor)))
    assert isinstance(caught.value.__cause__, oracledb.Error)
    assert PASSWORD in str(caught.value.__cause__)  # the raw driver text has it...
    assert PASSWORD not in str(caught.value)  # ...the datacon error does not
    assert "datacon/****@127.0.0.1" in str(caught.value)


def test_unique_violation_is_a_conflict() -> None:
    exc = _driver_error("ORA-00001: unique constraint (DATACON.SYS_C008) violated", code=1)
    assert isinstance(exc, oracledb.IntegrityError)
    error = convert(exc, "conversation conv_1 already exists", Scrubber([]), 30)
    assert type(error) is ConflictError
    assert str(error) == "conversation conv_1 already exists"


def test_pool_wait_timeout_is_a_pool_timeout() -> None:
    exc = _dpy_error(ora_errors.ERR_POOL_NO_CONNECTION_AVAILABLE)
    assert exc.args[0].full_code == "DPY-4005"
    error = convert(exc, "", Scrubber([]), 30)
    assert type(error) is PoolTimeoutError
    assert "within 30 s" in str(error)
    assert isinstance(error, BackendUnavailableError)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("ORA-03113: end-of-file on communication channel", 3113),  # python-oracledb: DPY-4011
        ("ORA-03135: connection lost contact", 3135),
        ("ORA-12541: TNS:no listener", 12541),
        ("ORA-12514: TNS:listener does not currently know of service requested", 12514),
        ("ORA-01017: invalid username/password; logon denied", 1017),
        ("ORA-01034: ORACLE not available", 1034),
    ],
)
def test_connection_errors_are_backend_unavailable(message: str, code: int) -> None:
    error = convert(_driver_error(message, code=code), "", Scrubber([]), 30)
    assert type(error) is BackendUnavailableError


@pytest.mark.parametrize("number", [ora_errors.ERR_CONNECTION_CLOSED, ora_errors.ERR_NOT_CONNECTED])
def test_driver_connection_errors_are_backend_unavailable(number: int) -> None:
    assert type(convert(_dpy_error(number), "", Scrubber([]), 30)) is BackendUnavailableError


def test_other_errors_are_backend_errors_with_the_password_scrubbed() -> None:
    exc = _driver_error(f"ORA-00942: table or view {PASSWORD} does not exist", code=942)
    error = convert(exc, "", Scrubber([PASSWORD]), 30)
    assert type(error) is BackendError
    assert PASSWORD not in str(error)
    assert str(error).startswith("Oracle error: ORA-00942: table or view **** does not exist")


def test_translate_chains_the_driver_error() -> None:
    exc = _driver_error("ORA-00001: unique constraint (X.PK) violated", code=1)
    with pytest.raises(ConflictError) as caught, translate("duplicate", Scrubber([]), 30):
        raise exc
    assert caught.value.__cause__ is exc


def test_secrets_include_a_password_embedded_in_the_descriptor() -> None:
    config = _config(connect_descriptor="scott/tiger-pw@db.example:1521/svc")
    assert set(secrets_of(config)) == {PASSWORD, "tiger-pw"}


# --- bind values ----------------------------------------------------------------------------


def test_datetimes_are_bound_as_naive_utc_with_microseconds() -> None:
    aware = datetime(2026, 1, 2, 5, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    bound = D.encode_time(aware)
    assert bound == datetime(2026, 1, 2, 3, 4, 5, 123456)
    assert bound.tzinfo is None
    assert D.decode_time(bound) == aware
    assert D.decode_time(bound).tzinfo is UTC
    assert D.decode_time(aware) == aware
    with pytest.raises(TypeError):
        D.decode_time("2026-01-02")


def test_json_is_clob_text_and_reads_back() -> None:
    value = {"a": [1, 2.5, None, True], "é": "ü"}
    text = D.encode_json(value, "metadata")
    assert isinstance(text, str)
    assert json.loads(text) == value
    assert D.decode_json(text, None) == value
    assert D.decode_json(None, []) == []
    assert D.decode_json("null", []) is None
    assert D.json_type == "CLOB"


def test_extra_values_are_bound_with_their_types() -> None:
    assert D.encode_extra(True) == 1
    assert D.encode_extra(False) == 0
    assert D.encode_extra(42) == 42
    assert D.encode_extra(2.5) == 2.5
    assert D.encode_extra("acme") == "acme"
    assert D.encode_extra(None) is None
    assert D.encode_extra({"k": [1]}) == '{"k":[1]}'
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert D.encode_extra(moment) == datetime(2026, 1, 2, 3, 4, 5, 6)


def test_bind_names_skip_string_literals() -> None:
    statements = [
        "INSERT INTO t (a, b) VALUES (:id, FROM_TZ(:created_at, '+00:00'))",
        "UPDATE t SET m = :metadata WHERE id = :id RETURNING SYS_EXTRACT_UTC(c) INTO :returned",
    ]
    assert bind_names(statements[0]) == {"id", "created_at"}
    assert bind_names(statements[1]) == {"metadata", "id", "returned"}
    assert bind_names("SELECT 1 FROM t WHERE x = 'a:b' AND y = 'it''s :not'") == frozenset()


# --- extra-column keys and empty strings ----------------------------------------------------


@pytest.fixture
def store() -> Iterator[SqlStore]:
    schema = oracle_schema(
        SchemaConfig(
            conversations=TableConfig(
                "conversations",
                extra_columns={
                    "tenant_id": ColumnDef("VARCHAR2(64)", default_value="t-default"),
                    "score": ColumnDef("NUMBER"),
                },
            )
        )
    )
    connector = OracleConnector(_config(pool_min=0))
    try:
        yield SqlStore(connector, dialect_for(schema), schema)  # no I/O until open()
    finally:
        connector.close()


def test_hook_extra_keys_match_the_declared_name_in_any_case(store: SqlStore) -> None:
    table = store.schema.conversations
    assert [name for name, _ in table.sorted_extra_columns()] == ["SCORE", "TENANT_ID"]
    assert store.extras(table, {}, NO_EXTRA) == {"x0": None, "x1": "t-default"}
    assert store.extras(table, {}, {"tenant_id": "acme", "score": True}) == {"x0": 1, "x1": "acme"}
    assert store.extras(table, {}, {"tenant_id": "lower", "TENANT_ID": "upper"})["x1"] == "upper"


def test_store_uses_oracles_statements(store: SqlStore) -> None:
    assert store.sql.conv_insert.startswith('INSERT INTO "CONVERSATIONS" ("ID", "CREATED_AT", "METADATA", "SCORE"')
    assert store.sql.link_insert(1).startswith("INSERT ALL INTO ")


def test_an_empty_item_type_reads_back_empty(store: SqlStore) -> None:
    # Oracle stores '' as NULL; the row mapping gives back "".
    row = ("itm_1", None, None, None, '{"k":1}', None, datetime(2026, 1, 2, 3, 4, 5, 6))
    item = store.decode_item(row)
    assert item.item_type == ""
    assert item.content == {"k": 1}
    assert item.created_at == datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
