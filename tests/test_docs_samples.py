"""Runs every code sample of docs/*.md and README.md, so the documentation cannot drift.

Rules (also stated in docs/contributing.md):

- Every fenced ```` ```python ```` block runs in a fresh ``python`` subprocess; all the blocks of
  one page share one temporary working directory, in page order.
- A block preceded by ``<!-- not-tested: REASON -->`` is not run (the reason is required).
- A block preceded by ``<!-- file: NAME -->`` is written to ``NAME`` in the working directory
  before later blocks run; a Python file written this way is not run by itself, so a later
  console block must run it.
- ``yaml``/``toml``/``json`` blocks must parse; one whose top level names a backend or a
  backend section is loaded with ``StorageFactoryConfig.from_file`` and its section validated.
  A ``${VAR}`` reference (no default) to a variable the environment does not set gets a
  placeholder value for that check, as a deployment would inject the real one.
  A ``json`` block that is not one document must be JSON Lines (one object a line).
- ``console``/``bash``/``shell`` blocks: lines starting with ``$ `` are commands, the lines
  after one are its expected output (compared with doctest's ``ELLIPSIS``; empty means "not
  checked"). A block whose commands start with ``datacon`` or ``python`` is run, unless it is a
  synopsis (placeholders: ``…``, ``[optional]``, ``<name>``, UPPERCASE metavars); the exit
  status must be 0 unless the expected output shows ``datacon: error:``.
- Samples reach servers through ``DATACON_POSTGRES_URL`` and ``DATACON_REDIS_URL``, which the
  runner sets from the ``postgres_backend`` / ``redis_backend`` test fixtures.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from tests.support import server_missing

ROOT = Path(__file__).resolve().parent.parent

#: Environment variable a sample reads -> the backend fixture (tests/servers/<name>.py) that supplies it.
SERVER_VARIABLES = {"DATACON_POSTGRES_URL": "postgres", "DATACON_REDIS_URL": "redis"}
CONFIG_KEYS = {"backend", "history_backend", "postgres", "redis", "oracle", "sqlite"}
SHELL_LANGS = {"console", "bash", "shell", "sh", "shell-session"}
CONFIG_LANGS = {"yaml": ".yaml", "yml": ".yaml", "toml": ".toml", "json": ".json"}
RUNNABLE_COMMANDS = ("datacon", "python")
SAMPLE_TIMEOUT = 180

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not-tested|file)\s*:\s*(?P<value>.*?)\s*-->\s*$")
_COMMENT = re.compile(r"^\s*<!--.*-->\s*$")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Synopsis notation in a command line: an ellipsis, [optional], <placeholder>, a|b choices
# outside quotes are not checked (pipes are shell), UPPERCASE metavars such as ID or FILE.
_SYNOPSIS = re.compile(r"…|\[[^\]]*\]|<[a-z][^>]*>|(?<![\w$-])[A-Z][A-Z_]*(?![\w=])")


@attrs.define
class Block:
    """One fenced code block of a page."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_tested: str | None = None  # the reason, when marked <!-- not-tested: ... -->
    file_name: str | None = None  # <!-- file: NAME -->

    @property
    def where(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}"


