"""Schema versions: upstream's migrations v1-v3, datacon's v4-v7, and the start-up runner every SQL backend uses."""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

from datacon._columns import LINK_SEQUENCE
from datacon.errors import MigrationRequiredError
from datacon.schema import CORE_COLUMNS, SchemaConfig

from .dialect import Dialect
from .render import Statements, links_key_sql, packed_items_sql, retention_indexes, sequence_type
from .session import Session

__all__ = [
    "LATEST",
    "MIGRATIONS",
    "Drift",
    "Migration",
    "Plan",
    "bootstrap",
    "drift_message",
    "find_drift",
    "inspect",
    "migration_message",
    "pending",
    "pending_message",
    "require_latest",
    "schema_script",
    "version_insert_sql",
]

log = logging.getLogger(__name__)


@attrs.frozen
class Migration:
    """One schema change. ``up`` renders its statements (possibly none) for a schema.

    ``existing`` is the current column names (lowercase) of the table it changes (``table``,
    a logical table name) when the dialect's DDL is not idempotent by itself, else ``None``.
    """

    version: int
    description: str
    up: Callable[[SchemaConfig, Dialect, frozenset[str] | None], list[str]]
    table: str = "responses"


def _v1(schema: SchemaConfig, dialect: Dialect, existing: frozenset[str] | None) -> list[str]:
    table = schema.responses
    if table.is_skipped("safety_identifier"):
        return []
    return dialect.add_column(
        dialect.ident(table.table), dialect.ident(table.col("safety_identifier")), dialect.varchar(128), existing
    )


def _v2(schema: SchemaConfig, dialect: Dialect, existing: frozenset[str] | None) -> list[str]:
    table = schema.responses
    # A configured column named user_id is in use: keep it.
    used = [v.lower() for v in table.columns.values()] + [k.lower() for k in table.extra_columns]
    if "user_id" in used:
        return []
    return dialect.drop_columns(dialect.ident(table.table), [dialect.ident("user_id")], existing)


_LEGACY = ("output", "metadata", "instructions", "tool_calls")


def _v3(schema: SchemaConfig, dialect: Dialect, existing: frozenset[str] | None) -> list[str]:
    table = schema.responses
    in_use = {table.col(field).lower() for field in CORE_COLUMNS["responses"]}
    in_use |= {name.lower() for name in table.extra_columns}
    drop = [table.col(name) for name in _LEGACY if table.col(name).lower() not in in_use]
    if not drop:
        return []
    return dialect.drop_columns(dialect.ident(table.table), [dialect.ident(c) for c in drop], existing)


def _v4(schema: SchemaConfig, dialect: Dialect, existing: frozenset[str] | None) -> list[str]:
    # The links' sequence (SPEC 7.2), 0 for the links made before, whose ties then keep their
    # old order by item id; and the page index on the new order, replacing the old one.
    table = schema.conversation_item_links
    ref = dialect.table(table.table)
    column_type = sequence_type(dialect)
    statements = dialect.add_column(dialect.ident(table.table), dialect.ident(LINK_SEQUENCE), column_type, existing)
    old = dialect.object_name("links_idx", table.table)
    if old is not None:
        statements.append(dialect.drop_index(old))
    name = dialect.object_name("links_order_idx", table.table)
    if name is not None:
        fields = ("conversation_id", "added_at", LINK_SEQUENCE, "item_id")
        columns = [dialect.ident(table.col(field)) for field in fields]
        statements.append(dialect.create_index(name, ref, columns))
    return statements


def _v5(schema: SchemaConfig, dialect: Dialect, existing: frozenset[str] | None) -> list[str]:
    # What prune and erase_identifier read (SPEC 7.7): items and responses by (created_at, id),
    # links by item, responses by conversation. Idempotent, like every index statement.
    return retention_indexes(schema, dialect)


def _v6(schema: SchemaConfig, dialect: Dialect, existing: frozenset[str] | None) -> list[str]:
    # SQLite's packed item copies (ITEM_PACKED), filled for the rows there are; nothing on
    # the other dialects, or where the items table skips a column.
    return packed_items_sql(schema, dialect, existing)


def _v7(schema: SchemaConfig, dialect: Dialect, existing: frozenset[str] | None) -> list[str]:
    # PostgreSQL's links keyed (item_id, conversation_id), without the links-by-item index;
    # nothing on the other dialects.
    return links_key_sql(schema, dialect)


