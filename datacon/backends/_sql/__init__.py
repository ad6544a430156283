"""The SQL layer shared by the SQLite, PostgreSQL and Oracle backends.

One generic store (``store``) serves every SQL database; what differs is confined to
two objects a backend supplies:

- a :class:`Dialect` (``dialect``): bind-parameter placeholder (``:name`` / ``%(name)s``),
  identifier quoting and the tables' owner, the JSON and timestamp column types and how
  their values are written, read, encoded and decoded, the row-limit clause, the guarded
  CREATE TABLE / CREATE INDEX, index and constraint names, the multi-row INSERT and its
  size, the recursive-CTE keyword and cycle clause, the page keyset, ``RETURNING``, whether
  a data-modifying CTE exists, whether ``''`` is NULL, catalog probes, and the migration DDL
  (idempotent forms, or rendered against the table's current columns);
- a :class:`Connector` (``session``): the connection pool, autocommit sessions with
  nested transactions, the migration lock, and the backend's one error-translation seam.

``render`` renders every statement once per store from ``SchemaConfig`` (renames, extra
and skip columns) and the columns declared in ``datacon._columns``; ``migrations`` holds
upstream's v1-v3 and the start-up runner (``_schema_versions``, fresh databases created at
the latest version, ``MigrationRequiredError``). Rows map to models in ``store``: a skipped
column reads as its declared default (``created_at`` now, ``input`` ``[]``, ``item_type``
``""``, others ``None``).
"""

from .backend import SqlBackend, open_sql_backend
from .dialect import Dialect, Keyset
from .migrations import LATEST, MIGRATIONS, Migration, bootstrap, migration_message, schema_script
from .render import Statements, check_identifiers, render
from .session import Connector, Params, Session
from .store import SqlConversationStorage, SqlItemStorage, SqlResponseStorage, SqlStore

__all__ = [
    "LATEST",
    "MIGRATIONS",
    "Connector",
    "Dialect",
    "Keyset",
    "Migration",
    "Params",
    "Session",
    "SqlBackend",
    "SqlConversationStorage",
    "SqlItemStorage",
    "SqlResponseStorage",
    "SqlStore",
    "Statements",
    "bootstrap",
    "check_identifiers",
    "migration_message",
    "open_sql_backend",
    "render",
    "schema_script",
]
