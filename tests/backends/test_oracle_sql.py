"""Oracle SQL and PL/SQL as rendered for every schema variation (no server needed).

Covers upstream's oracle_migrations.rs and the Oracle tests of versioning.rs, the exact
text of every statement for the default schema, what owners, renames, extra and skipped
columns and uppercasing change, and a parse of every statement with sqlglot's Oracle
dialect. sqlglot cannot parse PL/SQL blocks: for those (CREATE TABLE / CREATE INDEX
guards, migrations, the version insert) the block's shape is checked and the statement
inside it (the ``EXECUTE IMMEDIATE`` text, the catalog query, the INSERT) is parsed.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import attrs
import pytest
import sqlglot

from datacon import ColumnDef, SchemaConfig, TableConfig
from datacon.backends._sql import LATEST, MIGRATIONS, Statements, migration_message, render
from datacon.backends._sql.migrations import version_insert_sql
from datacon.backends._sql.render import sequence_type
from datacon.backends.oracle import dialect_for, oracle_schema
from datacon.backends.oracle.dialect import OracleDialect, plsql_ignoring, versions_table
from datacon.errors import ConfigError
from tests.support import RENAMED_SCHEMA

DEFAULT = oracle_schema(None)
D = dialect_for(DEFAULT)
S = render(DEFAULT, D)


def _rendered(schema: SchemaConfig | None) -> tuple[SchemaConfig, OracleDialect, Statements]:
    uppercased = oracle_schema(schema)
    dialect = dialect_for(uppercased)
    return uppercased, dialect, render(uppercased, dialect)


def _up(version: int, schema: SchemaConfig | None = None) -> list[str]:
    uppercased = oracle_schema(schema)
    return MIGRATIONS[version - 1].up(uppercased, dialect_for(uppercased), None)


def _responses(**table: Any) -> SchemaConfig:
    return SchemaConfig(responses=TableConfig("responses", **table))


def _guard(statement: str, code: int) -> str:
    return (
        f"BEGIN EXECUTE IMMEDIATE '{statement}'; EXCEPTION WHEN OTHERS THEN IF SQLCODE != {code} THEN RAISE; "
        "END IF; END;"
    )


# --- upstream's oracle_migrations.rs -----------------------------------------------------------


def test_oracle_history_migrations_cover_only_core_history_schema() -> None:
    assert [m.version for m in MIGRATIONS] == [1, 2, 3, 4, 5, 6, 7]
    assert LATEST == 7


def test_oracle_migrations_are_strictly_increasing() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert all(a < b for a, b in itertools.pairwise(versions))


def test_oracle_v1_up_generates_plsql_add_column() -> None:
    (statement,) = _up(1)
    assert "ADD" in statement
    assert "SQLCODE" in statement
    assert statement == _guard('ALTER TABLE "RESPONSES" ADD ("SAFETY_IDENTIFIER" VARCHAR2(128))', -1430)


def test_oracle_v1_up_skipped_returns_empty() -> None:
    assert _up(1, _responses(skip_columns={"safety_identifier"})) == []


def test_oracle_v2_up_generates_plsql_drop_column() -> None:
    (statement,) = _up(2)
    assert "DROP" in statement
    assert "USER_ID" in statement
    assert statement == _guard('ALTER TABLE "RESPONSES" DROP ("USER_ID")', -904)


def test_oracle_v2_up_skipped_when_column_maps_to_user_id() -> None:
    assert _up(2, _responses(columns={"safety_identifier": "USER_ID"})) == []
    assert _up(2, _responses(columns={"model": "user_id"})) == []  # uppercased, same column


def test_oracle_v2_up_skipped_when_extra_column_is_user_id() -> None:
    assert _up(2, _responses(extra_columns={"USER_ID": ColumnDef("VARCHAR2(64)")})) == []


def test_oracle_v3_up_generates_per_column_plsql_drops() -> None:
    statements = _up(3)
    assert statements == [
        _guard(f'ALTER TABLE "RESPONSES" DROP ("{column}")', -904)
        for column in ("OUTPUT", "METADATA", "INSTRUCTIONS", "TOOL_CALLS")
    ]
    assert all("SQLCODE" in s for s in statements)


def test_oracle_v3_up_skips_when_output_is_used_by_another_field() -> None:
    statements = _up(3, _responses(columns={"safety_identifier": "output"}))
    assert len(statements) == 3
    assert not any('DROP ("OUTPUT")' in s for s in statements)
    assert 'DROP ("METADATA")' in statements[0]


def test_oracle_v3_keeps_an_extra_column_and_drops_a_mapped_name() -> None:
    kept = _up(3, _responses(extra_columns={"metadata": ColumnDef("CLOB")}))
    assert [re.search(r'DROP \("(\w+)"\)', s).group(1) for s in kept] == ["OUTPUT", "INSTRUCTIONS", "TOOL_CALLS"]  # type: ignore[union-attr]
    # A column named output that is not in use is dropped under its own name.
    assert 'DROP ("OUTPUT")' in _up(3, _responses(columns={"model": "resp_model"}))[0]


_IDENTIFIER = re.compile(r'"([^"]*)"|\b([A-Za-z_][A-Za-z0-9_$#]*)\b')
_STRING = re.compile(r"'(?:[^']|'')*'")


def identifiers(sql: str) -> list[str]:
    """Every identifier-like token of ``sql``, inside EXECUTE IMMEDIATE strings too.

    String literals are opened (their SQL is what Oracle parses); other literals such as
    '+00:00' or 'Y' hold no identifiers and are dropped by the same step.
    """
    tokens: list[str] = []
    for literal in _STRING.findall(sql):
        tokens += identifiers(literal[1:-1].replace("''", "'"))
    for quoted, bare in _IDENTIFIER.findall(_STRING.sub(" ", sql)):
        tokens.append(quoted or bare)
    return tokens


@pytest.mark.parametrize("schema", [None, RENAMED_SCHEMA, attrs.evolve(RENAMED_SCHEMA, owner="app_owner")])
def test_all_oracle_migration_identifiers_are_within_30_chars(schema: SchemaConfig | None) -> None:
    # Oracle before 12.2 refuses longer identifiers (ORA-00972).
    for migration in MIGRATIONS:
        for statement in _up(migration.version, schema):
            tokens = identifiers(statement)
            assert "SQLCODE" in tokens
            # Only the index v4 drops may be longer: its name is upstream's, as it exists.
            assert [t for t in tokens if len(t) > 30 and not t.endswith("_CONV_IDX")] == []


def test_identifier_length_guard_catches_planted_violation() -> None:
    planted = "A" * 31
    statement = plsql_ignoring(f'ALTER TABLE "RESPONSES" DROP ("{planted}")', -904)
    assert planted in identifiers(statement)
    assert [t for t in identifiers(f"ALTER TABLE {planted.lower()} ADD (x NUMBER)") if len(t) > 30] == [planted.lower()]


# --- the Oracle tests of upstream's versioning.rs ------------------------------------------


def test_oracle_versions_table_name_is_always_quoted() -> None:
    assert versions_table(None) == '"_schema_versions"'
    assert versions_table("ADMIN") == 'ADMIN."_schema_versions"'
    assert dialect_for(oracle_schema(SchemaConfig(owner="admin"))).versions_table == 'ADMIN."_schema_versions"'


def test_oracle_versions_table_ddl_without_owner() -> None:
    assert S.create_versions == (
        'BEGIN EXECUTE IMMEDIATE \'CREATE TABLE "_schema_versions" (version NUMBER(10) NOT NULL PRIMARY KEY, '
        "description VARCHAR2(512), applied_at TIMESTAMP DEFAULT SYSTIMESTAMP NOT NULL)'; "
        "EXCEPTION WHEN OTHERS THEN IF SQLCODE != -955 THEN RAISE; END IF; END;"
    )
    assert "PRIMARY KEY" in D.versions_columns()


def test_oracle_versions_table_ddl_with_owner() -> None:
    _, dialect, statements = _rendered(SchemaConfig(owner="ADMIN"))
    assert dialect.versions_table == 'ADMIN."_schema_versions"'
    assert 'CREATE TABLE ADMIN."_schema_versions" (' in statements.create_versions
    assert statements.max_version == 'SELECT COALESCE(MAX(version), 0) FROM ADMIN."_schema_versions"'
    assert statements.insert_version == (
        'BEGIN INSERT INTO ADMIN."_schema_versions" (version, description) VALUES (:version, :description); '
        "EXCEPTION WHEN DUP_VAL_ON_INDEX THEN NULL; END;"
    )


def test_migration_up_respects_schema_config() -> None:
    schema = SchemaConfig(owner="ADMIN", responses=TableConfig("my_responses"))
    (statement,) = _up(1, schema)
    assert 'ALTER TABLE ADMIN."MY_RESPONSES" ADD' in statement


def test_pending_migrations_message_names_the_oracle_versions_table() -> None:
    schema = oracle_schema(SchemaConfig(owner="ADMIN"))
    dialect = dialect_for(schema)
    plans = [(m, m.up(schema, dialect, None)) for m in MIGRATIONS[1:]]
    message, statements = migration_message(dialect, 1, plans)
    assert "current version: 1" in message
    assert "latest version: 7" in message
    assert "v2: Remove legacy user_id column from responses" in message
    assert (
        'INSERT INTO ADMIN."_schema_versions" (version, description) '
        "VALUES (3, 'Drop redundant output, metadata, instructions, tool_calls columns from responses')"
    ) in statements
    assert "in your oracle schema config" in message
    assert "version: 7" in message
    assert version_insert_sql(dialect, MIGRATIONS[1]) in statements
    assert statements[0] == _guard('ALTER TABLE ADMIN."RESPONSES" DROP ("USER_ID")', -904)
    # Each statement on its own line with one terminator (a PL/SQL block ends with END;).
    assert f"    {statements[0]}\n" in message
    assert "END;;" not in message
    assert f"    {statements[-1]};\n" in message


# --- every statement for the default schema ------------------------------------------------

CONV_COLS = '"ID", SYS_EXTRACT_UTC("CREATED_AT"), "METADATA"'
RESP_COLS = (
    '"ID", "CONVERSATION_ID", "PREVIOUS_RESPONSE_ID", "INPUT", SYS_EXTRACT_UTC("CREATED_AT"), '
    '"SAFETY_IDENTIFIER", "MODEL", "RAW_RESPONSE"'
)


def _index(name: str, table: str, columns: str, owner: str | None = None) -> str:
    catalog = (
        f"all_indexes WHERE owner = '{owner}' AND index_name = '{name}'"
        if owner
        else f"user_indexes WHERE index_name = '{name}'"
    )
    prefix = f"{owner}." if owner else ""
    return (
        f"DECLARE n NUMBER; BEGIN SELECT COUNT(*) INTO n FROM {catalog}; "
        f'IF n = 0 THEN EXECUTE IMMEDIATE \'CREATE INDEX {prefix}"{name}" ON {prefix}"{table}" ({columns})\'; '
        "END IF; EXCEPTION WHEN OTHERS THEN IF SQLCODE NOT IN (-955, -1408, -904) THEN RAISE; END IF; END;"
    )


def test_default_tables_are_upstreams_oracle_ddl() -> None:
    tstz = "TIMESTAMP(6) WITH TIME ZONE"
    assert S.create_tables == (
        _guard(
            f'CREATE TABLE "CONVERSATIONS" ("ID" VARCHAR2(64) PRIMARY KEY, "CREATED_AT" {tstz}, "METADATA" CLOB)', -955
        ),
        _guard(
            'CREATE TABLE "CONVERSATION_ITEMS" ("ID" VARCHAR2(64) PRIMARY KEY, "RESPONSE_ID" VARCHAR2(64), '
            '"ITEM_TYPE" VARCHAR2(32), "ROLE" VARCHAR2(32), "CONTENT" CLOB, "STATUS" VARCHAR2(32), '
            f'"CREATED_AT" {tstz})',
            -955,
        ),
        _guard(
            'CREATE TABLE "CONVERSATION_ITEM_LINKS" ("CONVERSATION_ID" VARCHAR2(64) NOT NULL, '
            f'"ITEM_ID" VARCHAR2(64) NOT NULL, "ADDED_AT" {tstz}, "SEQ" NUMBER(19) DEFAULT 0 NOT NULL, '
            'CONSTRAINT "PK_CONVERSATION_ITEM_LINKS" PRIMARY KEY ("CONVERSATION_ID", "ITEM_ID"))',
            -955,
        ),
        _guard(
            'CREATE TABLE "RESPONSES" ("ID" VARCHAR2(64) PRIMARY KEY, "CONVERSATION_ID" VARCHAR2(64), '
            f'"PREVIOUS_RESPONSE_ID" VARCHAR2(64), "INPUT" CLOB, "CREATED_AT" {tstz}, '
            '"SAFETY_IDENTIFIER" VARCHAR2(128), "MODEL" VARCHAR2(128), "RAW_RESPONSE" CLOB)',
            -955,
        ),
    )
    assert S.create_indexes == (
        _index(
            "CONVERSATION_ITEM_LINKS_SEQ_IX",
            "CONVERSATION_ITEM_LINKS",
            '"CONVERSATION_ID", "ADDED_AT", "SEQ", "ITEM_ID"',
        ),
        _index("RESPONSES_PREV_IDX", "RESPONSES", '"PREVIOUS_RESPONSE_ID"'),
        _index("RESPONSES_USER_IDX", "RESPONSES", '"SAFETY_IDENTIFIER"'),
        # list_conversations (SPEC §7.5; not in upstream).
        _index("CONVERSATIONS_LIST_IDX", "CONVERSATIONS", '"CREATED_AT", "ID"'),
        # prune and erase_identifier (SPEC §7.7, migration v5).
        _index("CONVERSATION_ITEMS_CRT_IX", "CONVERSATION_ITEMS", '"CREATED_AT", "ID"'),
        _index("RESPONSES_CRT_IX", "RESPONSES", '"CREATED_AT", "ID"'),
        _index("CONVERSATION_ITEM_LINKS_ITM_IX", "CONVERSATION_ITEM_LINKS", '"ITEM_ID"'),
        _index("RESPONSES_CNV_IX", "RESPONSES", '"CONVERSATION_ID"'),
    )
    # Existence is probed in the current user's tables, by the catalog (uppercase) name.
    assert S.table_probes == ("CONVERSATIONS", "CONVERSATION_ITEMS", "CONVERSATION_ITEM_LINKS", "RESPONSES")
    assert D.table_exists_sql() == "SELECT 1 FROM user_tables WHERE table_name = :name"
    assert D.table_name_for_probe(D.versions_table) == "_schema_versions"
    assert not D.create_if_not_exists


def test_default_conversation_statements() -> None:
    assert S.conv_insert == (
        'INSERT INTO "CONVERSATIONS" ("ID", "CREATED_AT", "METADATA") '
        "VALUES (:id, FROM_TZ(:created_at, '+00:00'), :metadata)"
    )
    assert S.conv_select == f'SELECT {CONV_COLS} FROM "CONVERSATIONS" WHERE "ID" = :id'
    assert S.conv_update == (
        'UPDATE "CONVERSATIONS" SET "METADATA" = :metadata WHERE "ID" = :id '
        'RETURNING SYS_EXTRACT_UTC("CREATED_AT") INTO :returned'
    )
    assert S.conv_delete == (
        'DELETE FROM "CONVERSATION_ITEM_LINKS" WHERE "CONVERSATION_ID" = :id',
        'DELETE FROM "CONVERSATIONS" WHERE "ID" = :id',
    )


def test_default_item_and_link_statements() -> None:
    assert S.item_insert == (
        'INSERT INTO "CONVERSATION_ITEMS" ("ID", "RESPONSE_ID", "ITEM_TYPE", "ROLE", "CONTENT", "STATUS", '
        '"CREATED_AT") VALUES (:id, :response_id, :item_type, :role, :content, :status, '
        "FROM_TZ(:created_at, '+00:00'))"
    )
    assert S.item_select == (
        'SELECT "ID", "RESPONSE_ID", "ITEM_TYPE", "ROLE", "CONTENT", "STATUS", SYS_EXTRACT_UTC("CREATED_AT") '
        'FROM "CONVERSATION_ITEMS" WHERE "ID" = :id'
    )
    where = '"CONVERSATION_ID" = :cid AND "ITEM_ID" = :iid'
    assert S.link_exists == f'SELECT 1 FROM "CONVERSATION_ITEM_LINKS" WHERE {where}'
    assert S.link_delete == f'DELETE FROM "CONVERSATION_ITEM_LINKS" WHERE {where}'
    assert S.item_delete_unlinked == (  # the adapters' unlink_items: a record no link names
        'DELETE FROM "CONVERSATION_ITEMS" WHERE "ID" = :id AND NOT EXISTS '
        '(SELECT 1 FROM "CONVERSATION_ITEM_LINKS" u WHERE u."ITEM_ID" = :lid)'
    )
    into = 'INTO "CONVERSATION_ITEM_LINKS" ("CONVERSATION_ID", "ITEM_ID", "ADDED_AT", "SEQ") VALUES '

    def row(n: int) -> str:
        at = f"FROM_TZ(:a{n}, '+00:00')"
        highest = (
            'SELECT MAX(s."SEQ") FROM "CONVERSATION_ITEM_LINKS" s '
            f'WHERE s."CONVERSATION_ID" = :scid AND s."ADDED_AT" = {at}'
        )
        return f"{into}(:cid, :i{n}, {at}, COALESCE(({highest}), 0) + :q{n})"

    assert S.link_insert(1) == f"INSERT ALL {row(0)} SELECT 1 FROM DUAL"
    assert S.link_insert(3) == f"INSERT ALL {row(0)} {row(1)} {row(2)} SELECT 1 FROM DUAL"
    assert S.link_insert(3) is S.link_insert(3)  # rendered once per row count


@pytest.mark.parametrize(("ascending", "cmp", "order"), [(True, ">", "ASC"), (False, "<", "DESC")])
def test_default_list_items_is_one_keyset_query(ascending: bool, cmp: str, order: str) -> None:
    expected = (
        'SELECT i."ID", i."RESPONSE_ID", i."ITEM_TYPE", i."ROLE", i."CONTENT", i."STATUS", '
        'SYS_EXTRACT_UTC(i."CREATED_AT"), SYS_EXTRACT_UTC(l."ADDED_AT"), l."SEQ" FROM "CONVERSATION_ITEM_LINKS" l '
        'JOIN "CONVERSATION_ITEMS" i ON i."ID" = l."ITEM_ID" '
        'LEFT JOIN "CONVERSATION_ITEM_LINKS" c ON c."CONVERSATION_ID" = :cid AND c."ITEM_ID" = :after '
        'WHERE l."CONVERSATION_ID" = :cid '
        f'AND (c."ITEM_ID" IS NULL OR (l."ADDED_AT" {cmp} c."ADDED_AT" OR (l."ADDED_AT" = c."ADDED_AT" AND '
        f'(l."SEQ" {cmp} c."SEQ" OR (l."SEQ" = c."SEQ" AND l."ITEM_ID" {cmp} c."ITEM_ID"))))) '
        f'ORDER BY l."ADDED_AT" {order}, l."SEQ" {order}, l."ITEM_ID" {order} FETCH NEXT :limit ROWS ONLY'
    )
    assert (S.list_asc if ascending else S.list_desc) == expected


def test_default_response_statements() -> None:
    assert S.resp_insert == (
        'INSERT INTO "RESPONSES" ("ID", "CONVERSATION_ID", "PREVIOUS_RESPONSE_ID", "INPUT", "CREATED_AT", '
        '"SAFETY_IDENTIFIER", "MODEL", "RAW_RESPONSE") VALUES (:id, :conversation_id, :previous_response_id, '
        ":input, FROM_TZ(:created_at, '+00:00'), :safety_identifier, :model, :raw_response)"
    )
    assert S.resp_select == f'SELECT {RESP_COLS} FROM "RESPONSES" WHERE "ID" = :id'
    assert S.resp_delete == 'DELETE FROM "RESPONSES" WHERE "ID" = :id'
    newest = (
        f'SELECT {RESP_COLS} FROM "RESPONSES" WHERE "SAFETY_IDENTIFIER" = :sid ORDER BY "CREATED_AT" DESC, "ID" DESC'
    )
    assert S.ident_list == newest
    assert S.ident_list_limit == f"{newest} FETCH NEXT :limit ROWS ONLY"
    assert S.ident_delete == 'DELETE FROM "RESPONSES" WHERE "SAFETY_IDENTIFIER" = :sid'


@pytest.mark.parametrize("bounded", [False, True])
def test_default_chain_is_one_recursive_query_with_a_cycle_clause(bounded: bool) -> None:
    depth = " WHERE c.depth < :max_depth" if bounded else ""
    assert (S.chain_depth if bounded else S.chain_all) == (
        'WITH chain (rid, prev, depth) AS (SELECT "ID", "PREVIOUS_RESPONSE_ID", 1 FROM "RESPONSES" WHERE "ID" = :id '
        'UNION ALL SELECT r."ID", r."PREVIOUS_RESPONSE_ID", c.depth + 1 FROM "RESPONSES" r '
        f'JOIN chain c ON r."ID" = c.prev{depth}) '
        "CYCLE rid SET is_cycle TO 'Y' DEFAULT 'N' "
        f'SELECT {RESP_COLS} FROM "RESPONSES" WHERE "ID" IN (SELECT rid FROM chain)'
    )


def test_versions_statements_without_owner() -> None:
    assert S.max_version == 'SELECT COALESCE(MAX(version), 0) FROM "_schema_versions"'
    assert S.insert_version == (
        'BEGIN INSERT INTO "_schema_versions" (version, description) VALUES (:version, :description); '
        "EXCEPTION WHEN DUP_VAL_ON_INDEX THEN NULL; END;"
    )


# --- what the schema variations change ------------------------------------------------------


def _all_sql(statements: Statements) -> list[str]:
    single = [
        statements.create_versions,
        statements.insert_version,
        statements.max_version,
        statements.conv_insert,
        statements.conv_select,
        statements.conv_update,
        statements.item_insert,
        statements.item_select,
        statements.link_exists,
        statements.link_delete,
        statements.item_delete_unlinked,
        statements.list_asc,
        statements.list_desc,
        statements.resp_insert,
        statements.resp_select,
        statements.resp_delete,
        statements.chain_all,
        statements.chain_depth,
        statements.link_insert(2),
    ]
    optional = [statements.ident_list, statements.ident_list_limit, statements.ident_delete]
    return [
        *single,
        statements.link_restore(1),
        statements.link_restore(2),
        *statements.export.values(),
        *statements.create_tables,
        *statements.create_indexes,
        *statements.create_idempotency,
        statements.idem_free,
        statements.idem_claim,
        statements.idem_select,
        statements.idem_sweep,
        *statements.conv_delete,
        *[s for s in optional if s is not None],
    ]


def test_owner_qualifies_every_table_index_and_catalog_probe() -> None:
    _, dialect, statements = _rendered(SchemaConfig(owner="app"))
    tables = (
        "CONVERSATIONS",
        "CONVERSATION_ITEMS",
        "CONVERSATION_ITEM_LINKS",
        "RESPONSES",
        "_schema_versions",
        "_IDEMPOTENCY_KEYS",
    )
    for sql in _all_sql(statements):
        # Every quoted table name that appears is preceded by the (uppercased) owner.
        for table in tables:
            assert sql.count(f'"{table}"') == sql.count(f'APP."{table}"'), sql
    assert dialect.table_exists_sql() == "SELECT 1 FROM all_tables WHERE owner = 'APP' AND table_name = :name"
    assert statements.create_indexes[0] == _index(
        "CONVERSATION_ITEM_LINKS_SEQ_IX",
        "CONVERSATION_ITEM_LINKS",
        '"CONVERSATION_ID", "ADDED_AT", "SEQ", "ITEM_ID"',
        owner="APP",
    )
    assert statements.conv_select == f'SELECT {CONV_COLS} FROM APP."CONVERSATIONS" WHERE "ID" = :id'
    assert statements.table_probes == S.table_probes  # bare names; the owner is in the probe query


def test_renames_reach_every_statement() -> None:
    schema, _, statements = _rendered(RENAMED_SCHEMA)
    assert (
        statements.conv_select
        == 'SELECT "CONV_ID", SYS_EXTRACT_UTC("CREATED_AT"), "CONV_META" FROM "DC_CONVS" WHERE "CONV_ID" = :id'
    )
    assert statements.conv_update == (
        'UPDATE "DC_CONVS" SET "CONV_META" = :metadata WHERE "CONV_ID" = :id '
        'RETURNING SYS_EXTRACT_UTC("CREATED_AT") INTO :returned'
    )
    assert statements.conv_delete == (
        'DELETE FROM "DC_LINKS" WHERE "CONV_REF" = :id',
        'DELETE FROM "DC_CONVS" WHERE "CONV_ID" = :id',
    )
    assert statements.ident_delete == 'DELETE FROM "DC_RESPS" WHERE "USER_IDENT" = :sid'
    assert 'l."LINKED_AT" > c."LINKED_AT"' in statements.list_asc
    assert 'c."CONV_REF" = :cid' in statements.list_asc
    assert statements.create_indexes == (
        _index("DC_LINKS_SEQ_IX", "DC_LINKS", '"CONV_REF", "LINKED_AT", "SEQ", "ITEM_ID"'),
        _index("DC_RESPS_PREV_IDX", "DC_RESPS", '"PREVIOUS_RESPONSE_ID"'),
        _index("DC_RESPS_USER_IDX", "DC_RESPS", '"USER_IDENT"'),
        _index("DC_CONVS_LIST_IDX", "DC_CONVS", '"CREATED_AT", "CONV_ID"'),
        _index("DC_CONVS_TENANT_ID_LIST_IDX", "DC_CONVS", '"TENANT_ID", "CREATED_AT", "CONV_ID"'),
        _index("DC_ITEMS_CRT_IX", "DC_ITEMS", '"CREATED_AT", "ID"'),
        _index("DC_RESPS_CRT_IX", "DC_RESPS", '"CREATED_AT", "ID"'),
        _index("DC_LINKS_ITM_IX", "DC_LINKS", '"ITEM_ID"'),
        _index("DC_RESPS_CNV_IX", "DC_RESPS", '"CONVERSATION_ID"'),
    )
    assert 'CONSTRAINT "PK_DC_LINKS" PRIMARY KEY ("CONV_REF", "ITEM_ID")' in statements.create_tables[2]
    # Logical names stay the bind names the generic storages use.
    assert statements.conv_fields == ("id", "created_at", "metadata")
    assert schema.conversations.col("metadata") == "CONV_META"


def test_extra_columns_are_in_ddl_and_writes_sorted_and_never_read() -> None:
    _, _, statements = _rendered(RENAMED_SCHEMA)
    assert statements.create_tables[3].endswith(
        '"RAW_JSON" CLOB, "SCORE" INTEGER, "STORED_BY" VARCHAR(64))\'; '
        "EXCEPTION WHEN OTHERS THEN IF SQLCODE != -955 THEN RAISE; END IF; END;"
    )
    assert statements.resp_insert == (
        'INSERT INTO "DC_RESPS" ("ID", "CONVERSATION_ID", "PREVIOUS_RESPONSE_ID", "INPUT", "CREATED_AT", '
        '"USER_IDENT", "RAW_JSON", "SCORE", "STORED_BY") VALUES (:id, :conversation_id, :previous_response_id, '
        ":input, FROM_TZ(:created_at, '+00:00'), :safety_identifier, :raw_response, :x0, :x1)"
    )
    assert statements.conv_insert.endswith("(:id, FROM_TZ(:created_at, '+00:00'), :metadata, :x0)")
    into = 'INTO "DC_LINKS" ("CONV_REF", "ITEM_ID", "LINKED_AT", "SEQ", "TENANT_ID") VALUES '
    assert statements.link_insert(2).startswith(f"INSERT ALL {into}(:cid, :i0, FROM_TZ(:a0, '+00:00'), COALESCE((")
    assert statements.link_insert(2).count(into) == 2
    assert statements.link_insert(2).count("0) + :q1, :x0)") == 1
    for select in (statements.conv_select, statements.item_select, statements.resp_select, statements.list_asc):
        assert "TENANT_ID" not in select
        assert "SCORE" not in select


def test_insert_all_rows_fit_oracles_999_column_limit() -> None:
    assert D.max_rows_per_insert == 249  # four columns a row: the sequence is the fourth
    links = TableConfig("conversation_item_links", extra_columns={f"x{n}": ColumnDef("NUMBER") for n in range(6)})
    dialect = dialect_for(oracle_schema(SchemaConfig(conversation_item_links=links)))
    assert dialect.max_rows_per_insert == 999 // 10
    assert 9 * dialect.max_rows_per_insert <= 999


def test_skipped_columns_leave_ddl_writes_and_reads() -> None:
    skips = SchemaConfig(
        conversations=TableConfig("conversations", skip_columns={"created_at"}),
        responses=TableConfig(
            "responses", skip_columns={"previous_response_id", "safety_identifier", "model", "created_at"}
        ),
        conversation_items=TableConfig("conversation_items", skip_columns={"status", "content"}),
    )
    _, _, statements = _rendered(skips)
    assert '"CREATED_AT"' not in statements.create_tables[0]
    assert statements.conv_select == 'SELECT "ID", "METADATA" FROM "CONVERSATIONS" WHERE "ID" = :id'
    # No created_at to return: the UPDATE's row count says whether the conversation exists.
    assert statements.conv_update == 'UPDATE "CONVERSATIONS" SET "METADATA" = :metadata WHERE "ID" = :id'
    assert statements.item_fields == ("id", "response_id", "item_type", "role", "created_at")
    assert '"STATUS"' not in statements.create_tables[1]
    assert '"CONTENT"' not in statements.item_insert
    assert statements.resp_fields == ("id", "conversation_id", "input", "raw_response")
    assert statements.chain_all == statements.resp_select == statements.chain_depth
    assert statements.ident_list is None
    assert statements.ident_list_limit is None
    assert statements.ident_delete is None
    # links and list_conversations, then three retention indexes (items by created_at, links by
    # item, responses by conversation; the responses' created_at is skipped); no PREV_IDX, no USER_IDX.
    assert len(statements.create_indexes) == 5
    # The links table ignores skip_columns: it always has its three columns.
    assert '"ADDED_AT" TIMESTAMP(6) WITH TIME ZONE' in statements.create_tables[2]
    # Nothing to update when metadata is skipped: the conversation's created_at is read (as
    # every other dialect does). Oracle's own renderer selected "ID" here, which the store
    # then decoded as a timestamp (a TypeError); the shared renderer fixed that.
    skip_metadata = SchemaConfig(conversations=TableConfig("conversations", skip_columns={"metadata"}))
    assert _rendered(skip_metadata)[2].conv_update == (
        'SELECT SYS_EXTRACT_UTC("CREATED_AT") FROM "CONVERSATIONS" WHERE "ID" = :id'
    )
    skip_both = SchemaConfig(conversations=TableConfig("conversations", skip_columns={"metadata", "created_at"}))
    assert _rendered(skip_both)[2].conv_update == 'SELECT "ID" FROM "CONVERSATIONS" WHERE "ID" = :id'


def test_uppercasing_runs_before_validation_and_keeps_skips() -> None:
    schema = oracle_schema(
        SchemaConfig(
            conversations=TableConfig(
                "my_convos",
                columns={"id": "conv_id"},
                extra_columns={"expires_at": ColumnDef("TIMESTAMP")},
                skip_columns={"metadata"},
            )
        )
    )
    assert schema.conversations.table == "MY_CONVOS"
    assert schema.conversations.col("id") == "CONV_ID"
    assert list(schema.conversations.extra_columns) == ["EXPIRES_AT"]
    assert schema.conversations.skip_columns == {"metadata"}
    statements = render(schema, dialect_for(schema))
    assert statements.conv_insert == (
        'INSERT INTO "MY_CONVOS" ("CONV_ID", "CREATED_AT", "EXPIRES_AT") '
        "VALUES (:id, FROM_TZ(:created_at, '+00:00'), :x0)"
    )
    with pytest.raises(ConfigError, match="invalid identifier"):
        oracle_schema(SchemaConfig(conversations=TableConfig("bad;name")))


# --- parse checks --------------------------------------------------------------------------

VARIANTS = {
    "default": None,
    "renamed": RENAMED_SCHEMA,
    "owner": attrs.evolve(RENAMED_SCHEMA, owner="app"),
    "skips": SchemaConfig(
        conversations=TableConfig("conversations", skip_columns={"created_at"}),
        responses=TableConfig("responses", skip_columns={"safety_identifier", "previous_response_id"}),
    ),
}
_PLSQL = re.compile(
    r"^(?:DECLARE n NUMBER; )?BEGIN (?P<body>.+?) EXCEPTION WHEN (?:OTHERS|DUP_VAL_ON_INDEX) THEN "
    r"(?:IF SQLCODE (?:!= -\d+|NOT IN \(-\d+(?:, -\d+)*\)) THEN RAISE; END IF;|NULL;) END;$"
)
_EXECUTE = re.compile(r"EXECUTE IMMEDIATE '((?:[^']|'')*)'")


# sqlglot writes these type synonyms (used by RENAMED_SCHEMA's extra columns) its own way.
_SYNONYMS = {"VARCHAR(": "VARCHAR2(", " INTEGER": " INT"}


def _squash(sql: str) -> str:
    return re.sub(r"\s+", "", sql)


def _parse_exactly(sql: str, ignore: str = "") -> None:
    """sqlglot parses ``sql`` as Oracle and gives back the same text (whitespace and type
    synonyms aside), so no clause was dropped or misread."""
    tree = sqlglot.parse_one(sql, read="oracle", error_level=sqlglot.ErrorLevel.RAISE)
    expected = sql.replace(ignore, "") if ignore else sql
    for synonym, canonical in _SYNONYMS.items():
        expected = expected.replace(synonym, canonical)
    assert _squash(tree.sql(dialect="oracle")) == _squash(expected), sql


def _check_plsql(block: str) -> None:
    """A PL/SQL block of the shapes datacon emits; the SQL inside it parses."""
    match = _PLSQL.match(block)
    assert match is not None, block
    assert block.count("'") % 2 == 0
    assert len(re.findall(r"\bBEGIN\b", block)) == 1
    body = match.group("body")
    inner = _EXECUTE.findall(body)
    for literal in inner:
        _parse_exactly(literal.replace("''", "'"))
    rest = _EXECUTE.sub("", body)
    if body.startswith("SELECT COUNT(*) INTO n FROM"):
        query = rest.split(";")[0]
        sqlglot.parse_one(query, read="oracle", error_level=sqlglot.ErrorLevel.RAISE)
        assert "IF n = 0 THEN ; END IF;" in rest
    elif body.startswith("INSERT INTO"):
        _parse_exactly(body.rstrip(";"))
    else:
        assert len(inner) == 1, block
        assert rest == ";", block


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_statement_parses_as_oracle(variant: str) -> None:
    """Parse-checked with sqlglot, text for text: every SELECT, INSERT (incl. INSERT ALL),
    UPDATE, DELETE and the recursive WITH ... CYCLE query, and the CREATE TABLE / CREATE
    INDEX / ALTER TABLE statements inside the PL/SQL blocks, plus the index guards' catalog
    query and the version INSERT. The PL/SQL blocks themselves are checked for shape (one
    BEGIN, EXCEPTION handler, balanced quotes). ``RETURNING ... INTO :returned`` is parsed
    with its INTO clause ignored (sqlglot does not model it)."""
    schema, dialect, statements = _rendered(VARIANTS[variant])
    migrations = [s for m in MIGRATIONS for s in m.up(schema, dialect, None)]
    checked = 0
    for sql in [*_all_sql(statements), *migrations]:
        if sql.startswith(("BEGIN", "DECLARE")):
            _check_plsql(sql)
        else:
            _parse_exactly(sql, ignore=" INTO :returned" if " INTO :returned" in sql else "")
        checked += 1
    assert checked >= 30
    for probe in (dialect.table_exists_sql(), dialect.columns_sql()):
        _parse_exactly(probe)


def test_plsql_check_rejects_a_broken_block() -> None:
    with pytest.raises(AssertionError):
        _check_plsql("BEGIN EXECUTE IMMEDIATE 'CREATE TABLE x (a NUMBER'; END;")
    with pytest.raises(sqlglot.errors.ParseError):
        _check_plsql(plsql_ignoring("CREATE TABLE x (a NUMBER", -955))


def test_idempotency_key_statements() -> None:
    """SPEC 7.3 on Oracle: the keys table (guarded DDL, owner-qualified), a MERGE that claims
    a key unless it is taken, and the sweep of expired keys through the expires_at index."""
    _, _, owned = _rendered(SchemaConfig(owner="app"))
    table = 'APP."_IDEMPOTENCY_KEYS"'
    assert owned.create_idempotency[0] == _guard(
        f'CREATE TABLE {table} ("SCOPE" VARCHAR2(512) NOT NULL, "IDEM_KEY" VARCHAR2(255) NOT NULL, '
        '"FINGERPRINT" VARCHAR2(64) NOT NULL, "RESULT" CLOB, "EXPIRES_AT" TIMESTAMP(6) WITH TIME ZONE NOT NULL, '
        'PRIMARY KEY ("SCOPE", "IDEM_KEY"))',
        -955,
    )
    assert owned.create_idempotency[1] == _index(
        "_IDEMPOTENCY_KEYS_EXPIRES_IDX", "_IDEMPOTENCY_KEYS", '"EXPIRES_AT"', owner="APP"
    )
    assert owned.idempotency_probe == "_IDEMPOTENCY_KEYS"  # the owner is in the probe query
    assert owned.idem_claim == (
        f'MERGE INTO {table} t USING DUAL ON (t."SCOPE" = :scope AND t."IDEM_KEY" = :key) '
        'WHEN NOT MATCHED THEN INSERT ("SCOPE", "IDEM_KEY", "FINGERPRINT", "RESULT", "EXPIRES_AT") '
        "VALUES (:scope, :key, :fp, :result, FROM_TZ(:expires, '+00:00'))"
    )
    assert (
        owned.idem_select == f'SELECT "FINGERPRINT", "RESULT", SYS_EXTRACT_UTC("EXPIRES_AT") FROM {table} '
        'WHERE "SCOPE" = :scope AND "IDEM_KEY" = :key'
    )
    assert owned.idem_free == (
        f'DELETE FROM {table} WHERE "SCOPE" = :scope AND "IDEM_KEY" = :key '
        "AND \"EXPIRES_AT\" <= FROM_TZ(:now, '+00:00')"
    )
    assert owned.idem_sweep == (
        f'DELETE FROM {table} WHERE ("SCOPE", "IDEM_KEY") IN (SELECT "SCOPE", "IDEM_KEY" FROM {table} '
        'WHERE "EXPIRES_AT" <= FROM_TZ(:now, \'+00:00\') ORDER BY "EXPIRES_AT" FETCH NEXT :limit ROWS ONLY)'
    )
    # Identifiers fit the 30-character limit of Oracle before 12.2.
    for sql in owned.create_idempotency:
        assert [t for t in identifiers(sql) if len(t) > 30] == []


def test_schema_drift_fixes_are_oracle_statements() -> None:
    """The declared columns (what the start-up drift check compares) and the statements that
    add or rename a missing one, owner-qualified, in Oracle's SQL."""
    schema = SchemaConfig(
        owner="admin",
        conversations=TableConfig(
            "conversations", columns={"metadata": "meta"}, extra_columns={"tenant": ColumnDef("VARCHAR(64)")}
        ),
    )
    _, dialect, sql = _rendered(schema)
    declared = dict(sql.declared)["CONVERSATIONS"]
    assert [(c.name, c.sql_type, c.renamed_from) for c in declared] == [
        ("id", "VARCHAR2(64)", None),  # quoted in upper case (the check compares ignoring case)
        ("created_at", "TIMESTAMP(6) WITH TIME ZONE", None),
        ("META", "CLOB", "metadata"),
        ("TENANT", "VARCHAR(64)", None),
    ]
    table = dialect.ident("CONVERSATIONS")
    (rename,) = dialect.rename_column(table, dialect.ident("metadata"), dialect.ident("META"))
    assert rename == 'ALTER TABLE ADMIN."CONVERSATIONS" RENAME COLUMN "METADATA" TO "META"'
    _parse_exactly(rename)
    (add,) = dialect.add_column(table, dialect.ident("TENANT"), "VARCHAR(64)", frozenset({"id"}))
    _check_plsql(add)
    assert 'ALTER TABLE ADMIN."CONVERSATIONS" ADD ("TENANT" VARCHAR(64))' in add
    # The links declare v4's sequence, typed as v4 adds it, then its page index (v4's own
    # statements: a pending v4 is never reported as drift too).
    seq = dict(sql.declared)["CONVERSATION_ITEM_LINKS"][-1]
    assert (seq.name, seq.sql_type, seq.renamed_from) == ("seq", sequence_type(dialect), None)
    assert seq.then == tuple(index for index in sql.create_indexes if "_SEQ_IX" in index)
    assert len(seq.then) == 1
