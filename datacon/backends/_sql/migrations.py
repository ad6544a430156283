"""Schema versions: upstream's migrations v1-v3, datacon's v4, and the start-up runner every SQL backend uses."""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

from datacon._columns import LINK_SEQUENCE
from datacon.errors import MigrationRequiredError
from datacon.schema import CORE_COLUMNS, SchemaConfig

from .dialect import Dialect
from .render import Statements, sequence_column
from .session import Session

__all__ = [
    "LATEST",
    "MIGRATIONS",
    "Migration",
    "Plan",
    "bootstrap",
    "inspect",
    "migration_message",
    "pending",
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
    column_type = sequence_column(dialect).split(" ", 1)[1]  # the type, default and NOT NULL
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


Plan = list[tuple[Migration, list[str]]]


def inspect(session: Session, sql: Statements) -> tuple[int, Plan]:
    """Create what is missing; the schema's version and the migrations still to apply.

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
        return max(current, LATEST), []
    start = max(current, schema.version or 0)
    pending = [m for m in MIGRATIONS if m.version > start]
    if not pending:
        return start, []
    existing: dict[str, frozenset[str] | None] = {}

    def columns(table: str) -> frozenset[str] | None:
        if dialect.idempotent_migrations:
            return None
        if table not in existing:
            probe = {"name": dialect.table_name_for_probe(schema.tables()[table].table)}
            existing[table] = frozenset(str(r[0]).lower() for r in session.fetchall(dialect.columns_sql(), probe))
        return existing[table]

    return start, [(m, m.up(schema, dialect, columns(m.table))) for m in pending]


def bootstrap(session: Session, sql: Statements, *, auto_migrate: bool | None = None) -> list[int]:
    """Create what is missing and bring the schema to the latest version; the versions applied.

    Runs while the caller holds the backend's migration lock (Postgres: an advisory lock;
    SQLite: an IMMEDIATE transaction), so concurrent starters see each other's work and
    every migration is applied once. A fresh database is created at the latest version
    (:func:`inspect`). An existing schema with pending migrations raises
    ``MigrationRequiredError`` unless ``auto_migrate`` (default: ``schema.auto_migrate``);
    each migration runs in its own transaction with its ``_schema_versions`` row.
    """
    dialect = sql.dialect
    start, plans = inspect(session, sql)
    applied: list[int] = []
    if plans:
        if not (sql.schema.auto_migrate if auto_migrate is None else auto_migrate):
            message, listed = migration_message(dialect, start, plans)
            raise MigrationRequiredError(message, listed)
        for migration, statements in plans:
            with session.transaction():
                for statement in statements:
                    session.execute(statement)
                session.execute(
                    sql.insert_version, {"version": migration.version, "description": migration.description}
                )
            applied.append(migration.version)
            log.info("applied %s schema migration v%d: %s", dialect.name, migration.version, migration.description)
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
    (``_schema_versions`` and ``_idempotency_keys`` included) and their indexes, and the pending migrations with their
    version rows. A fresh database gets :func:`schema_script` (less the versions it records).
    The version is the recorded one (0 when none is), or ``schema.version`` if that is higher.
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
    existing = None
    if not dialect.idempotent_migrations:
        probe = {"name": dialect.table_name_for_probe(schema.responses.table)}
        existing = frozenset(str(r[0]).lower() for r in session.fetchall(dialect.columns_sql(), probe))
    for migration in MIGRATIONS:
        if migration.version > start:
            statements += [*migration.up(schema, dialect, existing), version_insert_sql(dialect, migration)]
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
