"""SQLite crash safety: a writer process SIGKILLed mid-write loses nothing it acknowledged."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
import pytest

from datacon import NewConversation, SqliteConfig, StorageFactoryConfig, create_storage
from tests.reliability import figures
from tests.reliability._load import Ack, missing, torn
from tests.support import repo_root

pytestmark = [pytest.mark.reliability, pytest.mark.sqlite]

# Writes acknowledged before each SIGKILL (the same file across rounds).
KILL_AFTER = [1, 300, 50, 500, 150]


@attrs.define
class Killed:
    """What a killed writer printed: its acknowledged writes, the batches it tried, its stderr."""

    acks: list[Ack]
    batches: list[Ack]
    stderr: str


def kill_writer_after(path: Path, acks: int, max_wait: float = 60) -> Killed:
    """Run a writer process until it acknowledged ``acks`` writes (or for ``max_wait`` s), SIGKILL it."""
    lines: list[str] = []
    enough = threading.Event()
    with subprocess.Popen(
        [sys.executable, "-m", "tests.reliability._sqlite_writer", str(path), secrets.token_hex(3)],
        cwd=repo_root(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        stdout, stderr_pipe = child.stdout, child.stderr
        assert stdout is not None
        assert stderr_pipe is not None

        def read() -> None:
            # Everything the child printed was acknowledged, including lines still in the pipe
            # when it dies: keep reading until EOF.
            acknowledged = 0
            for line in stdout:
                lines.append(line)
                acknowledged += line.startswith('["ack"')
                if acknowledged >= acks:
                    enough.set()
            enough.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        enough.wait(timeout=max_wait)
        os.kill(child.pid, signal.SIGKILL)  # mid-write: the loop never pauses
        child.wait(timeout=10)
        reader.join(timeout=10)
        stderr = stderr_pipe.read()
    decoded = [json.loads(line) for line in lines if line.endswith("\n")]  # a torn last line was not printed
    events = [(event, Ack(kind, tuple(key), 0.0)) for event, kind, *key in decoded]
    return Killed(
        [ack for event, ack in events if event == "ack"], [ack for event, ack in events if event == "try"], stderr
    )


def check_file(path: Path, acknowledged: list[Ack], batches: list[Ack]) -> float:
    """The file passes SQLite's integrity check, every acknowledged write reads back and no
    ``link_items`` batch is half linked; how long reopening took."""
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    raw.close()
    reopened = time.monotonic()
    with create_storage(StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(path=str(path)))) as storage:
        recovery = time.monotonic() - reopened
        lost = missing(storage, acknowledged)
        partial = torn(storage, batches)
    assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
    assert partial == [], f"{len(partial)} link_items batches half written, e.g. {partial[:3]}"
    return recovery


def test_sqlite_writer_killed_mid_write_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    acknowledged: list[Ack] = []
    batches: list[Ack] = []
    for round_, kill_after in enumerate(KILL_AFTER, 1):
        started = time.monotonic()
        killed = kill_writer_after(path, kill_after)
        acks = killed.acks
        assert len(acks) >= kill_after, f"round {round_}: the writer did not get going: {killed.stderr[-2000:]}"
        assert "Error" not in killed.stderr, killed.stderr[-2000:]
        acknowledged += acks
        batches += killed.batches
        recovery = check_file(path, acknowledged, batches)
        figures.record(
            f"faults[sqlite] round {round_}",
            f"{len(acks)} writes acknowledged before SIGKILL after {time.monotonic() - started:.1f} s, lost 0, "
            f"integrity_check ok, reopened in {recovery:.3f} s",
        )
    figures.record(
        "faults[sqlite]",
        f"{len(KILL_AFTER)} kills, {len(acknowledged)} acknowledged writes, lost 0; "
        f"{len(batches)} link_items batches attempted, none half written",
    )


@pytest.mark.parametrize("delay", [0.3, 0.6, 0.9])
def test_sqlite_killed_while_creating_its_schema_reopens(tmp_path: Path, delay: float) -> None:
    """A process killed around start-up (imports, DDL, first writes) leaves a usable file."""
    path = tmp_path / "early.db"
    killed = kill_writer_after(path, acks=10**9, max_wait=delay)
    assert "Error" not in killed.stderr, killed.stderr[-2000:]
    if path.exists():
        check_file(path, killed.acks, killed.batches)
    with create_storage(StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(path=str(path)))) as storage:
        assert storage.conversations.create_conversation(NewConversation()).id
