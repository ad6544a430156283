"""The ``datacon`` command end to end on real backends (SQLite files, and the Redis/Postgres test servers)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner, Result

from datacon import (
    ColumnDef,
    Conversation,
    ConversationItem,
    ListParams,
    NewConversation,
    NewConversationItem,
    SchemaConfig,
    SqliteConfig,
    StorageFactoryConfig,
    StoredResponse,
    TableConfig,
    create_storage,
    transfer,
)
from datacon._serde import converter
from datacon.backends._sql import LATEST
from datacon.cli import cli, main
from datacon.errors import MigrationRequiredError
from datacon.models import Link
from tests.support import RENAMED_SCHEMA, free_port, server_missing

SERVER_FIXTURES = sorted(
    path.stem for path in (Path(__file__).parent / "servers").glob("*.py") if not path.stem.startswith("_")
)
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
#: The conformance suite's renamed tables and columns (and extra columns), without skipped
#: columns: a copy into it must keep every field, so it verifies equal.
_NO_SKIPS: dict[str, Any] = {
    name: attrs.evolve(table, skip_columns=frozenset()) for name, table in RENAMED_SCHEMA.tables().items()
}
RENAMED_NO_SKIPS = attrs.evolve(RENAMED_SCHEMA, **_NO_SKIPS)


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """Run the command in-process, as the console script would (stderr kept apart)."""
    return CliRunner(env=env).invoke(cli, list(args), input=stdin, catch_exceptions=False)


def one_error_line(result: Result) -> str:
    """The single ``datacon: error:`` line of a failed run (and no traceback)."""
    assert result.exit_code != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("datacon: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def write_config(path: Path, config: StorageFactoryConfig) -> Path:
    """``config`` as a JSON file for ``--config``/``--from``/``--to``."""
    section = config.section()
    data: dict[str, Any] = {"backend": config.backend.value}
    if section is not None:
        data[config.backend.value] = converter.unstructure(section)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def need_sqlite() -> None:
    if importlib.util.find_spec("datacon.backends.sqlite") is None:
        server_missing("the sqlite backend (datacon.backends.sqlite) is not available")


class Place:
    """One storage the tests can reach both through the API and through a config file."""

    def __init__(self, name: str, config: StorageFactoryConfig, file: Path, wipe: Any = None) -> None:
        self.name = name
        self.config = config
        self.file = file
        self._wipe = wipe

    def storage(self) -> Any:
        return create_storage(self.config)

    def wipe(self) -> None:
        if self._wipe is not None:
            self._wipe()


def sqlite_place(tmp_path: Path, name: str = "db", schema: SchemaConfig | None = None) -> Place:
    need_sqlite()
    config = StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(str(tmp_path / f"{name}.db"), schema=schema))
    return Place("sqlite", config, write_config(tmp_path / f"{name}.json", config))


@pytest.fixture(params=["sqlite", *[n for n in SERVER_FIXTURES if n != "sqlite"]])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    """A real, empty storage of each persistent backend."""
    name = request.param
    if name == "sqlite":
        yield sqlite_place(tmp_path)
        return
    backend = request.getfixturevalue(f"{name}_backend")
    config = backend.config()
    backend.wipe()
    yield Place(name, config, write_config(tmp_path / f"{name}.json", config), backend.wipe)
    backend.wipe()


def seed(place: Place) -> dict[str, str]:
    """A conversation with three linked items, and a chain of three responses."""
    with place.storage() as s:
        conv = s.conversations.create_conversation(NewConversation(metadata={"topic": "demo", "n": 1}))
        ids = {"conv": conv.id}
        for n in range(3):
            item = s.items.create_item(
                NewConversationItem("message", [{"type": "input_text", "text": f"hello {n}"}], role="user")
            )
            s.items.link_item(conv.id, item.id, T0 + timedelta(seconds=n))
            ids[f"item{n}"] = item.id
        previous = None
        for n in range(3):
            response = StoredResponse(
                previous_response_id=previous,
                input=[{"n": n}],
                model="gpt-x",
                conversation_id=conv.id,
                safety_identifier="user-1",
                created_at=T0 + timedelta(seconds=n),
            )
            s.responses.store_response(response)
            previous = ids[f"resp{n}"] = response.id
    return ids


def dump_lines(n_items: int, n_conversations: int = 4) -> list[str]:
    """A dump with ``n_items`` items spread over conversations, each linked once, and responses."""
    records: list[transfer.Record] = []
    conversations = [f"conv_{c:050x}" for c in range(n_conversations)]
    for c, conversation_id in enumerate(conversations):
        records.append(Conversation(id=conversation_id, created_at=T0 + timedelta(seconds=c), metadata={"c": c}))
    records.extend(
        ConversationItem(
            id=f"msg_{n:050x}",
            response_id=None,
            item_type="message",
            role="user" if n % 2 else "assistant",
            content=[{"type": "input_text", "text": f"item {n} ünïcode"}],
            status="completed",
            created_at=T0 + timedelta(microseconds=n),
        )
        for n in range(n_items)
    )
    for n in range(n_items):
        added = T0 + timedelta(milliseconds=n // 3)  # ties on added_at on purpose
        records.append(Link(conversations[n % n_conversations], f"msg_{n:050x}", added))
    previous = None
    for n in range(20):
        response_id = f"01JRESP{n:019d}"
        records.append(
            StoredResponse(
                id=response_id,
                previous_response_id=previous,
                input=[{"n": n}],
                created_at=T0 + timedelta(seconds=n),
                model="m",
                raw_response={"output": [n]},
            )
        )
        previous = response_id
    return [transfer.dump_record(r) for r in records]


# -- the console script ----------------------------------------------------------------------


def test_python_dash_m_datacon_help_runs_in_a_subprocess(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "datacon", "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: datacon" in done.stdout
    for command in ("conversations", "items", "responses", "export", "import", "copy", "migrate", "doctor"):
        assert command in done.stdout


def test_console_script_runs(tmp_path: Path) -> None:
    (entry,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "datacon"]
    assert entry.load() is main
    script = Path(sys.executable).parent / "datacon"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("datacon, version ")


def test_subprocess_error_is_one_line_with_status_1(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "datacon", "responses", "show", "nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**os.environ, "DATACON_CONFIG": ""},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "datacon: error: no SQLite database at datacon-demo.db (give --config FILE or set DATACON_CONFIG)"
    ]
    assert not (tmp_path / "datacon-demo.db").exists()  # a read never creates the database


def test_unreachable_postgres_is_one_line_in_a_subprocess(tmp_path: Path) -> None:
    # The pool's own reconnect warnings must not reach stderr beside the error line.
    cfg = tmp_path / "pg.yaml"
    url = f"postgres://u:hunter2-secret@127.0.0.1:{free_port()}/db"
    cfg.write_text(f"backend: postgres\npostgres:\n  db_url: {url}\n  connect_timeout_secs: 2\n")
    done = subprocess.run(
        [sys.executable, "-m", "datacon", "--config", str(cfg), "conversations", "show", "c"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("datacon: error: Postgres unavailable: ")
    assert "hunter2-secret" not in done.stderr


# -- inspection ------------------------------------------------------------------------------


def test_conversations_show_table_and_json(place: Place) -> None:
    ids = seed(place)
    table = run("--config", str(place.file), "conversations", "show", ids["conv"])
    assert table.exit_code == 0, table.stderr
    assert ids["conv"] in table.stdout
    assert '{"topic":"demo","n":1}' in table.stdout
    data = json.loads(run("--config", str(place.file), "conversations", "show", ids["conv"], "--json").stdout)
    assert data["id"] == ids["conv"]
    assert data["metadata"] == {"topic": "demo", "n": 1}
    assert data["created_at"].endswith("Z")
    assert len(data["created_at"]) == len("2026-01-02T03:04:05.123456Z")


def test_unknown_ids_fail_with_one_line(place: Place) -> None:
    seed(place)
    cfg = ("--config", str(place.file))
    assert one_error_line(run(*cfg, "conversations", "show", "conv_missing")) == (
        "datacon: error: conversation conv_missing not found"
    )
    assert one_error_line(run(*cfg, "responses", "show", "r_missing")) == "datacon: error: response r_missing not found"
    assert (
        one_error_line(run(*cfg, "responses", "chain", "r_missing")) == "datacon: error: response r_missing not found"
    )


def test_items_list_pages_in_both_orders(place: Place) -> None:
    ids = seed(place)
    cfg = ("--config", str(place.file))
    first = json.loads(run(*cfg, "items", "list", ids["conv"], "--limit", "2", "--json").stdout)
    assert [i["id"] for i in first["data"]] == [ids["item0"], ids["item1"]]
    assert first["has_more"] is True
    assert first["last_id"] == ids["item1"]
    rest = json.loads(run(*cfg, "items", "list", ids["conv"], "--limit", "2", "--after", ids["item1"], "--json").stdout)
    assert [i["id"] for i in rest["data"]] == [ids["item2"]]
    assert rest["has_more"] is False
    desc = json.loads(run(*cfg, "items", "list", ids["conv"], "--order", "desc", "--json").stdout)
    assert [i["id"] for i in desc["data"]] == [ids["item2"], ids["item1"], ids["item0"]]
    table = run(*cfg, "items", "list", ids["conv"], "--limit", "1")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "ROLE", "STATUS", "CREATED_AT", "CONTENT"]
    assert lines[1].startswith(ids["item0"])
    assert "hello 0" in lines[1]
    assert lines[-1] == f"(more: --after {ids['item0']})"
    assert "--limit" in one_error_line(run(*cfg, "items", "list", ids["conv"], "--limit", "-1"))
    assert "--order" in one_error_line(run(*cfg, "items", "list", ids["conv"], "--order", "sideways"))


@pytest.mark.parametrize("count", [str(2**31), str(2**63), str(10**30)])
def test_counts_above_the_maximum_are_one_clean_error(place: Place, count: str) -> None:
    ids = seed(place)
    cfg = ("--config", str(place.file))
    for args in [
        ("items", "list", ids["conv"], "--limit", count),
        ("responses", "chain", ids["resp2"], "--max-depth", count),
        ("export", "--batch", count),
    ]:
        line = one_error_line(run(*cfg, *args))
        assert "0<=x<=2147483647" in line or "1<=x<=2147483647" in line, line
    # The maximum itself works (the page it asks for is one more row than that: capped).
    page = json.loads(run(*cfg, "items", "list", ids["conv"], "--limit", str(2**31 - 1), "--json").stdout)
    assert [i["id"] for i in page["data"]] == [ids["item0"], ids["item1"], ids["item2"]]
    assert page["has_more"] is False
    chain = json.loads(run(*cfg, "responses", "chain", ids["resp2"], "--max-depth", str(2**31 - 1), "--json").stdout)
    assert len(chain) == 3


def test_items_list_of_an_unknown_conversation_is_an_error(place: Place) -> None:
    ids = seed(place)
    cfg = ("--config", str(place.file))
    for extra in [(), ("--json",), ("--order", "desc")]:
        assert one_error_line(run(*cfg, "items", "list", "conv_unknown", *extra)) == (
            "datacon: error: conversation conv_unknown not found"
        )
    with place.storage() as s:
        empty = s.conversations.create_conversation(NewConversation(id="conv_empty"))
        # Links need no conversation record (no foreign keys, upstream parity): they still list.
        s.items.link_item("conv_recordless", ids["item0"], T0)
    listed = run(*cfg, "items", "list", empty.id, "--json")
    assert listed.exit_code == 0
    assert json.loads(listed.stdout)["data"] == []
    recordless = json.loads(run(*cfg, "items", "list", "conv_recordless", "--json").stdout)
    assert [i["id"] for i in recordless["data"]] == [ids["item0"]]
    # A cursor past the last item of a real conversation is an empty page, not an error.
    past = run(*cfg, "items", "list", ids["conv"], "--after", ids["item2"], "--json")
    assert past.exit_code == 0
    assert json.loads(past.stdout)["data"] == []


def test_responses_show_and_chain(place: Place) -> None:
    ids = seed(place)
    cfg = ("--config", str(place.file))
    shown = json.loads(run(*cfg, "responses", "show", ids["resp1"], "--json").stdout)
    assert shown["previous_response_id"] == ids["resp0"]
    assert shown["input"] == [{"n": 1}]
    assert shown["created_at"] == "2026-01-02T03:04:06.123456Z"
    table = run(*cfg, "responses", "show", ids["resp1"]).stdout
    assert f"previous_response_id  {ids['resp0']}" in table
    chain = json.loads(run(*cfg, "responses", "chain", ids["resp2"], "--json").stdout)
    assert [r["id"] for r in chain] == [ids["resp0"], ids["resp1"], ids["resp2"]]
    newest = json.loads(run(*cfg, "responses", "chain", ids["resp2"], "--max-depth", "2", "--json").stdout)
    assert [r["id"] for r in newest] == [ids["resp1"], ids["resp2"]]
    rows = run(*cfg, "responses", "chain", ids["resp2"]).stdout.splitlines()
    assert rows[0].split() == ["#", "ID", "PREVIOUS", "MODEL", "CREATED_AT"]
    assert rows[1].split()[:2] == ["1", ids["resp0"]]
    assert len(rows) == 4
    assert json.loads(run(*cfg, "responses", "chain", ids["resp2"], "--max-depth", "0", "--json").stdout) == []
    with place.storage() as s:  # a loop: a -> b -> a
        s.responses.store_response(StoredResponse(id="loop_a", previous_response_id="loop_b"))
        s.responses.store_response(StoredResponse(id="loop_b", previous_response_id="loop_a"))
    assert "cycle detected at response" in one_error_line(run(*cfg, "responses", "chain", "loop_a"))


# -- export and import -----------------------------------------------------------------------


def test_export_then_import_round_trips_and_reimport_skips(place: Place, tmp_path: Path) -> None:
    ids = seed(place)
    dump = tmp_path / "dump.jsonl"
    exported = run("--config", str(place.file), "export", "-o", str(dump))
    assert exported.exit_code == 0, exported.stderr
    assert "exported 1 conversations, 3 items, 3 links, 3 responses" in exported.stderr
    lines = dump.read_text(encoding="utf-8").splitlines()
    kinds = [json.loads(line)["type"] for line in lines]
    assert kinds == ["conversation"] + ["item"] * 3 + ["link"] * 3 + ["response"] * 3
    link = next(json.loads(line) for line in lines[4:7] if json.loads(line)["item_id"] == ids["item0"])
    assert set(link) == {"type", "conversation_id", "item_id", "added_at"}
    assert link["added_at"] == "2026-01-02T03:04:05.123456Z"
    assert not (tmp_path / "dump.jsonl.partial").exists()

    target = sqlite_place(tmp_path, "target")
    first = run("--config", str(target.file), "import", str(dump), "--json")
    assert first.exit_code == 0, first.stderr
    counts = json.loads(first.stdout)
    assert counts["created"] == {"conversation": 1, "item": 3, "link": 3, "response": 3}
    assert counts["skipped"] == dict.fromkeys(transfer.KINDS, 0)
    again = run("--config", str(target.file), "import", str(dump))
    assert again.exit_code == 0
    assert again.stdout.splitlines()[1:] == [
        "conversation  0        1",
        "item          0        3",
        "link          0        3",
        "response      0        3",
    ]
    with place.storage() as a, target.storage() as b:
        assert transfer.compare_digests(transfer.digest(a), transfer.digest(b)) == []
    # The same dump through stdin, and stdout: byte-identical exports on both sides.
    again_out = run("--config", str(target.file), "export").stdout
    assert again_out == dump.read_text(encoding="utf-8")
    piped = run("--config", str(target.file), "import", "-", stdin=again_out)
    assert piped.exit_code == 0
    assert "conversation  0        1" in piped.stdout


def test_import_of_a_malformed_file_writes_nothing(tmp_path: Path) -> None:
    target = sqlite_place(tmp_path)
    lines = dump_lines(5)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines[:7], '{"type": "item", "id": 3}', *lines[7:]]) + "\n", encoding="utf-8")
    line = one_error_line(run("--config", str(target.file), "import", str(bad)))
    assert line.startswith("datacon: error: line 8: invalid item: ")
    with target.storage() as s:
        assert transfer.counts(s) == dict.fromkeys(transfer.KINDS, 0)
    for text, expected in [
        ("not json\n", "line 1: not valid JSON"),
        ('{"type": "nope"}\n', "line 1: unknown record type 'nope'"),
        ("[1]\n", "line 1: expected a JSON object"),
        (lines[0].replace('"type"', '"extra":1,"type"') + "\n", "line 1: invalid conversation: "),
        (lines[0].replace("2026-01-02T03:04:05", "yesterday") + "\n", "line 1: invalid conversation: "),
        (lines[0].replace("conv_", "x" * 70) + "\n", "characters long; the maximum is 64"),
    ]:
        bad.write_text(text, encoding="utf-8")
        assert expected in one_error_line(run("--config", str(target.file), "import", str(bad)))
    assert "No such file" in one_error_line(run("--config", str(target.file), "import", str(tmp_path / "missing")))
    bad.write_bytes(lines[0].encode() + b"\n" + b'{"type": "conversation", "id": "\xff"}\n')
    assert one_error_line(run("--config", str(target.file), "import", str(bad))) == (
        "datacon: error: line 2: not UTF-8 text"
    )
    with target.storage() as s:
        assert transfer.counts(s) == dict.fromkeys(transfer.KINDS, 0)


@pytest.mark.parametrize(
    ("kind", "field", "bad", "message"),
    [
        ("item", "content", '["ok", "\\ud800"]', "invalid item: content contains a lone surrogate"),
        ("conversation", "metadata", '{"score": NaN}', "invalid conversation: metadata is not JSON-serialisable"),
        ("conversation", "metadata", '{"\\udfff": 1}', "invalid conversation: metadata contains a lone surrogate"),
        ("response", "input", '[{"x": -Infinity}]', "invalid response: input is not JSON-serialisable"),
        ("response", "raw_response", '{"t": "\\ud83d"}', "invalid response: raw_response contains a lone surrogate"),
        ("item", "id", '"msg_' + "0" * 70 + '"', "invalid item: id is 74 characters long; the maximum is 64"),
    ],
)
def test_import_runs_the_storages_value_checks_before_writing_anything(
    place: Place, tmp_path: Path, kind: str, field: str, bad: str, message: str
) -> None:
    lines = dump_lines(40)
    # The last record of its kind turns bad: every batch before it would be written first.
    index = max(n for n, line in enumerate(lines) if json.loads(line)["type"] == kind)
    record = json.loads(lines[index])
    lines[index] = json.dumps({**record, field: "@BAD@"}).replace('"@BAD@"', bad)
    dump = tmp_path / "bad.jsonl"
    dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
    line = one_error_line(run("--config", str(place.file), "import", str(dump), "--batch", "5"))
    assert line.startswith(f"datacon: error: line {index + 1}: {message}"), line
    with place.storage() as s:
        assert transfer.counts(s) == dict.fromkeys(transfer.KINDS, 0)


def test_import_resumes_after_an_interrupted_run(tmp_path: Path) -> None:
    target = sqlite_place(tmp_path)
    lines = dump_lines(300)
    half = tmp_path / "half.jsonl"
    half.write_text("\n".join(lines[: len(lines) // 2]) + "\n", encoding="utf-8")
    full = tmp_path / "full.jsonl"
    full.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run("--config", str(target.file), "import", str(half), "--batch", "64").exit_code == 0
    resumed = json.loads(run("--config", str(target.file), "import", str(full), "--batch", "64", "--json").stdout)
    assert resumed["created"]["response"] == 20
    total = {k: resumed["created"][k] + resumed["skipped"][k] for k in transfer.KINDS}
    assert total == {"conversation": 4, "item": 300, "link": 300, "response": 20}
    assert resumed["skipped"]["item"] > 0
    reference = sqlite_place(tmp_path, "reference")
    assert run("--config", str(reference.file), "import", str(full)).exit_code == 0
    with target.storage() as a, reference.storage() as b:
        assert transfer.compare_digests(transfer.digest(a), transfer.digest(b)) == []


# -- copy ------------------------------------------------------------------------------------


def copy_pairs() -> list[Any]:
    pairs = [
        pytest.param(("sqlite", "sqlite"), id="sqlite-to-sqlite"),
        pytest.param(("sqlite", "sqlite-renamed"), id="sqlite-to-sqlite-renamed"),
    ]
    # Oracle's server is external (DATACON_TEST_ORACLE_DSN): its pairs skip without one.
    servers = [n for n in SERVER_FIXTURES if n in ("redis", "postgres", "oracle")]
    for name in servers:
        marks = [getattr(pytest.mark, name)]
        pairs.append(pytest.param(("sqlite", name), id=f"sqlite-to-{name}", marks=marks))
        pairs.append(pytest.param((name, "sqlite"), id=f"{name}-to-sqlite", marks=marks))
    if "redis" in servers:
        # Same server, other key prefix (owner) and renamed fields: two independent stores.
        pairs.append(pytest.param(("redis", "redis-renamed"), id="redis-to-redis-renamed", marks=[pytest.mark.redis]))
        # The migration path from one server to a Redis Cluster (issue 19), and back.
        pairs.append(pytest.param(("redis", "redis_cluster"), id="redis-to-redis-cluster", marks=[pytest.mark.redis]))
        pairs.append(
            pytest.param(("redis_cluster", "redis-renamed"), id="redis-cluster-to-redis", marks=[pytest.mark.redis])
        )
    if "redis" in servers and "postgres" in servers:
        marks = [pytest.mark.redis, pytest.mark.postgres]
        pairs.append(pytest.param(("redis", "postgres"), id="redis-to-postgres", marks=marks))
    return pairs


def make_place(request: pytest.FixtureRequest, tmp_path: Path, name: str, label: str) -> Place:
    name, _, variant = name.partition("-")
    if name == "sqlite":
        return sqlite_place(tmp_path, label, RENAMED_NO_SKIPS if variant == "renamed" else None)
    backend = request.getfixturevalue(f"{name}_backend")
    backend.wipe()
    config = backend.config(schema=RENAMED_NO_SKIPS if variant == "renamed" else None)
    return Place(name, config, write_config(tmp_path / f"{label}.json", config), backend.wipe)


@pytest.mark.slow
@pytest.mark.parametrize("pair", copy_pairs())
def test_copy_of_10000_items_with_links_verifies_equal(
    pair: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = make_place(request, tmp_path, pair[0], "source")
    target = make_place(request, tmp_path, pair[1], "target")
    try:
        dump = tmp_path / "dump.jsonl"
        dump.write_text("\n".join(dump_lines(10_000)) + "\n", encoding="utf-8")
        loaded = run("--config", str(source.file), "import", str(dump), "--batch", "1000", "--json")
        assert loaded.exit_code == 0, loaded.stderr
        assert json.loads(loaded.stdout)["created"] == {
            "conversation": 4,
            "item": 10_000,
            "link": 10_000,
            "response": 20,
        }

        copied = run("copy", "--from", str(source.file), "--to", str(target.file), "--verify", "--json")
        assert copied.exit_code == 0, copied.stderr
        report = json.loads(copied.stdout)
        assert report["created"] == {"conversation": 4, "item": 10_000, "link": 10_000, "response": 20}
        assert report["verified"] is True
        assert report["differences"] == []
        assert "copying" in copied.stderr  # the progress bar goes to stderr

        # Pages read through the destination's own API agree with the source's.
        with source.storage() as a, target.storage() as b:
            conversation_id = f"conv_{1:050x}"
            for after in (None, f"msg_{101:050x}"):
                params = ListParams(limit=50, after=after)
                assert a.items.list_items(conversation_id, params) == b.items.list_items(conversation_id, params)

        # A second run is a no-op that still verifies: this is how an interrupted copy resumes.
        again = run("copy", "--from", str(source.file), "--to", str(target.file), "--verify", "--no-progress")
        assert again.exit_code == 0, again.stderr
        assert "item          0        10000" in again.stdout
        assert again.stdout.rstrip().endswith("verified: both sides hold the same records")
    finally:
        source.wipe()
        target.wipe()


def test_copy_resumes_into_a_partly_filled_destination(tmp_path: Path) -> None:
    source = sqlite_place(tmp_path, "source")
    target = sqlite_place(tmp_path, "target")
    lines = dump_lines(500)
    dump = tmp_path / "dump.jsonl"
    dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
    part = tmp_path / "part.jsonl"
    part.write_text("\n".join(lines[::3]) + "\n", encoding="utf-8")  # what an interrupted copy left
    assert run("--config", str(source.file), "import", str(dump)).exit_code == 0
    assert run("--config", str(target.file), "import", str(part)).exit_code == 0
    copied = run("copy", "--from", str(source.file), "--to", str(target.file), "--batch", "37", "--verify", "--json")
    assert copied.exit_code == 0, copied.stderr
    report = json.loads(copied.stdout)
    assert sum(report["skipped"].values()) == len(lines[::3])
    assert sum(report["created"].values()) == len(lines) - len(lines[::3])
    assert report["verified"] is True


def test_copy_verify_reports_differences(tmp_path: Path) -> None:
    source = sqlite_place(tmp_path, "source")
    target = sqlite_place(tmp_path, "target")
    dump = tmp_path / "dump.jsonl"
    dump.write_text("\n".join(dump_lines(20)) + "\n", encoding="utf-8")
    assert run("--config", str(source.file), "import", str(dump)).exit_code == 0
    assert run("copy", "--from", str(source.file), "--to", str(target.file)).exit_code == 0
    with target.storage() as s:
        s.conversations.update_conversation(f"conv_{0:050x}", {"changed": True})
        s.responses.store_response(StoredResponse(input=[]))
    failed = run("copy", "--from", str(source.file), "--to", str(target.file), "--verify", "--no-progress")
    assert one_error_line(failed) == (
        "datacon: error: verification failed: conversations: same count (4) but different content; "
        "responses: 20 in the source, 21 in the destination"
    )


def test_copy_into_a_destination_that_skips_columns_does_not_verify(tmp_path: Path) -> None:
    source = sqlite_place(tmp_path, "source")
    lossy = sqlite_place(tmp_path, "lossy", RENAMED_SCHEMA)  # skips items.status and responses.model
    dump = tmp_path / "dump.jsonl"
    dump.write_text("\n".join(dump_lines(30)) + "\n", encoding="utf-8")
    assert run("--config", str(source.file), "import", str(dump)).exit_code == 0
    failed = run("copy", "--from", str(source.file), "--to", str(lossy.file), "--verify", "--json", "--no-progress")
    assert one_error_line(failed) == (
        "datacon: error: verification failed: items: same count (30) but different content; "
        "responses: same count (20) but different content"
    )
    report = json.loads(failed.stdout)
    assert report["verified"] is False
    assert report["created"] == {"conversation": 4, "item": 30, "link": 30, "response": 20}


def test_copy_rejects_same_config_and_missing_source(tmp_path: Path) -> None:
    source = sqlite_place(tmp_path, "source")
    assert one_error_line(run("copy", "--from", str(source.file), "--to", str(source.file))).endswith(
        "--from and --to name the same configuration"
    )
    target = sqlite_place(tmp_path, "target")
    line = one_error_line(run("copy", "--from", str(source.file), "--to", str(target.file)))
    assert line.startswith("datacon: error: no SQLite database at ")


# -- configuration and doctor ----------------------------------------------------------------


def test_default_config_and_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_sqlite()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATACON_CONFIG", raising=False)
    assert "no SQLite database at datacon-demo.db" in one_error_line(run("conversations", "show", "c1"))
    with create_storage(
        StorageFactoryConfig.from_mapping({"backend": "sqlite", "sqlite": {"path": "datacon-demo.db"}})
    ) as s:
        s.conversations.create_conversation(NewConversation(id="c1"))
    assert run("conversations", "show", "c1").exit_code == 0
    other = sqlite_place(tmp_path, "other")
    with other.storage():
        pass
    assert "conversation c1 not found" in one_error_line(
        run("conversations", "show", "c1", env={"DATACON_CONFIG": str(other.file)})
    )
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("backend: sqlite\nsqlite:\n  path: datacon-demo.db\n")
    toml_file = tmp_path / "c.toml"
    toml_file.write_text('backend = "sqlite"\n[sqlite]\npath = "datacon-demo.db"\n')
    for file in (yaml_file, toml_file):
        assert run("--config", str(file), "conversations", "show", "c1", "--json").exit_code == 0


def test_bad_config_files_give_one_line(tmp_path: Path) -> None:
    cases = {
        "typo.yaml": ("backend: sqlite\nsqlite:\n  pth: x.db\n", "sqlite"),
        "bad.yaml": ("backend: [\n", "cannot parse bad.yaml: invalid YAML"),
        "unknown.json": ('{"backend": "mongo"}', "unknown backend 'mongo'"),
        "x.ini": ("", "unsupported config file type '.ini'"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert expected in one_error_line(run("--config", str(path), "conversations", "show", "c"))
    doctor = run("--config", str(tmp_path / "none.yaml"), "doctor")
    assert doctor.exit_code == 1
    assert "FAIL  config      config: cannot read config file" in doctor.stdout
    assert "No such command 'frobnicate'" in one_error_line(run("frobnicate"))
    usage = one_error_line(run("items", "list"))
    assert "Missing argument 'CONVERSATION_ID'" in usage
    assert "datacon items list --help" in usage


def test_doctor_on_a_good_sqlite_database(tmp_path: Path) -> None:
    target = sqlite_place(tmp_path)
    with target.storage():
        pass
    result = run("--config", str(target.file), "doctor")
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == f"using config file {target.file}"
    assert [line.split()[:2] for line in lines[1:]] == [["ok", "config"], ["ok", "connection"], ["ok", "schema"]]
    data = json.loads(run("--config", str(target.file), "doctor", "--json").stdout)
    assert [c["check"] for c in data["checks"]] == ["config", "connection", "schema"]
    assert all(c["ok"] for c in data["checks"])


def test_doctor_reports_invalid_config_and_unreachable_servers_without_secrets(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "redis.yaml"
    cfg.write_text(
        f"backend: redis\nredis:\n  url: redis://:hunter2-secret@127.0.0.1:{port}/0\n  connect_timeout_secs: 1\n"
    )
    result = run("--config", str(cfg), "doctor")
    assert result.exit_code == 1
    assert "hunter2-secret" not in result.stdout + result.stderr
    assert "redis://:****@127.0.0.1" in result.stdout
    assert [line.split()[:2] for line in result.stdout.splitlines()[1:]] == [["ok", "config"], ["FAIL", "connection"]]
    assert "BackendUnavailableError" in result.stdout
    unreachable = one_error_line(run("--config", str(cfg), "conversations", "show", "c"))
    assert "server unavailable" in unreachable
    assert "hunter2-secret" not in unreachable

    pg = tmp_path / "pg.yaml"
    pg.write_text("backend: postgres\npostgres:\n  db_url: postgres://u:hunter2-secret@db.example:99999/db\n")
    bad = run("--config", str(pg), "doctor")
    assert bad.exit_code == 1
    assert "FAIL  config      postgres.db_url: invalid db_url: invalid port" in bad.stdout
    assert "hunter2-secret" not in bad.stdout + bad.stderr
    assert "invalid db_url: invalid port" in one_error_line(run("--config", str(pg), "migrate", "status"))


def test_migrate_on_backends_without_a_schema(tmp_path: Path) -> None:
    cfg = tmp_path / "m.yaml"
    cfg.write_text("backend: memory\n")
    for action in ("status", "plan", "apply"):
        result = run("--config", str(cfg), "migrate", action)
        assert result.exit_code == 0
        assert result.stdout.strip() == "the memory backend has no schema migrations"


def test_export_of_a_backend_without_the_seam_fails_cleanly(tmp_path: Path) -> None:
    cfg = tmp_path / "none.yaml"
    cfg.write_text("backend: none\n")
    line = one_error_line(run("--config", str(cfg), "export"))
    assert line.startswith("datacon: error: the none backend cannot be enumerated")
    source = tmp_path / "src.yaml"
    source.write_text("backend: none\n")
    copy_line = one_error_line(run("copy", "--from", str(source), "--to", str(cfg), "--no-progress"))
    assert copy_line.startswith("datacon: error: the none backend cannot be enumerated")
    assert "resume" not in copy_line


class SchemaPlace:
    """A SQL storage whose ``_schema_versions`` rows a test can read and forget."""

    def __init__(self, place: Place) -> None:
        self.place = place

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        config = self.place.config
        if self.place.name == "sqlite":
            assert config.sqlite is not None
            with sqlite3.connect(config.sqlite.path) as db:
                rows = db.execute(statement).fetchall()
            db.close()
            return rows
        import psycopg

        assert config.postgres is not None
        with psycopg.connect(config.postgres.db_url, autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def versions(self) -> list[int]:
        return [row[0] for row in self.sql("SELECT version FROM _schema_versions ORDER BY version")]


@contextmanager
def server_schema_place(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Iterator[SchemaPlace]:
    backend = request.getfixturevalue(f"{name}_backend")
    config = backend.config()
    place = SchemaPlace(Place(name, config, write_config(tmp_path / f"{name}.json", config), backend.wipe))
    try:
        yield place
    finally:
        # Leave the shared server's schema as other tests expect it: up to date.
        run("--config", str(place.place.file), "migrate", "apply")
        backend.wipe()


@pytest.fixture(params=["sqlite", *[n for n in SERVER_FIXTURES if n == "postgres"]])
def sql_place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SchemaPlace]:
    if request.param == "sqlite":
        yield SchemaPlace(sqlite_place(tmp_path))
        return
    with server_schema_place(request, tmp_path, request.param) as place:
        yield place


def test_migrate_status_plan_apply(sql_place: SchemaPlace) -> None:
    target = sql_place.place
    cfg = ("--config", str(target.file))
    if target.name == "sqlite":
        fresh = run(*cfg, "migrate", "status")
        assert fresh.stdout.startswith("no SQLite database at")
    with target.storage():
        pass
    up_to_date = run(*cfg, "migrate", "status", "--json")
    assert up_to_date.exit_code == 0
    status = json.loads(up_to_date.stdout)
    assert status["up_to_date"] is True
    assert status["statements"] == []
    assert status["current"] == status["latest"] == sql_place.versions()[-1]
    assert run(*cfg, "migrate", "plan").stdout.strip() == "-- nothing to apply: the schema is up to date"
    assert run(*cfg, "migrate", "apply").stdout.strip() == "nothing to apply: the schema is up to date"
    latest = sql_place.versions()[-1]

    # Forget the recorded versions, as a database made by an old release would look.
    sql_place.sql("DELETE FROM _schema_versions")
    pending = run(*cfg, "migrate", "status", "--json")
    # Pending migrations are a failure (docs/cli.md, exit status 1): the status, then one line.
    assert one_error_line(pending) == (
        f"datacon: error: {len(json.loads(pending.stdout)['statements'])} migration statement(s) pending: "
        "run 'datacon migrate apply'"
    )
    assert pending.exit_code == 1
    old = json.loads(pending.stdout)
    assert old["up_to_date"] is False
    assert old["current"] == 0
    assert old["latest"] == latest
    assert any("_schema_versions" in s for s in old["statements"])
    plan = run(*cfg, "migrate", "plan").stdout
    assert plan.strip().splitlines() == [s if s.rstrip().endswith(";") else f"{s};" for s in old["statements"]]
    assert run(*cfg, "migrate", "plan").exit_code == 0  # the plan is what was asked for
    assert run(*cfg, "migrate", "status").exit_code == 1
    human = run(*cfg, "migrate", "status").stdout.splitlines()
    assert human[1:] == ["current  0", f"latest   {latest}", f"pending  {len(old['statements'])} statement(s)"]
    blocked = one_error_line(run(*cfg, "conversations", "show", "c"))
    assert blocked.startswith("datacon: error: Schema migration required (current version: 0, latest version: ")
    assert "datacon migrate plan" in blocked
    assert "datacon migrate apply" in blocked
    doctor = run(*cfg, "doctor")
    assert doctor.exit_code == 1
    assert f"FAIL  schema      version 0, latest {latest}: " in doctor.stdout
    applied = run(*cfg, "migrate", "apply")
    assert applied.exit_code == 0, applied.stderr
    assert applied.stdout.startswith(f"applied {len(old['statements'])} statement(s)")
    assert sql_place.versions() == list(range(1, latest + 1))
    assert json.loads(run(*cfg, "migrate", "status", "--json").stdout)["up_to_date"] is True
    assert run(*cfg, "doctor").exit_code == 0


@pytest.mark.postgres
def test_concurrent_migrate_apply_on_postgres_applies_each_migration_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with server_schema_place(request, tmp_path, "postgres") as pg:
        with pg.place.storage():
            pass
        pg.sql("DELETE FROM _schema_versions")
        command = [sys.executable, "-m", "datacon", "--config", str(pg.place.file), "migrate", "apply"]
        runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        results = [(proc.wait(timeout=120), *proc.communicate()) for proc in runs]
        assert [code for code, _, _ in results] == [0, 0, 0, 0], results
        # Under the advisory lock each migration ran once (a second INSERT would have failed).
        assert pg.sql("SELECT version FROM _schema_versions ORDER BY version") == [
            (version,) for version in range(1, LATEST + 1)
        ]


def test_a_failed_import_batch_writes_nothing_and_a_rerun_resumes(sql_place: SchemaPlace, tmp_path: Path) -> None:
    target = sql_place.place
    with target.storage():
        pass
    # The database itself refuses one item of the third batch (a trigger / CHECK constraint).
    if target.name == "sqlite":
        sql_place.sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON conversation_items WHEN NEW.role = 'forbidden' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        lift = "DROP TRIGGER refuse"
    else:
        sql_place.sql("ALTER TABLE conversation_items ADD CONSTRAINT refuse CHECK (role <> 'forbidden')")
        lift = "ALTER TABLE conversation_items DROP CONSTRAINT refuse"
    lines = dump_lines(100)
    records = [json.loads(line) for line in lines]
    items = [r for r in records if r["type"] == "item"]
    items[45]["role"] = "forbidden"  # batches of 20: the third batch is items 40-59
    dump = tmp_path / "dump.jsonl"
    dump.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    try:
        failed = run("--config", str(target.file), "import", str(dump), "--batch", "20")
        line = one_error_line(failed)
        assert "refuse" in line
        assert line.endswith("(the batches before it are written: re-run the same command to resume)")
        assert sql_place.sql("SELECT COUNT(*) FROM conversation_items") == [(40,)]  # two whole batches
        assert sql_place.sql("SELECT COUNT(*) FROM conversations") == [(4,)]
    finally:
        sql_place.sql(lift)
    resumed = json.loads(run("--config", str(target.file), "import", str(dump), "--batch", "20", "--json").stdout)
    assert resumed["created"] == {"conversation": 0, "item": 60, "link": 100, "response": 20}
    assert resumed["skipped"] == {"conversation": 4, "item": 40, "link": 0, "response": 0}


# -- schema drift: the config declares columns the existing tables lack ---------------------------

DRIFTED = SchemaConfig(
    conversations=TableConfig(
        "conversations", columns={"metadata": "meta"}, extra_columns={"tenant": ColumnDef("VARCHAR(64)")}
    ),
    conversation_item_links=TableConfig(
        "conversation_item_links", extra_columns={"tenant": ColumnDef("VARCHAR(64)", default_value="t0")}
    ),
)


@pytest.fixture(
    params=[pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def drift_place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Place, Place]]:
    """The same empty database configured twice: the default schema, and ``DRIFTED``."""
    if request.param == "sqlite":
        default = sqlite_place(tmp_path, "drift")
        path = str(tmp_path / "drift.db")
        config = StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(path, schema=DRIFTED))
        yield default, Place("sqlite", config, write_config(tmp_path / "drifted.json", config))
        return
    backend = request.getfixturevalue("postgres_backend")
    url = backend.create_database()
    try:
        places = []
        for name, schema in (("default", None), ("drifted", DRIFTED)):
            config = StorageFactoryConfig(backend="postgres", postgres=backend.postgres_config(schema, url=url))
            places.append(Place("postgres", config, write_config(tmp_path / f"{name}.json", config)))
        yield places[0], places[1]
    finally:
        backend.drop_database(url)


def test_schema_drift_is_found_at_start_up_and_by_doctor_and_migrate_adds_it(
    drift_place: tuple[Place, Place],
) -> None:
    default, drifted = drift_place
    with default.storage() as storage:
        storage.conversations.create_conversation(NewConversation(id="c1", metadata={"kept": True}))
        storage.items.create_item(NewConversationItem("message", "hi", id="msg_1"))
    # The renamed column exists under its old name (renamed, so the data stays); the extra
    # columns are added.
    expected = (
        ("RENAME COLUMN", "metadata", "meta"),
        ("ADD COLUMN", "conversations", "tenant"),
        (
            "ADD COLUMN",
            "conversation_item_links",
            "tenant",
        ),
    )

    with pytest.raises(MigrationRequiredError) as info:
        drifted.storage()
    statements = info.value.statements
    assert len(statements) == 3, statements
    for words, statement in zip(expected, statements, strict=True):
        assert all(word in statement for word in words), (words, statement)
    message = str(info.value)
    assert "conversations" in message
    assert "'meta'" in message
    assert "'tenant'" in message
    assert all(statement in message for statement in statements)

    cfg = ("--config", str(drifted.file))
    doctor = run(*cfg, "doctor")
    assert doctor.exit_code == 1
    schema_line = next(line for line in doctor.stdout.splitlines() if line.startswith(("FAIL  schema", "ok    schema")))
    assert schema_line.startswith("FAIL  schema")
    assert all(statement in schema_line for statement in statements)  # they name the columns
    status = json.loads(run(*cfg, "migrate", "status", "--json").stdout)
    assert status["up_to_date"] is False
    assert status["statements"] == list(statements)
    plan = run(*cfg, "migrate", "plan").stdout
    assert all(statement in plan for statement in statements)
    assert run(*("--config", str(default.file)), "doctor").exit_code == 0  # the default config still fits

    applied = run(*cfg, "migrate", "apply")
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    assert json.loads(run(*cfg, "migrate", "status", "--json").stdout)["up_to_date"] is True
    assert run(*cfg, "doctor").exit_code == 0
    with drifted.storage() as storage:
        conversation = storage.conversations.get_conversation("c1")
        assert conversation is not None
        assert conversation.metadata == {"kept": True}  # the renamed column kept its data
        storage.conversations.create_conversation(NewConversation(id="c2", metadata={"new": 1}))
        storage.items.link_item("c2", "msg_1", T0)
        assert [item.id for item in storage.items.list_items("c2", ListParams(5))] == ["msg_1"]


def test_schema_drift_is_applied_at_start_up_with_auto_migrate(drift_place: tuple[Place, Place]) -> None:
    default, drifted = drift_place
    with default.storage():
        pass
    section = attrs.evolve(drifted.config.section(), schema=attrs.evolve(DRIFTED, auto_migrate=True))
    auto = attrs.evolve(drifted.config, **{drifted.name: section})
    with create_storage(auto) as storage:
        storage.conversations.create_conversation(NewConversation(id="c1", metadata={"a": 1}))
        storage.items.create_item(NewConversationItem("message", "hi", id="msg_1"))
        storage.items.link_item("c1", "msg_1", T0)
    with drifted.storage() as storage:  # nothing pending any more
        assert [item.id for item in storage.items.list_items("c1", ListParams(5))] == ["msg_1"]


def test_conversations_list_pages_and_filters(tmp_path: Path) -> None:
    schema = SchemaConfig(
        conversations=TableConfig(
            table="conversations", extra_columns={"tenant_id": ColumnDef("VARCHAR(64)", default_value="t1")}
        )
    )
    place = sqlite_place(tmp_path, schema=schema)
    with place.storage() as s:
        convs = [s.conversations.create_conversation(NewConversation(metadata={"n": n})) for n in range(3)]
    ids = [c.id for c in sorted(convs, key=lambda c: (c.created_at, c.id))]
    cfg = ("--config", str(place.file))
    first = json.loads(run(*cfg, "conversations", "list", "--limit", "2", "--filter", "tenant_id=t1", "--json").stdout)
    assert [c["id"] for c in first["data"]] == ids[:2]
    assert first["has_more"] is True
    assert first["first_id"] == ids[0]
    assert first["last_id"] == ids[1]
    rest = json.loads(run(*cfg, "conversations", "list", "--after", first["next_cursor"], "--json").stdout)
    assert [c["id"] for c in rest["data"]] == ids[2:]
    assert rest["has_more"] is False
    assert rest["next_cursor"] is None
    desc = json.loads(run(*cfg, "conversations", "list", "--order", "desc", "--json").stdout)
    assert [c["id"] for c in desc["data"]] == ids[::-1]
    none = json.loads(run(*cfg, "conversations", "list", "--filter", "tenant_id=t2", "--json").stdout)
    assert none["data"] == []
    table = run(*cfg, "conversations", "list", "--limit", "1")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "CREATED_AT", "METADATA"]
    assert lines[1].startswith(ids[0])
    assert lines[-1].startswith("(more: --after cv1_")
    assert "is not an extra column" in one_error_line(run(*cfg, "conversations", "list", "--filter", "user=u1"))
    assert "--filter" in one_error_line(run(*cfg, "conversations", "list", "--filter", "no-equals-sign"))