#: Upstream's core-history migrations, in order (descriptions verbatim), then datacon's.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "Add safety_identifier column to responses", _v1),
    Migration(2, "Remove legacy user_id column from responses", _v2),
    Migration(3, "Drop redundant output, metadata, instructions, tool_calls columns from responses", _v3),
    Migration(
        4,
        "Add the link sequence (turn order) and the page index on (added_at, seq, item_id)",
        _v4,
        "conversation_item_links",
    ),
    Migration(
        5,
        "Add the retention indexes: items and responses by created_at, links by item, responses by conversation",
        _v5,
    ),
    Migration(6, "Add the items' packed copies (SQLite)", _v6, "conversation_items"),
    Migration(
        7,
        "Key the links by (item_id, conversation_id) and drop the links-by-item index (PostgreSQL)",
        _v7,
        "conversation_item_links",
    ),
)
LATEST = MIGRATIONS[-1].version


def version_insert_sql(dialect: Dialect, migration: Migration) -> str:
    """The literal INSERT recording ``migration`` (as shown to users who apply it by hand)."""
    description = migration.description.replace("'", "''")
    # Shown to users, never executed with it: the values are our own constants.
    return (
        f"INSERT INTO {dialect.versions_table} (version, description) "  # noqa: S608
        f"VALUES ({migration.version}, '{description}')"
    )


def migration_message(
    dialect: Dialect, start: int, plans: list[tuple[Migration, list[str]]]
) -> tuple[str, tuple[str, ...]]:
    """Upstream's pending-migration message, and the exact statements it lists."""
    lines = [
        (
            f"Schema migration required (current version: {start}, latest version: {LATEST}).\n\n"
            "The following migrations need to be applied:\n"
        )
    ]
    statements: list[str] = []
    for migration, sqls in plans:
        lines.append(f"\n  v{migration.version}: {migration.description}\n")
        for sql in [*sqls, version_insert_sql(dialect, migration)]:
            # A PL/SQL block (Oracle) already ends with "END;": no second terminator.
            lines.append(f"    {sql}{'' if sql.endswith(';') else ';'}\n")
            statements.append(sql)
    lines.append(
        f"\nTo apply automatically, set `auto_migrate: true` in your {dialect.name} schema config.\n"
        f"To skip, set `version: {LATEST}` to mark your schema as already up to date."
    )
    return "".join(lines), tuple(statements)


@attrs.frozen
class Drift:
    """A column the configuration declares that its existing table lacks, and the statements
    that give it (``ADD COLUMN``, or ``RENAME COLUMN`` when a renamed core column still has
    its old name, which keeps the data)."""

    table: str
    column: str
    note: str
    statements: tuple[str, ...]

    def describe(self) -> str:
        return f"table '{self.table}' has no column '{self.column}' ({self.note})"


def find_drift(session: Session, sql: Statements, exists: list[bool]) -> list[Drift]:
    """The declared columns missing from the tables that existed before this start-up
    (``exists``, in ``sql.table_probes`` order); tables created just now have them all."""
    dialect = sql.dialect
    found: list[Drift] = []
    for table_existed, probe, (table, declared) in zip(exists, sql.table_probes, sql.declared, strict=True):
        if not table_existed:
            continue
        have = frozenset(str(row[0]).lower() for row in session.fetchall(dialect.columns_sql(), {"name": probe}))
        if not have:
            continue  # not visible to this role: nothing to compare
        wanted = {column.name.lower() for column in declared}
        for column in declared:
            if column.name.lower() in have:
                continue
            old = column.renamed_from
            quoted_table, quoted = dialect.ident(table), dialect.ident(column.name)
            if old is not None and old.lower() in have and old.lower() not in wanted:
                statements = dialect.rename_column(quoted_table, dialect.ident(old), quoted)
                note = f"the rename of '{old}', which it still has: renaming it keeps the data"
            else:
                statements = [*dialect.add_column(quoted_table, quoted, column.sql_type, have), *column.then]
                note = f"the rename of '{old}'" if old is not None else f"{column.what} {column.sql_type}"
            found.append(Drift(table, column.name, note, tuple(statements)))
    return found


def drift_message(dialect: Dialect, version: int, drift: list[Drift]) -> tuple[str, tuple[str, ...]]:
    """What the configuration declares that the tables lack, and the statements that fix it."""
    lines = [
        (
            f"Schema drift (current version: {version}, latest version: {LATEST}): "
            "the configuration declares columns that the existing tables lack.\n"
        )
    ]
    statements: list[str] = []
    for problem in drift:
        lines.append(f"\n  {problem.describe()}:\n")
        for statement in problem.statements:
            lines.append(f"    {statement}{'' if statement.endswith(';') else ';'}\n")
            statements.append(statement)
    lines.append(
        f"\nApply them (`datacon migrate apply`, or `auto_migrate: true` in your {dialect.name} schema "
        "config), or change the configuration to match the tables."
    )
    return "".join(lines), tuple(statements)


