"""The SQL layer shared by the SQLite and PostgreSQL backends (and the Oracle one to come).

One generic store (``_store``) serves every SQL database; what differs is confined to
two objects a backend supplies:

- a :class:`Dialect` (``_dialect``): bind-parameter placeholder (``:name`` / ``%(name)s``),
  identifier quoting, the JSON and timestamp column types and how their values are encoded
  and decoded, the row-limit clause, the recursive-CTE keyword, ``RETURNING``, whether
  ``IF NOT EXISTS`` exists (else the catalog is probed and only missing tables are created),
  whether a data-modifying CTE exists, the multi-row INSERT size, catalog probes, and the
  migration DDL (idempotent ``IF [NOT] EXISTS`` forms, or rendered against the table's
  current columns);
- a :class:`Connector` (``_session``): the connection pool, autocommit sessions with
  nested transactions, the migration lock, and the backend's one error-translation seam.

``_sql`` renders every statement once per store from ``SchemaConfig`` (renames, extra and
skip columns); ``_migrations`` holds upstream's v1-v3 and the start-up runner
(``_schema_versions``, fresh databases created at the latest version,
``MigrationRequiredError``). Rows map to models in ``_store``: a skipped column reads as
upstream's default (``created_at`` now, ``input`` ``[]``, ``item_type`` ``""``, others ``None``).
"""

from .dialect import Dialect
from .migrations import LATEST, MIGRATIONS, Migration, bootstrap, migration_message
from .render import Statements, check_identifiers, render
from .session import Connector, Params, Session
from .store import SqlConversationStorage, SqlItemStorage, SqlResponseStorage, SqlStore, open_sql_storage

__all__ = [
    "LATEST",
    "MIGRATIONS",
    "Connector",
    "Dialect",
    "Migration",
    "Params",
    "Session",
    "SqlConversationStorage",
    "SqlItemStorage",
    "SqlResponseStorage",
    "SqlStore",
    "Statements",
    "bootstrap",
    "check_identifiers",
    "migration_message",
    "open_sql_storage",
    "render",
]