def extract_blocks(path: Path) -> list[Block]:
    """Every fenced code block of ``path``, with its markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        lang = (match["info"].split() or [""])[0].lower()
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = lines[index].strip()
            if closing.startswith(fence) and set(closing) == {fence[0]}:
                break
            body.append(lines[index][indent:] if lines[index][:indent].strip() == "" else lines[index])
            index += 1
        index += 1
        block = Block(path, start + 1, lang, "\n".join(body) + "\n")
        _attach_markers(block, lines, start)
        blocks.append(block)
    return blocks


def _attach_markers(block: Block, lines: list[str], start: int) -> None:
    # Markers are the HTML comments right above the fence (blank lines between are allowed).
    cursor = start - 1
    while cursor >= 0 and (not lines[cursor].strip() or _COMMENT.match(lines[cursor])):
        marker = _MARKER.match(lines[cursor])
        if marker is not None:
            if marker["kind"] == "not-tested":
                if not marker["value"]:
                    raise AssertionError(f"{block.where}: a not-tested marker needs a reason")
                block.not_tested = marker["value"]
            else:
                block.file_name = marker["value"]
        cursor -= 1


@attrs.define
class Command:
    """One ``$ command`` of a console block and the output shown under it."""

    text: str
    expected: str


def commands(block: Block) -> list[Command]:
    found: list[Command] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            found.append(Command(line[2:].strip(), ""))
        elif found:
            found[-1].expected += line + "\n"
    return found


def is_synopsis(command: str) -> bool:
    """Whether a command line uses placeholder notation and so cannot be run as written."""
    without_comment = command.split(" #", 1)[0]
    # Quoted arguments are literal text, never placeholders.
    try:
        words = shlex.split(without_comment)
    except ValueError:
        return True
    words = [w for w in words if not _ASSIGNMENT.match(w)]
    return any(_SYNOPSIS.search(word) for word in words[1:])


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def program(command: str) -> str:
    """The program a command line runs (after ``NAME=value`` environment assignments)."""
    words = [w for w in command.split() if not _ASSIGNMENT.match(w)]
    return words[0] if words else ""


def shell_kind(block: Block) -> str:
    """``"run"``, ``"synopsis"`` or ``"other"`` (commands that are not datacon/python)."""
    cmds = commands(block)
    if not any(program(c.text) in RUNNABLE_COMMANDS for c in cmds):
        return "other"
    if any(is_synopsis(c.text) for c in cmds):
        return "synopsis"
    return "run"


def parse_config_text(block: Block) -> Any:
    """Parse a yaml/toml/json block; JSON that is not one document must be JSON Lines."""
    if block.lang in ("yaml", "yml"):
        return yaml.safe_load(block.code)
    if block.lang == "toml":
        return tomllib.loads(block.code)
    try:
        return json.loads(block.code)
    except json.JSONDecodeError:
        return [json.loads(line) for line in block.code.splitlines() if line.strip()]


def is_config(data: Any) -> bool:
    return isinstance(data, dict) and bool(CONFIG_KEYS & set(data))


def shim_bin(directory: Path) -> Path:
    """A directory with ``python`` and ``datacon`` that run this interpreter (first on PATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    scripts = {
        "python": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n',
        "datacon": f'#!/bin/sh\nexec "{sys.executable}" -m datacon "$@"\n',
    }
    for name, text in scripts.items():
        target = directory / name
        target.write_text(text)
        target.chmod(target.stat().st_mode | stat.S_IEXEC)
    return directory


def sample_env(extra: dict[str, str], bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATACON_CONFIG", "DB_AUTO_MIGRATE", *SERVER_VARIABLES)}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def needed_servers(block: Block) -> list[str]:
    return [name for variable, name in SERVER_VARIABLES.items() if variable in block.code]


@attrs.define
class PageRun:
    """The outcome of running one page's samples."""

    ran: list[str] = attrs.field(factory=list)
    not_run: list[str] = attrs.field(factory=list)
    missing_servers: list[str] = attrs.field(factory=list)


def run_page(
    path: Path,
    workdir: Path,
    server_url: Callable[[str], str | None],
) -> PageRun:
    """Run every sample of ``path`` in ``workdir``; raise ``AssertionError`` on the first failure.

    ``server_url(name)`` returns the URL of that backend's test server, or ``None`` when it is
    unavailable (the blocks needing it are then recorded in ``missing_servers``).
    """
    blocks = extract_blocks(path)
    cwd = workdir / "cwd"
    scripts = workdir / "samples"
    cwd.mkdir(parents=True, exist_ok=True)
    scripts.mkdir(parents=True, exist_ok=True)
    bin_dir = shim_bin(workdir / "bin")
    outcome = PageRun()
    written_python: dict[str, Block] = {}
    for block in blocks:
        if block.not_tested is not None:
            outcome.not_run.append(f"{block.where} ({block.lang}): {block.not_tested}")
            continue
        extra: dict[str, str] = {}
        missing = False
        for name in needed_servers(block):
            url = server_url(name)
            if url is None:
                missing = True
            else:
                extra[f"DATACON_{name.upper()}_URL"] = url
        if missing:
            outcome.missing_servers.append(block.where)
            continue
        env = sample_env(extra, bin_dir)
        if block.file_name is not None:
            target = cwd / block.file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
            if block.lang == "python":
                written_python[block.file_name] = block
        if block.lang == "python":
            if block.file_name is None:
                _run_python(block, scripts, cwd, env)
            outcome.ran.append(block.where)
        elif block.lang in CONFIG_LANGS:
            _check_config(block, scripts)
            outcome.ran.append(block.where)
        elif block.lang in SHELL_LANGS:
            kind = shell_kind(block)
            if kind == "run":
                for command in commands(block):
                    _run_command(block, command, cwd, env)
                    for name in list(written_python):
                        if name in command.text:
                            del written_python[name]
                outcome.ran.append(block.where)
            else:
                outcome.not_run.append(f"{block.where} ({block.lang}): {kind}")
    if written_python:
        names = ", ".join(f"{b.where} ({n})" for n, b in written_python.items())
        raise AssertionError(f"python files written by <!-- file: --> but never run by a console block: {names}")
    return outcome


def _failure(block: Block, what: str, result: subprocess.CompletedProcess[str]) -> AssertionError:
    return AssertionError(
        f"{block.where}: {what} (exit status {result.returncode})\n"
        f"--- sample ---\n{block.code}--- output ---\n{result.stdout}{result.stderr or ''}"
    )


def _run_python(block: Block, scripts: Path, cwd: Path, env: dict[str, str]) -> None:
    script = scripts / f"sample_{block.path.stem}_{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SAMPLE_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise _failure(block, "python sample failed", result)


def _run_command(block: Block, command: Command, cwd: Path, env: dict[str, str]) -> None:
    if program(command.text) not in RUNNABLE_COMMANDS:
        raise AssertionError(
            f"{block.where}: '$ {command.text}' is neither datacon nor python; "
            "split the block or mark it <!-- not-tested: REASON -->"
        )
    result = subprocess.run(
        ["/bin/sh", "-c", command.text],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=SAMPLE_TIMEOUT,
        check=False,
    )
    expects_error = "datacon: error:" in command.expected
    if expects_error and result.returncode == 0:
        raise _failure(block, f"'$ {command.text}' was expected to fail", result)
    if not expects_error and result.returncode != 0:
        raise _failure(block, f"'$ {command.text}' failed", result)
    if command.expected.strip():
        checker = doctest.OutputChecker()
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        if not checker.check_output(command.expected, result.stdout, flags):
            raise AssertionError(
                f"{block.where}: output of '$ {command.text}' differs\n"
                f"--- expected ---\n{command.expected}--- got ---\n{result.stdout}"
            )


def _check_config(block: Block, scripts: Path) -> None:
    from datacon import StorageFactoryConfig
    from datacon.errors import ConfigError

    try:
        data = parse_config_text(block)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise AssertionError(f"{block.where}: {block.lang} block does not parse: {exc}") from exc
    if not is_config(data):
        return
    # Through the file loader, as an application would read it.
    target = scripts / f"config_{block.path.stem}_{block.line}{CONFIG_LANGS[block.lang]}"
    target.write_text(block.code, encoding="utf-8")
    injected = {name for name in _ENV_REFERENCE.findall(block.code) if name not in os.environ}
    try:
        os.environ.update(dict.fromkeys(injected, "placeholder"))
        config = StorageFactoryConfig.from_file(target)
        section = config.section()
        if section is not None:
            section.validate()
    except ConfigError as exc:
        raise AssertionError(f"{block.where}: invalid configuration: {exc}") from exc
    finally:
        for name in injected:
            os.environ.pop(name, None)


# -- the tests ---------------------------------------------------------------------------------

PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_samples_run(page: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Every sample of the page runs (or is explicitly marked not-tested, with a reason)."""
    servers: dict[str, Any] = {}

    def server_url(name: str) -> str | None:
        if name not in servers:
            try:
                servers[name] = request.getfixturevalue(f"{name}_backend")
            except pytest.FixtureLookupError:
                servers[name] = None  # tests/servers/<name>.py does not exist (yet)
            except pytest.skip.Exception:
                servers[name] = None  # the fixture found no server (locally; in CI it fails)
        backend = servers[name]
        if backend is None:
            return None
        section = getattr(backend.config(), name)
        return str(section.db_url if name == "postgres" else section.url)

    try:
        outcome = run_page(page, tmp_path, server_url)
    finally:
        for backend in servers.values():
            if backend is not None:
                backend.wipe()
    if outcome.missing_servers:
        names = sorted(name for name, backend in servers.items() if backend is None)
        server_missing(
            f"{_page_id(page)}: {len(outcome.ran)} samples ran; {len(outcome.missing_servers)} need a "
            f"{'/'.join(names)} server that is not available: {', '.join(outcome.missing_servers)}"
        )


def test_every_python_sample_is_run_or_explicitly_excluded() -> None:
    """No Python block escapes the runner: each one runs, is a written file, or has a reason."""
    python_blocks = [b for page in PAGES for b in extract_blocks(page) if b.lang == "python"]
    assert len(python_blocks) >= 10, "the docs should have samples; did the extractor break?"
    for block in python_blocks:
        assert block.not_tested is None or block.not_tested.strip(), block.where


def test_extractor_reads_fences_markers_and_commands(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nprint(1)\n```\n\n"
        "<!-- not-tested: needs an Oracle server -->\n```python\nimport oracle_only\n```\n\n"
        "<!-- file: app.yaml -->\n\n```yaml\nbackend: memory\n```\n\n"
        "````markdown\n```python\nnested\n```\n````\n\n"
        "```console\n$ datacon --help\nUsage: ...\n$ python -c 'print(2)'\n2\n```\n\n"
        "```console\n$ datacon conversations show ID\n```\n\n"
        "```console\n$ pip install datacon\n```\n",
        encoding="utf-8",
    )
    blocks = extract_blocks(page)
    assert [(b.lang, b.line) for b in blocks] == [
        ("python", 3),
        ("python", 8),
        ("yaml", 14),
        ("markdown", 18),
        ("console", 24),
        ("console", 31),
        ("console", 35),
    ]
    assert blocks[0].not_tested is None
    assert blocks[1].not_tested == "needs an Oracle server"
    assert blocks[2].file_name == "app.yaml"
    assert blocks[3].code == "```python\nnested\n```\n"
    assert [(c.text, c.expected) for c in commands(blocks[4])] == [
        ("datacon --help", "Usage: ...\n"),
        ("python -c 'print(2)'", "2\n"),
    ]
    assert [shell_kind(b) for b in blocks[4:]] == ["run", "synopsis", "other"]


@pytest.mark.parametrize(
    ("command", "synopsis"),
    [
        ("datacon conversations show conv_6f1c…", True),
        ("datacon export [-o FILE]", True),
        ("datacon items list CONV --limit 5", True),
        ("datacon items list <conversation-id>", True),
        ("datacon --config datacon.yaml doctor", False),
        ('python -c "import datacon; print(datacon.__version__)"', False),
        ('datacon import "BACKUP FILE.jsonl"', True),
        ("datacon export -o backup.jsonl  # a comment with ID", False),
        ("DATACON_CONFIG=datacon.yaml datacon doctor", False),
        ("DATACON_CONFIG=datacon.yaml datacon conversations show ID", True),
    ],
)
def test_synopsis_detection(command: str, synopsis: bool) -> None:
    assert is_synopsis(command) is synopsis


def test_runner_fails_on_a_broken_sample_and_a_wrong_output(tmp_path: Path) -> None:
    """The runner is not vacuous: a failing sample, a wrong output and a bad config all fail it."""
    cases = {
        "raise.md": "```python\nraise SystemExit(3)\n```\n",
        "output.md": "```console\n$ python -c 'print(1)'\n2\n```\n",
        "config.md": "```yaml\nbackend: postgres\npostgres:\n  db_url: mysql://h/db\n```\n",
        "unrun.md": "<!-- file: app.py -->\n```python\nprint(1)\n```\n",
        "status.md": "```console\n$ python -c 'raise SystemExit(1)'\n```\n",
    }
    for name, text in cases.items():
        page = tmp_path / name
        page.write_text(text, encoding="utf-8")
        with pytest.raises(AssertionError):
            run_page(page, tmp_path / f"run-{page.stem}", lambda _name: None)
    good = tmp_path / "good.md"
    good.write_text(
        "<!-- file: app.py -->\n```python\nimport os\nprint(os.path.exists('datacon.yaml'))\n```\n"
        "<!-- file: datacon.yaml -->\n```yaml\nbackend: memory\n```\n"
        "```console\n$ python app.py\nTrue\n```\n",
        encoding="utf-8",
    )
    assert len(run_page(good, tmp_path / "run-good", lambda _name: None).ran) == 3


def test_configuration_reference_lists_every_field() -> None:
    """docs/configuration.md has a table row for every field of every config class."""
    from datacon import (
        ColumnDef,
        OracleConfig,
        PostgresConfig,
        RedisConfig,
        SchemaConfig,
        SqliteConfig,
        StorageFactoryConfig,
        TableConfig,
    )

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    missing = []
    for cls in (StorageFactoryConfig, SqliteConfig, PostgresConfig, RedisConfig, OracleConfig):
        section = next((s for s in sections if s.startswith(f"`{cls.__name__}`")), "")
        missing += [f"{cls.__name__}.{f.name}" for f in attrs.fields(cls) if f"| `{f.name}` |" not in section]
    schema_section = next((s for s in sections if s.startswith("`SchemaConfig`")), "")
    for schema_cls in (SchemaConfig, TableConfig, ColumnDef):
        missing += [
            f"{schema_cls.__name__}.{f.name}"
            for f in attrs.fields(schema_cls)
            if f"| `{schema_cls.__name__}` | `{f.name}` |" not in schema_section
        ]
    assert not missing, f"fields missing from docs/configuration.md: {missing}"