Plan = list[tuple[Migration, list[str]]]


def pending_message(dialect: Dialect, start: int, plans: Plan, drift: list[Drift]) -> tuple[str, tuple[str, ...]]:
    """The message and statements of ``MigrationRequiredError``: the pending migrations in
    upstream's shape, then the schema drift."""
    message, listed = migration_message(dialect, start, plans) if plans else ("", ())
    if drift:
        found, fixes = drift_message(dialect, start, drift)
        message, listed = (f"{message}\n\n{found}" if message else found), listed + fixes
    return message, listed


def inspect(session: Session, sql: Statements) -> tuple[int, Plan, list[Drift]]:
    """Create what is missing; the schema's version, the migrations still to apply, and the
    schema drift (declared columns the existing tables lack, beyond what those migrations add).

    A *fresh* database (none of the four tables exists) is created at the latest version and
    recorded so. The version is the recorded one, or ``schema.version`` if that is higher.
    """
    dialect, schema = sql.dialect, sql.schema
    exists = [session.fetchone(dialect.table_exists_sql(), {"name": name}) is not None for name in sql.table_probes]
    fresh = not any(exists)
    if (
        dialect.create_if_not_exists
        or session.fetchone(dialect.table_exists_sql(), {"name": dialect.table_name_for_probe(dialect.versions_table)})
        is None
    ):
        session.execute(sql.create_versions)
    for table_exists, ddl in zip(exists, sql.create_tables, strict=True):
        if dialect.create_if_not_exists or not table_exists:
            session.execute(ddl)
    # datacon's idempotency-key table (SPEC 7.3): created when missing, whatever the version,
    # like a missing table of the four (its index is created with the others, below).
    if dialect.create_if_not_exists or not _has_idempotency(session, sql):
        session.execute(sql.create_idempotency[0])
    row = session.fetchone(sql.max_version)
    current = int(row[0]) if row is not None and row[0] is not None else 0
    if fresh:
        for migration in MIGRATIONS:
            if migration.version > current:
                record = {"version": migration.version, "description": migration.description}
                session.execute(sql.insert_version, record)
        return max(current, LATEST), [], []
    start = max(current, schema.version or 0)
    plans = _plans(session, sql, start)
    # What a pending migration adds is not drift (v1 adds safety_identifier, v4 the sequence).
    planned = {statement for _, statements in plans for statement in statements}
    drift = [d for d in find_drift(session, sql, exists) if not set(d.statements) <= planned]
    return start, plans, drift


def _plans(session: Session, sql: Statements, start: int) -> Plan:
    """The migrations after version ``start`` and their statements (reads only)."""
    dialect, schema = sql.dialect, sql.schema
    existing: dict[str, frozenset[str] | None] = {}

    def columns(table: str) -> frozenset[str] | None:
        if dialect.idempotent_migrations:
            return None
        if table not in existing:
            probe = {"name": dialect.table_name_for_probe(schema.tables()[table].table)}
            existing[table] = frozenset(str(r[0]).lower() for r in session.fetchall(dialect.columns_sql(), probe))
        return existing[table]

    return [(m, m.up(schema, dialect, columns(m.table))) for m in MIGRATIONS if m.version > start]


def bootstrap(session: Session, sql: Statements, *, auto_migrate: bool | None = None) -> list[int]:
    """Create what is missing and bring the schema to the latest version; the versions applied.

    Runs while the caller holds the backend's migration lock (Postgres: an advisory lock;
    SQLite: an IMMEDIATE transaction), so concurrent starters see each other's work and
    every migration is applied once. A fresh database is created at the latest version
    (:func:`inspect`). An existing schema with pending migrations, or whose tables lack a
    column the configuration declares (schema drift: an extra column or a rename added to the
    config later), raises ``MigrationRequiredError`` with the statements that fix it unless
    ``auto_migrate`` (default: ``schema.auto_migrate``); then each migration runs in its own
    transaction with its ``_schema_versions`` row, and each drift fix in its own.
    """
    dialect = sql.dialect
    start, plans, drift = inspect(session, sql)
    applied: list[int] = []
    if (plans or drift) and not (sql.schema.auto_migrate if auto_migrate is None else auto_migrate):
        message, listed = pending_message(dialect, start, plans, drift)
        raise MigrationRequiredError(message, listed)
    if plans:
        for migration, statements in plans:
            with session.transaction():
                for statement in statements:
                    session.execute(statement)
                session.execute(
                    sql.insert_version, {"version": migration.version, "description": migration.description}
                )
            applied.append(migration.version)
            log.info("applied %s schema migration v%d: %s", dialect.name, migration.version, migration.description)
    if drift:
        # Looked at again: the migrations just applied may have changed the tables.
        for missing in find_drift(session, sql, [True] * len(sql.table_probes)):
            with session.transaction():
                for statement in missing.statements:
                    session.execute(statement)
            log.info("fixed %s schema drift: %s", dialect.name, missing.describe())
    # Index statements are idempotent in every dialect (IF NOT EXISTS, or the dialect's own
    # guarded form); they run after the migrations since an index may need a migrated column.
    # A failure is only logged (upstream): e.g. ``version`` skipped the migration that adds
    # safety_identifier to a schema that does not have it yet.
    for index in (*sql.create_indexes, sql.create_idempotency[1]):
        problem = session.try_execute(index)
        if problem is not None:
            log.warning("could not create a %s index (%s): %s", dialect.name, index, problem)
    return applied


