"""SchemaConfig / TableConfig / ColumnDef: upstream's schema.rs rules and messages."""

from __future__ import annotations

import pytest

from datacon import ColumnDef, SchemaConfig, StorageFactoryConfig, TableConfig
from datacon.errors import ConfigError


def _fails(schema: SchemaConfig, *fragments: str) -> None:
    with pytest.raises(ConfigError) as info:
        schema.validate()
    for fragment in fragments:
        assert fragment in str(info.value)


def test_defaults_match_upstream_names() -> None:
    schema = SchemaConfig()
    assert [t.table for t in schema.tables().values()] == [
        "conversations",
        "responses",
        "conversation_items",
        "conversation_item_links",
    ]
    assert schema.owner is None
    assert schema.version is None
    schema.validate()


def test_col_and_qualified_table() -> None:
    table = TableConfig("conversations", columns={"id": "conv_id"})
    assert table.col("id") == "conv_id"
    assert table.col("metadata") == "metadata"
    assert table.qualified_table(None) == "conversations"
    assert TableConfig("CONVERSATIONS").qualified_table("ADMIN") == 'ADMIN."CONVERSATIONS"'
    assert TableConfig.with_table("x").table == "x"


def test_uppercase_for_oracle() -> None:
    schema = SchemaConfig(
        conversations=TableConfig(
            "my_convos",
            columns={"id": "conv_id"},
            extra_columns={"expires_at": ColumnDef("TIMESTAMP")},
            skip_columns={"metadata"},
        )
    )
    upper = schema.uppercase_for_oracle()
    assert upper.conversations.table == "MY_CONVOS"
    assert upper.conversations.col("id") == "CONV_ID"
    assert list(upper.conversations.extra_columns) == ["EXPIRES_AT"]
    assert upper.conversations.skip_columns == frozenset({"metadata"})
    assert upper.responses.table == "RESPONSES"
    upper.validate()


def test_valid_identifiers_accepted() -> None:
    SchemaConfig(owner="ADMIN_01", conversations=TableConfig("CONVS", columns={"id": "ID_2"})).validate()


def test_empty_table_name_message() -> None:
    _fails(
        SchemaConfig(conversations=TableConfig("")),
        "conversations.table",
        "table name is required (got empty string \u2014 did you omit the 'table' key in your config?)",
    )


def test_overly_long_identifier() -> None:
    _fails(
        SchemaConfig(responses=TableConfig("a" * 129)), "responses.table", "exceeds maximum length of 128 characters"
    )
    SchemaConfig(responses=TableConfig("a" * 128)).validate()


def test_special_characters_rejected() -> None:
    _fails(
        SchemaConfig(conversations=TableConfig("table;DROP")),
        "conversations.table",
        "invalid identifier 'table;DROP' \u2014 only ASCII alphanumeric and underscores allowed",
    )


def test_dots_in_owner_rejected() -> None:
    _fails(SchemaConfig(owner="ADMIN.SCHEMA"), "owner", "invalid identifier")


def test_column_override_key_and_value() -> None:
    _fails(SchemaConfig(conversations=TableConfig("c", columns={"bad key": "x"})), "columns key", "invalid identifier")
    _fails(
        SchemaConfig(conversations=TableConfig("c", columns={"id": "bad-value"})), "columns value", "invalid identifier"
    )
    _fails(
        SchemaConfig(conversations=TableConfig("c", columns={"idd": "x"})),
        "columns key 'idd'",
        "not a recognized column",
    )


def test_extra_columns_rules() -> None:
    SchemaConfig(responses=TableConfig("r", extra_columns={"EXPIRES_AT": ColumnDef("TIMESTAMP")})).validate()
    _fails(
        SchemaConfig(responses=TableConfig("r", extra_columns={"bad name": ColumnDef("TEXT")})),
        "extra_columns key",
        "invalid identifier",
    )
    _fails(
        SchemaConfig(responses=TableConfig("r", extra_columns={"x": ColumnDef("")})),
        "responses.extra_columns['x']: sql_type must not be empty",
    )
    _fails(
        SchemaConfig(responses=TableConfig("r", extra_columns={"x": ColumnDef("   ")})),
        "sql_type must not be whitespace-only",
    )


