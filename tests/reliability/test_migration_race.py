"""Six processes start at once against one Postgres database with auto_migrate: each migration once.

Directly, and through PgBouncer in transaction pooling mode (``transaction_pooling=True``: the
migration lock is transaction-scoped, as a session lock would land on a shared server connection).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.reliability import figures
from tests.servers._pgbouncer import PgBouncer
from tests.servers.postgres import PostgresBackend
from tests.support import repo_root

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

PROCESSES = 6

# What datacon's tables looked like before versioned migrations (upstream before v1): responses
# without safety_identifier, with the legacy user_id, output, metadata, instructions, tool_calls.
LEGACY_DDL = [
    "CREATE TABLE conversations (id VARCHAR(64) PRIMARY KEY, created_at TIMESTAMPTZ, metadata JSON)",
    (
        "CREATE TABLE conversation_items (id VARCHAR(64) PRIMARY KEY, response_id VARCHAR(64), "
        "item_type VARCHAR(32) NOT NULL, role VARCHAR(32), content JSON, status VARCHAR(32), created_at TIMESTAMPTZ)"
    ),
    (
        "CREATE TABLE conversation_item_links (conversation_id VARCHAR(64), item_id VARCHAR(64) NOT NULL, "
        "added_at TIMESTAMPTZ, CONSTRAINT pk_conv_item_link PRIMARY KEY (conversation_id, item_id))"
    ),
    (
        "CREATE TABLE responses (id VARCHAR(64) PRIMARY KEY, conversation_id VARCHAR(64), "
        "previous_response_id VARCHAR(64), input JSON, created_at TIMESTAMPTZ, model VARCHAR(128), raw_response JSON, "
        "user_id VARCHAR(128), output JSON, metadata JSON, instructions TEXT, tool_calls JSON)"
    ),
    (
        "INSERT INTO responses (id, input, created_at, model, raw_response, user_id) "
        "VALUES ('legacy-1', '[]', now(), 'old-model', 'null', 'someone')"
    ),
]
# The same schema after v1, recorded as such by an older datacon.
AT_V1_DDL = [
    *LEGACY_DDL,
    "ALTER TABLE responses ADD COLUMN safety_identifier VARCHAR(128)",
    (
        "CREATE TABLE _schema_versions (version INTEGER NOT NULL PRIMARY KEY, description VARCHAR(512), "
        "applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())"
    ),
    "INSERT INTO _schema_versions (version, description) VALUES (1, 'Add safety_identifier column to responses')",
]
STARTS = {
    "fresh": ([], {1, 2, 3, 4, 5, 6, 7}, set()),
    "pre-v1": (LEGACY_DDL, {1, 2, 3, 4, 5, 6, 7}, {1, 2, 3, 4, 5, 6, 7}),
    "at-v1": (AT_V1_DDL, {1, 2, 3, 4, 5, 6, 7}, {2, 3, 4, 5, 6, 7}),
}


@pytest.fixture
def database(postgres_backend: PostgresBackend) -> Iterator[str]:
    url = postgres_backend.create_database()
    try:
        yield url
    finally:
        postgres_backend.drop_database(url)


@pytest.mark.parametrize(
    ("start", "via"), [*((start, "direct") for start in STARTS), ("pre-v1", "pgbouncer"), ("fresh", "pgbouncer")]
)
def test_six_processes_apply_each_migration_once(
    request: pytest.FixtureRequest, postgres_backend: PostgresBackend, database: str, start: str, via: str
) -> None:
    setup, recorded, to_apply = STARTS[start]
    with postgres_backend.connect(database) as conn:
        for statement in setup:
            conn.execute(statement)
    target, flags = database, []
    if via == "pgbouncer":
        bouncer: PgBouncer = request.getfixturevalue("pgbouncer_server")
        user, password = next(iter(bouncer.users.items()))
        target, flags = bouncer.url(user, password, urlsplit(database).path.lstrip("/")), ["--transaction-pooling"]

    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._migrator", target, *flags],
            cwd=repo_root(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for child in children:  # all imported and waiting: the "go" then reaches them together
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-3000:]
        assert out.strip() == "ok", err[-3000:]

    applied = Counter(
        int(version) for _, err in outputs for version in re.findall(r"applied postgres schema migration v(\d+)", err)
    )
    assert applied == Counter(dict.fromkeys(to_apply, 1)), f"migrations applied per version: {dict(applied)}"
    with postgres_backend.connect(database) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM _schema_versions ORDER BY version")]
        columns = {
            row[0]
            for row in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'responses'")
        }
        racers = conn.execute("SELECT count(*) FROM responses WHERE safety_identifier = 'racer'").fetchone()[0]
        legacy = conn.execute("SELECT model FROM responses WHERE id = 'legacy-1'").fetchall()
    assert versions == sorted(recorded), f"_schema_versions holds {versions}"
    assert "safety_identifier" in columns
    assert not columns & {"user_id", "output", "metadata", "instructions", "tool_calls"}
    assert racers == PROCESSES
    assert legacy == ([("old-model",)] if setup else [])
    figures.record(
        f"migration race[{start}, {via}]",
        f"{PROCESSES} processes all started; applied {dict(sorted(applied.items())) or 'none (fresh: created at v3)'}, "
        f"_schema_versions = {versions}",
    )
