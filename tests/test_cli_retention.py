"""``datacon prune`` and ``datacon erase`` (SPEC 7.7), and the progress shown by long commands:
a bar (or a running count) on a terminal, one summary line otherwise."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from datacon import NewConversation, NewConversationItem, StoredResponse, create_storage
from datacon.cli import cli, parse_age
from tests.support import repo_root


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _fill(url: str, n: int = 30) -> None:
    """``n`` conversations with one item each, and ``n`` responses of user u1 40 days old."""
    with create_storage(url) as storage:
        for k in range(n):
            conv = storage.conversations.create_conversation(NewConversation())
            storage.items.append_items(conv.id, [NewConversationItem("message", {"n": k})])
            storage.responses.store_response(
                StoredResponse(
                    safety_identifier="u1", conversation_id=conv.id, created_at=datetime.now(UTC) - timedelta(days=40)
                )
            )


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    _fill(url)
    return url


def test_parse_age_takes_ages_and_instants() -> None:
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_age("45s") == timedelta(seconds=45)
    assert parse_age("2w") == timedelta(weeks=2)
    assert parse_age("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_age("2026-01-01T02:00:00+02:00") == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["yesterday", "30x", "-3d", "2026-01-01T00:00:00"])
def test_prune_refuses_what_is_not_an_age_or_an_aware_instant(url: str, bad: str) -> None:
    result = run("prune", "--url", url, "--older-than", bad)
    assert result.exit_code == 2
    assert bad in result.stderr
    with create_storage(url) as storage:
        assert len(storage.responses.list_identifier_responses("u1")) == 30  # nothing deleted


def test_prune_dry_run_then_prune(url: str) -> None:
    dry = run("prune", "--url", url, "--older-than", "30d", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout == "would delete 30 responses, 0 conversations, 0 links, 0 items\n"
    done = run("prune", "--url", url, "--older-than", "30d", "--json")
    assert json.loads(done.stdout) == {"responses": 30, "conversations": 0, "links": 0, "items": 0, "dry_run": False}
    again = run("prune", "--url", url, "--older-than", "0s", "--batch", "7")
    assert again.stdout == "deleted 0 responses, 30 conversations, 30 links, 30 items\n"


def test_erase_dry_run_then_erase(url: str) -> None:
    dry = run("erase", "--url", url, "--identifier", "u1", "--dry-run", "--json")
    assert json.loads(dry.stdout) == {"responses": 30, "conversations": 30, "links": 30, "items": 30, "dry_run": True}
    done = run("erase", "--url", url, "--identifier", "u1")
    assert done.stdout == "deleted 30 responses, 30 conversations, 30 links, 30 items\n"
    assert run("erase", "--url", url, "--identifier", "u1").stdout.startswith("deleted 0 responses")


def _in_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``datacon args`` with stdin/stdout/stderr on a pseudo-terminal; exit code and output."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "datacon", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(repo_root()), "COLUMNS": "100"},
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_long_commands_show_progress_on_a_terminal_and_a_summary_line_otherwise(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'src.db'}"
    _fill(source, 40)
    dump = tmp_path / "dump.jsonl"
    code, shown = _in_a_terminal(["export", "--url", source, "-o", str(dump)], tmp_path)
    assert code == 0, shown
    assert "exporting" in shown
    assert "160/160" in shown
    assert "exported 40 conversations, 40 items, 40 links, 40 responses" in shown
    code, shown = _in_a_terminal(["import", "--url", f"sqlite:///{tmp_path / 'dst.db'}", str(dump)], tmp_path)
    assert code == 0, shown
    assert "importing" in shown
    assert "160/160" in shown
    code, shown = _in_a_terminal(
        ["copy", "--from", source, "--to", f"sqlite:///{tmp_path / 'copy.db'}", "--verify"], tmp_path
    )
    assert code == 0, shown
    assert "copying" in shown
    assert "verifying" in shown
    assert "320/320" in shown
    code, shown = _in_a_terminal(["prune", "--url", source, "--older-than", "0s", "--batch", "10"], tmp_path)
    assert code == 0, shown
    assert "\rpruning: " in shown  # the running count, rewritten in place
    assert "deleted 40 responses, 40 conversations, 40 links, 40 items" in shown
    # Not a terminal: no bar, one summary line on stderr.
    target = f"sqlite:///{tmp_path / 'again.db'}"
    quiet = subprocess.run(
        [sys.executable, "-m", "datacon", "import", "--url", target, str(dump)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(repo_root())},
        check=True,
    )
    assert quiet.stderr == ""  # no bar, no count: the summary is the table
    assert "conversation  40       0" in quiet.stdout