def schema_script(sql: Statements) -> list[str]:
    """The complete DDL of the configured schema at the latest version, as start-up creates a
    fresh database: ``_schema_versions``, the four tables, ``_idempotency_keys`` and its index,
    the rows recording every version, then the indexes. What ``datacon migrate sql`` prints
    for a DBA; needs no connection."""
    versions = [version_insert_sql(sql.dialect, migration) for migration in MIGRATIONS]
    return [sql.create_versions, *sql.create_tables, *sql.create_idempotency, *versions, *sql.create_indexes]


def _has_idempotency(session: Session, sql: Statements) -> bool:
    return session.fetchone(sql.dialect.table_exists_sql(), {"name": sql.idempotency_probe}) is not None


def pending(session: Session, sql: Statements) -> tuple[int, list[str]]:
    """The schema's version and the statements that would bring it to the latest; reads only.

    The statements are those a start-up with ``auto_migrate`` would run: the missing tables
    (``_schema_versions`` and ``_idempotency_keys`` included) and their indexes, the pending migrations with their
    version rows, and the fixes of any schema drift (declared columns the existing tables
    lack). A fresh database gets :func:`schema_script` (less the versions it records). The
    version is the recorded one (0 when none is), or ``schema.version`` if that is higher.
    """
    dialect, schema = sql.dialect, sql.schema
    exists = [session.fetchone(dialect.table_exists_sql(), {"name": name}) is not None for name in sql.table_probes]
    versions_probe = {"name": dialect.table_name_for_probe(dialect.versions_table)}
    has_versions = session.fetchone(dialect.table_exists_sql(), versions_probe) is not None
    recorded = 0
    if has_versions:
        row = session.fetchone(sql.max_version)
        recorded = int(row[0]) if row is not None and row[0] is not None else 0
    statements = [] if has_versions else [sql.create_versions]
    statements += [ddl for table_exists, ddl in zip(exists, sql.create_tables, strict=True) if not table_exists]
    if not _has_idempotency(session, sql):
        statements += sql.create_idempotency
    if not any(exists):  # fresh: created at the latest version, recorded so
        statements += [version_insert_sql(dialect, m) for m in MIGRATIONS if m.version > recorded]
        return recorded, [*statements, *sql.create_indexes]
    start = max(recorded, schema.version or 0)
    plans = _plans(session, sql, start)
    for migration, sqls in plans:
        statements += [*sqls, version_insert_sql(dialect, migration)]
    planned = {statement for _, sqls in plans for statement in sqls}
    drift = [d for d in find_drift(session, sql, exists) if not set(d.statements) <= planned]
    for problem in drift:
        statements += problem.statements
    if not all(exists):
        statements += sql.create_indexes
    return start, statements


def require_latest(session: Session, sql: Statements) -> None:
    """With ``create_tables: false``: raise ``MigrationRequiredError`` listing the statements
    unless every table exists at the latest version (reads only, whatever ``auto_migrate`` says)."""
    current, statements = pending(session, sql)
    if not statements:
        return
    listing = "".join(f"    {s}{'' if s.endswith(';') else ';'}\n" for s in statements)
    message = (
        f"Schema migration required (current version: {current}, latest version: {LATEST}).\n\n"
        f"The {sql.dialect.name} schema has `create_tables: false`, so datacon changes nothing itself. "
        "Apply these statements as a role that may (or run `datacon migrate apply` as it):\n\n"
        f"{listing}"
    )
    raise MigrationRequiredError(message, tuple(statements))