@pytest.mark.parametrize(
    "sql_type",
    ["VARCHAR(128)", "TEXT", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "NUMBER(10,2)", "VARCHAR2(256)", "BIGINT"],
)
def test_valid_sql_types(sql_type: str) -> None:
    SchemaConfig(responses=TableConfig("r", extra_columns={"x": ColumnDef(sql_type)})).validate()


@pytest.mark.parametrize(
    "sql_type",
    [
        "NUMERIC(10, 2)",
        "numeric( 10 , 2 )",
        "double precision",
        "CHARACTER VARYING(20)",
        "TIMESTAMP(6) WITH TIME ZONE",
        "TIME WITHOUT TIME ZONE",
        "TIMESTAMP WITH LOCAL TIME ZONE",
        "INTERVAL DAY(2) TO SECOND(6)",
        "VARCHAR2(100 CHAR)",
        "LONG RAW",
        "TIMESTAMPTZ",
        "JSONB",
        "public.citext",
        "INT UNSIGNED",
    ],
)
def test_type_names_with_arguments_and_known_modifiers_are_accepted(sql_type: str) -> None:
    SchemaConfig(responses=TableConfig("r", extra_columns={"x": ColumnDef(sql_type)})).validate()


@pytest.mark.parametrize(
    ("sql_type", "why"),
    [
        ("INTEGER, injected_col INTEGER", "unexpected ', injected_col"),
        ("TEXT NOT NULL", "'NOT' is not a known type modifier"),
        ("TEXT DEFAULT 1", "'DEFAULT' is not a known type modifier"),
        ("INTEGER PRIMARY KEY", "'PRIMARY' is not a known type modifier"),
        ("TEXT UNIQUE", "'UNIQUE' is not a known type modifier"),
        ("TEXT COLLATE C", "'COLLATE' is not a known type modifier"),
        ("INTEGER CHECK (1)", "'CHECK' is not a known type modifier"),
        ("INTEGER REFERENCES t (id)", "'REFERENCES' is not a known type modifier"),
        ("INTEGER GENERATED ALWAYS", "'GENERATED' is not a known type modifier"),
        ("TEXT public.x", "'public.x' is not a known type modifier"),
        ("(10)", "an argument list must follow"),
        ("VARCHAR(10)(20)", "an argument list must follow"),
        ("VARCHAR(10) (5)", "an argument list must follow"),
        ("VARCHAR(a)", "unexpected '(a)'"),
        ("VARCHAR(1,2,3)", "unexpected '(1,2,3)'"),
        ("NUMERIC(10,", "unexpected '(10,'"),
        ("TEXT,", "unexpected ','"),
        ("x.y.z", "unexpected '.z'"),
        ("1TEXT", "unexpected '1TEXT'"),
    ],
)
def test_a_ddl_fragment_is_not_a_sql_type(sql_type: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        SchemaConfig(responses=TableConfig("r", extra_columns={"x": ColumnDef(sql_type)})).validate()
    message = str(info.value)
    assert "responses.extra_columns['x'].sql_type: invalid sql_type" in message
    assert why in message
    assert "expected a type name with optional (n) or (n, m) arguments" in message


def test_sql_injection_in_sql_type() -> None:
    _fails(
        SchemaConfig(responses=TableConfig("r", extra_columns={"x": ColumnDef("TEXT); DROP TABLE r; --")})),
        "responses.extra_columns['x'].sql_type",
        "invalid sql_type",
    )


def test_overly_long_sql_type() -> None:
    _fails(
        SchemaConfig(responses=TableConfig("r", extra_columns={"x": ColumnDef("A" * 65)})),
        "exceeds maximum length of 64 characters",
    )


def test_extra_column_shadowing_core_column() -> None:
    _fails(
        SchemaConfig(responses=TableConfig("r", extra_columns={"CREATED_AT": ColumnDef("TEXT")})),
        "shadows a core column",
    )
    _fails(
        SchemaConfig(conversations=TableConfig("c", extra_columns={"metadata": ColumnDef("TEXT")})),
        "shadows a core column",
    )


def test_case_colliding_extra_columns() -> None:
    _fails(
        SchemaConfig(
            responses=TableConfig("r", extra_columns={"tenant_id": ColumnDef("TEXT"), "TENANT_ID": ColumnDef("TEXT")})
        ),
        "case-insensitive collision",
    )


def test_skip_columns_rules() -> None:
    table = TableConfig("r", skip_columns={"safety_identifier"})
    assert table.is_skipped("safety_identifier")
    assert not table.is_skipped("model")
    SchemaConfig(responses=table).validate()
    _fails(SchemaConfig(responses=TableConfig("r", skip_columns={"bad name"})), "skip_columns", "invalid identifier")
    _fails(SchemaConfig(responses=TableConfig("r", skip_columns={"id"})), "cannot skip 'id'", "primary key")
    _fails(SchemaConfig(responses=TableConfig("r", skip_columns={"safty_identifier"})), "not a recognized column")


def test_validation_order_owner_first() -> None:
    _fails(SchemaConfig(owner="bad owner", conversations=TableConfig("")), "owner:")


def test_auto_migrate_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in [("true", True), ("TRUE", True), ("1", True), ("0", False), ("yes", False), ("", False)]:
        monkeypatch.setenv("DB_AUTO_MIGRATE", value)
        assert SchemaConfig().auto_migrate is expected
    monkeypatch.delenv("DB_AUTO_MIGRATE")
    assert SchemaConfig().auto_migrate is False


def test_schema_from_mapping_round_trip() -> None:
    config = StorageFactoryConfig.from_mapping(
        {
            "backend": "sqlite",
            "sqlite": {
                "path": "x.db",
                "schema": {
                    "version": 3,
                    "auto_migrate": True,
                    "conversations": {"table": "my_convs", "columns": {"id": "conv_id"}},
                    "responses": {
                        "table": "responses",
                        "extra_columns": {"TENANT_ID": {"sql_type": "VARCHAR(128)", "default_value": "acme"}},
                        "skip_columns": ["model"],
                    },
                },
            },
        }
    )
    assert config.sqlite is not None
    schema = config.sqlite.schema
    assert schema is not None
    assert schema.version == 3
    assert schema.auto_migrate is True
    assert schema.conversations.col("id") == "conv_id"
    assert schema.responses.extra_columns["TENANT_ID"] == ColumnDef("VARCHAR(128)", "acme")
    assert schema.responses.skip_columns == frozenset({"model"})
    assert schema.conversation_items.table == "conversation_items"  # omitted tables keep defaults


def test_table_block_without_table_key_fails_with_the_hint() -> None:
    config = StorageFactoryConfig.from_mapping(
        {"backend": "sqlite", "sqlite": {"path": "x.db", "schema": {"conversations": {"columns": {"id": "cid"}}}}}
    )
    assert config.sqlite is not None
    with pytest.raises(ConfigError, match="did you omit the 'table' key") as info:
        config.sqlite.validate()
    assert info.value.field == "sqlite.schema"


@pytest.mark.parametrize("column", ["conversation_id", "item_id", "added_at"])
def test_no_column_of_the_links_table_can_be_skipped(column: str) -> None:
    _fails(
        SchemaConfig(conversation_item_links=TableConfig("links", skip_columns={column})),
        f"conversation_item_links.skip_columns: '{column}' cannot be skipped",
        "the links table keeps all of its columns",
    )
