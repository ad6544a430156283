"""The ``datacon`` command: inspect records, export/import JSON Lines, copy between backends, migrate, doctor.

The storage is configured by a YAML, TOML or JSON file (``--config``, or ``DATACON_CONFIG``) or
by one URL (``--url``, or ``DATACON_URL``), given before the subcommand or after the last
command word; without either, the README's SQLite file ``datacon-demo.db`` in the current
directory is used.
Errors print one line, ``datacon: error: ...``, on stderr: exit status 1 for a failure, 2 for
a usage error. See docs/cli.md.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from datacon import _admin, transfer
from datacon._serde import converter
from datacon._validate import COUNT_MAX
from datacon._version import __version__
from datacon.config import HistoryBackend, SqliteConfig, StorageFactoryConfig
from datacon.errors import DataconError, MigrationRequiredError
from datacon.factory import create_storage
from datacon.models import Conversation, ListParams, PruneReport, SortOrder, StoredResponse
from datacon.storage import PRUNE_BATCH, Storage

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

__all__ = ["DEFAULT_DATABASE", "cli", "main"]

T = TypeVar("T")

#: The README's demo database, used when no configuration is given.
DEFAULT_DATABASE = "datacon-demo.db"


class _Failure(click.ClickException):
    """A failure reported as ``datacon: error: <message>`` with exit status 1."""


def _fail(message: str) -> NoReturn:
    raise _Failure(message)


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, MigrationRequiredError):
        first = str(exc).splitlines()[0].rstrip(".")
        return f"{first}: see the SQL with 'datacon migrate plan', apply it with 'datacon migrate apply'"
    if isinstance(exc, click.UsageError):
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        return f"{exc.format_message()}{hint}"
    if isinstance(exc, click.ClickException):
        return exc.format_message()
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}{where}"
    # datacon's messages never hold secrets; keep the first line only (one line per error).
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class _Cli(click.Group):
    """The root group: turns every expected failure into one stderr line and an exit status."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = 0
        try:
            result = super().main(args, prog_name or "datacon", complete_var, standalone_mode=False, **extra)
            if isinstance(result, int):
                code = result
        except BrokenPipeError:
            # The reader went away (``datacon export | head``): stop quietly, and keep the
            # interpreter from failing again when it flushes stdout at exit.
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until the process exits
            code = 1
        except click.UsageError as exc:
            click.echo(f"datacon: error: {_error_line(exc)}", err=True)
            code = exc.exit_code
        except (click.ClickException, DataconError, OSError) as exc:
            click.echo(f"datacon: error: {_error_line(exc)}", err=True)
            code = exc.exit_code if isinstance(exc, click.ClickException) else 1
        except click.Abort:
            # Ctrl-C: what was written stays written; import and copy resume when re-run.
            click.echo("datacon: error: interrupted", err=True)
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code)


# -- configuration ---------------------------------------------------------------------------


def default_config() -> StorageFactoryConfig:
    """The README's SQLite database in the current directory."""
    return StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(DEFAULT_DATABASE))


_TARGETS = "datacon.targets"  # ctx.meta key: --config/--url given after the command words


def _remember_target(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_root().meta.setdefault(_TARGETS, []).append((param.name, value))


def target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--config``/``--url`` on a command too, so they may follow the last command word
    (``datacon doctor --url …``) as well as precede the subcommand."""
    command = click.option(
        "--url",
        "url",
        metavar="URL",
        expose_value=False,
        callback=_remember_target,
        help="Storage URL (postgresql://…, redis://…, sqlite:///file.db…) instead of --config.",
    )(command)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        expose_value=False,
        callback=_remember_target,
        help="Storage config file (.yaml, .yml, .json, .toml).",
    )(command)


def _target(ctx: click.Context) -> tuple[str, str] | None:
    """``("config_path", FILE)`` or ``("url", URL)``: the command line's, else the environment's."""
    root = ctx.find_root()
    given: list[tuple[str, str]] = []
    from_env: list[tuple[str, str]] = []
    for name in ("config_path", "url"):
        value = root.params.get(name)
        if value is not None:
            from_command_line = root.get_parameter_source(name) is not click.core.ParameterSource.ENVIRONMENT
            (given if from_command_line else from_env).append((name, value))
    given += root.meta.get(_TARGETS, [])
    chosen = given or from_env
    if len(set(chosen)) > 1:
        where = "" if given else " (DATACON_CONFIG and DATACON_URL are both set)"
        kinds = {name for name, _ in chosen}
        what = "--config or --url, not both" if len(kinds) > 1 else f"one {'--url' if 'url' in kinds else '--config'}"
        raise click.UsageError(f"give {what}{where}", ctx)
    return chosen[0] if chosen else None


def load_target(value: str) -> StorageFactoryConfig:
    """A config file, or a storage URL (``scheme://…``, see ``StorageFactoryConfig.from_url``)."""
    if "://" in value and not Path(value).exists():
        return StorageFactoryConfig.from_url(value)
    return StorageFactoryConfig.from_file(value)


def _config(ctx: click.Context) -> StorageFactoryConfig:
    target = _target(ctx)
    if target is None:
        return default_config()
    name, value = target
    return StorageFactoryConfig.from_url(value) if name == "url" else StorageFactoryConfig.from_file(value)


def _require_database(config: StorageFactoryConfig) -> None:
    missing = _admin.sqlite_file_missing(config)
    if missing is not None:
        _fail(f"no SQLite database at {missing} (give --config FILE or set DATACON_CONFIG)")


@contextmanager
def _open(config: StorageFactoryConfig, *, must_exist: bool = True) -> Iterator[Storage]:
    if must_exist:
        _require_database(config)
    with create_storage(config) as storage:
        yield storage


@contextmanager
def _utf8(stream: IO[str]) -> Iterator[IO[str]]:
    """``stream`` (stdout) as UTF-8 text whatever the locale says: dumps are UTF-8."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        yield stream
        return
    stream.flush()
    wrapper = io.TextIOWrapper(buffer, encoding="utf-8", newline="\n")
    try:
        yield wrapper
        wrapper.flush()
    finally:
        wrapper.detach()  # leave the process's own stream open


def _dump(value: Any) -> None:
    click.echo(json.dumps(converter.unstructure(value), indent=2, ensure_ascii=False))


def _json_text(value: Any, width: int | None = None) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _fields(pairs: Sequence[tuple[str, object]]) -> None:
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        click.echo(f"{name.ljust(width)}  {'-' if value is None else value}")


def _show(
    ctx: click.Context,
    what: str,
    get: Callable[[Storage], T | None],
    fields: Callable[[T], Sequence[tuple[str, object]]],
    as_json: bool,
) -> None:
    """Print the record ``get`` reads (as JSON, or as ``fields``); fail if there is none."""
    with _open(_config(ctx)) as storage:
        record = get(storage)
    if record is None:
        _fail(f"{what} not found")
    if as_json:
        _dump(record)
    else:
        _fields(fields(record))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


@click.group("datacon", cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="DATACON_CONFIG",
    type=click.Path(dir_okay=False),
    help=f"Storage config file (.yaml, .yml, .json, .toml); default: SQLite {DEFAULT_DATABASE} here.",
)
@click.option(
    "--url",
    "url",
    envvar="DATACON_URL",
    metavar="URL",
    help="Storage URL instead of a config file: postgresql://…, redis://…, sqlite:///file.db, memory://…",
)
@click.option("-v", "--verbose", count=True, help="Log to stderr: -v for info, -vv for debug.")
# The version of the code that runs, not a distribution's metadata: the distribution is named
# datacon-store, and a source tree on sys.path has no metadata at all.
@click.version_option(__version__, prog_name="datacon")
def cli(config_path: str | None, url: str | None, verbose: int) -> None:
    """Inspect, export, import, copy and migrate datacon storage."""
    _setup_logging(verbose)


def _setup_logging(verbose: int) -> None:
    root = logging.getLogger()
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("datacon: %(levelname)s: %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    elif not root.handlers:
        # Without this, Python's last-resort handler prints library warnings (a pool's
        # reconnect attempts...) next to our one error line.
        root.addHandler(logging.NullHandler())


# -- inspection ------------------------------------------------------------------------------


@cli.group()
def conversations() -> None:
    """Inspect conversations."""


@conversations.command("show")
@target_options
@click.argument("conversation_id")
@json_option
@click.pass_context
def conversations_show(ctx: click.Context, conversation_id: str, as_json: bool) -> None:
    """Show one conversation."""
    _show(
        ctx,
        f"conversation {conversation_id}",
        lambda storage: storage.conversations.get_conversation(conversation_id),
        _conversation_fields,
        as_json,
    )


@conversations.command("list")
@target_options
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="COLUMN=VALUE",
    help="Only conversations whose extra column COLUMN is VALUE (repeatable; all must match).",
)
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Page size.")
@click.option("--order", type=click.Choice(["asc", "desc"]), default="asc", show_default=True)
@click.option("--after", metavar="CURSOR", help="Start after this conversation id or next_cursor (exclusive).")
@json_option
@click.pass_context
def conversations_list(
    ctx: click.Context, filters: tuple[str, ...], limit: int, order: str, after: str | None, as_json: bool
) -> None:
    """List one page of conversations, by (created_at, id), filtered by extra columns."""
    wanted: dict[str, str] = {}
    for text in filters:
        column, sep, value = text.partition("=")
        if not sep or not column:
            raise click.BadParameter(f"expected COLUMN=VALUE, got {text!r}", param_hint="--filter")
        wanted[column] = value
    with _open(_config(ctx)) as storage:
        page = storage.conversations.list_conversations(ListParams(limit, SortOrder(order), after), wanted or None)
    if as_json:
        click.echo(json.dumps(page.to_dict(), indent=2, ensure_ascii=False))
        return
    rows = [(c.id, converter.unstructure(c.created_at), _json_text(c.metadata, 60)) for c in page.data]
    _table(["ID", "CREATED_AT", "METADATA"], rows)
    if page.next_cursor is not None:
        click.echo(f"(more: --after {page.next_cursor})")


def _conversation_fields(conversation: Conversation) -> list[tuple[str, object]]:
    metadata = None if conversation.metadata is None else _json_text(conversation.metadata)
    created_at = converter.unstructure(conversation.created_at)
    return [("id", conversation.id), ("created_at", created_at), ("metadata", metadata)]


@cli.group()
def items() -> None:
    """Inspect conversation items."""


@items.command("list")
@target_options
@click.argument("conversation_id")
@click.option("--limit", type=click.IntRange(min=0, max=COUNT_MAX), default=20, show_default=True, help="Page size.")
@click.option("--order", type=click.Choice(["asc", "desc"]), default="asc", show_default=True)
@click.option("--after", metavar="ITEM_ID", help="Start after this item (exclusive cursor).")
@json_option
@click.pass_context
def items_list(
    ctx: click.Context, conversation_id: str, limit: int, order: str, after: str | None, as_json: bool
) -> None:
    """List one page of a conversation's items, by (added_at, item id)."""
    with _open(_config(ctx)) as storage:
        # One extra row tells whether another page follows.
        page = storage.items.list_items(conversation_id, ListParams(min(limit + 1, COUNT_MAX), SortOrder(order), after))
        if not page and storage.conversations.get_conversation(conversation_id) is None:
            # Nothing linked and no such record: an unknown id (a conversation with no items
            # lists an empty page; links whose conversation record is absent still list).
            _fail(f"conversation {conversation_id} not found")
    has_more = len(page) > limit
    page = page[:limit]
    last_id = page[-1].id if page else None
    if as_json:
        data = {
            "data": converter.unstructure(page),
            "first_id": page[0].id if page else None,
            "last_id": last_id,
            "has_more": has_more,
        }
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    rows = [
        (i.id, i.item_type, i.role, i.status, converter.unstructure(i.created_at), _json_text(i.content, 60))
        for i in page
    ]
    _table(["ID", "TYPE", "ROLE", "STATUS", "CREATED_AT", "CONTENT"], rows)
    if has_more:
        click.echo(f"(more: --after {last_id})")


@cli.group()
def responses() -> None:
    """Inspect stored responses and their chains."""


@responses.command("show")
@target_options
@click.argument("response_id")
@json_option
@click.pass_context
def responses_show(ctx: click.Context, response_id: str, as_json: bool) -> None:
    """Show one response."""
    _show(
        ctx,
        f"response {response_id}",
        lambda storage: storage.responses.get_response(response_id),
        _response_fields,
        as_json,
    )


def _response_fields(response: StoredResponse) -> list[tuple[str, object]]:
    return [
        ("id", response.id),
        ("previous_response_id", response.previous_response_id),
        ("conversation_id", response.conversation_id),
        ("model", response.model),
        ("safety_identifier", response.safety_identifier),
        ("created_at", converter.unstructure(response.created_at)),
        ("input", _json_text(response.input)),
        ("raw_response", _json_text(response.raw_response)),
    ]


@responses.command("chain")
@target_options
@click.argument("response_id")
@click.option("--max-depth", type=click.IntRange(min=0, max=COUNT_MAX), help="Keep only the newest N responses.")
@json_option
@click.pass_context
def responses_chain(ctx: click.Context, response_id: str, max_depth: int | None, as_json: bool) -> None:
    """Show the chain of responses ending at RESPONSE_ID, oldest first."""
    with _open(_config(ctx)) as storage:
        chain = storage.responses.get_response_chain(response_id, max_depth)
        if not chain.responses and max_depth != 0 and storage.responses.get_response(response_id) is None:
            _fail(f"response {response_id} not found")
    if as_json:
        _dump(chain.responses)
        return
    rows = [
        (n, r.id, r.previous_response_id, r.model, converter.unstructure(r.created_at))
        for n, r in enumerate(chain.responses, 1)
    ]
    _table(["#", "ID", "PREVIOUS", "MODEL", "CREATED_AT"], rows)


# -- export, import, copy ----------------------------------------------------------------------


def _report(result: transfer.ImportCounts, as_json: bool, problems: list[str] | None = None) -> None:
    """Print an import's (or copy's) warnings and counts, and ``--verify``'s ``problems`` if run."""
    for warning in result.warnings:
        click.echo(f"datacon: warning: {warning}", err=True)
    if as_json:
        data: dict[str, Any] = {"created": result.created, "skipped": result.skipped, "warnings": result.warnings}
        if problems is not None:
            data["verified"] = not problems
            data["differences"] = problems
        click.echo(json.dumps(data, indent=2))
        return
    _table(["TYPE", "CREATED", "SKIPPED"], [(k, result.created[k], result.skipped[k]) for k in transfer.KINDS])
    if problems is not None and not problems:
        click.echo("verified: both sides hold the same records")


class _Progress:
    """Progress of a long command on stderr: a bar when stderr is a terminal (a running count
    when the total is unknown), else nothing until :meth:`done` prints one summary line.

    ``datacon import`` of 25,000 records runs for seconds: on a terminal the bar shows it
    moving; in a log (cron, Kubernetes) a bar would be noise, so only the summary is written.
    """

    def __init__(self, label: str, total: int | None, *, enabled: bool = True) -> None:
        self.label = label
        self.count = 0
        self._tty = enabled and sys.stderr.isatty()
        self._bar: ProgressBar[int] | None = None
        if self._tty and total is not None:
            self._bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
            self._bar.__enter__()

    def update(self, n: int, label: str | None = None, status: str = "") -> None:
        """``n`` more done; ``label`` replaces the bar's label, ``status`` the count's text."""
        self.count += n
        if not self._tty:
            return
        if self._bar is not None:
            if label is not None:
                self._bar.label = label
            self._bar.update(n)
        else:
            click.echo(f"\r{label or self.label}: {status or self.count}", file=sys.stderr, nl=False)

    def done(self, summary: str | None) -> None:
        """End the bar (or the count's line); print ``summary`` on its own line."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        elif self._tty and self.count:
            click.echo(file=sys.stderr)
        if summary:
            click.echo(summary, err=True)


@cli.command("export")
@target_options
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-", help="File (default: stdout)."
)
@click.option("--batch", type=click.IntRange(min=1, max=COUNT_MAX), default=transfer.DEFAULT_BATCH, show_default=True)
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (on a terminal).")
@click.pass_context
def export_command(ctx: click.Context, output: str, batch: int, progress: bool) -> None:
    """Write every record as JSON Lines (format: docs/cli.md).

    A file is written under a temporary name and renamed when complete, so a failed export
    never leaves a truncated file behind.
    """
    with _open(_config(ctx)) as storage:
        bar = _Progress("exporting", _total(storage, progress), enabled=progress)
        if output == "-":
            with _utf8(sys.stdout) as stream:
                totals = _write_dump(storage, stream, batch, bar)
        else:
            target = Path(output)
            partial = target.with_name(target.name + ".partial")
            try:
                with partial.open("w", encoding="utf-8", newline="\n") as stream:
                    totals = _write_dump(storage, stream, batch, bar)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
    bar.done("exported " + ", ".join(f"{totals[k]} {k}s" for k in transfer.KINDS))


def _total(storage: Storage, progress: bool) -> int | None:
    """How many records ``storage`` holds, for a bar's length (only asked on a terminal)."""
    if not (progress and sys.stderr.isatty()):
        return None
    return sum(transfer.counts(storage).values())


def _write_dump(storage: Storage, stream: IO[str], batch: int, bar: _Progress) -> dict[str, int]:
    totals: dict[str, int] = dict.fromkeys(transfer.KINDS, 0)
    for kind, page in transfer.iter_batches(storage, batch):
        stream.write("".join(transfer.dump_record(record) + "\n" for record in page))
        totals[kind] += len(page)
        bar.update(len(page), f"exporting {kind}s")
    stream.flush()
    return totals


@cli.command("import")
@target_options
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--batch", type=click.IntRange(min=1, max=COUNT_MAX), default=transfer.DEFAULT_BATCH, show_default=True)
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (on a terminal).")
@json_option
@click.pass_context
def import_command(ctx: click.Context, source: str, batch: int, as_json: bool, progress: bool) -> None:
    """Read JSON Lines (a file, or - for stdin) into the storage; existing records are skipped.

    A file is checked completely before anything is written, so a malformed file changes
    nothing. Re-running an import is safe: what exists is skipped, the rest is written.
    """
    config = _config(ctx)
    total: int | None = None
    if source == "-":
        # Bytes, decoded line by line: an undecodable line is reported with its number.
        stdin: IO[bytes] = sys.stdin.buffer
        records = transfer.read_records(stdin)
    else:
        total = sum(1 for _ in _read_file(source))  # the whole file is checked first
        records = _read_file(source)
    bar = _Progress("importing", total, enabled=progress)
    with _open(config, must_exist=False) as storage, _resumable():
        result = transfer.import_records(storage, records, batch, lambda kind, n: bar.update(n, f"importing {kind}s"))
    bar.done(None)  # the summary is the report's table (or JSON), on stdout
    _report(result, as_json)


@contextmanager
def _resumable() -> Iterator[None]:
    """Say, with a failure in the middle of a write, what was kept and how to go on."""
    try:
        yield
    except transfer.NotEnumerableError:
        raise  # refused before anything was read or written
    except DataconError as exc:
        _fail(f"{_error_line(exc)} (the batches before it are written: re-run the same command to resume)")


def _read_file(path: str) -> Iterator[transfer.Record]:
    with open(path, "rb") as stream:
        yield from transfer.read_records(stream)


@cli.command("copy")
@click.option(
    "--from", "source_path", required=True, type=click.Path(dir_okay=False), help="Source config file or storage URL."
)
@click.option(
    "--to", "target_path", required=True, type=click.Path(dir_okay=False), help="Destination config file or URL."
)
@click.option("--batch", type=click.IntRange(min=1, max=COUNT_MAX), default=transfer.DEFAULT_BATCH, show_default=True)
@click.option("--verify", is_flag=True, help="Then compare counts and content hashes of both sides.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@json_option
def copy_command(source_path: str, target_path: str, batch: int, verify: bool, progress: bool, as_json: bool) -> None:
    """Copy every record from one backend to another, in batches.

    Resumable: records that exist in the destination are skipped, so re-running an
    interrupted copy finishes it.
    """
    source_config = load_target(source_path)
    target_config = load_target(target_path)
    if source_path == target_path or Path(source_path).resolve() == Path(target_path).resolve():
        _fail("--from and --to name the same configuration")
    with _open(source_config) as source, _open(target_config, must_exist=False) as target:
        total = _total(source, progress)
        bar = _Progress("copying", total, enabled=progress)
        with _resumable():
            result = transfer.copy_storage(source, target, batch, lambda kind, n: bar.update(n, f"copying {kind}s"))
        copied = sum(result.created.values())
        bar.done(f"copying: {copied} records copied" if progress else None)
        problems = None
        if verify:
            # Both sides are read whole: the bar counts the records of both.
            checking = _Progress("verifying", None if total is None else 2 * total, enabled=progress)
            problems = _verify(source, target, batch, checking)
            checking.done(None)
    _report(result, as_json, problems)
    if problems:
        _fail("verification failed: " + "; ".join(problems))


def _verify(source: Storage, target: Storage, batch: int, bar: _Progress) -> list[str]:
    def advance(kind: str, n: int) -> None:
        bar.update(n, f"verifying {kind}s")

    return transfer.compare_digests(transfer.digest(source, batch, advance), transfer.digest(target, batch, advance))


# -- retention -------------------------------------------------------------------------------

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> datetime | timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (an age), or an ISO-8601 instant with its offset
    (``2026-01-01T00:00:00Z``): what ``--older-than`` takes."""
    value = text.strip()
    number, unit = value[:-1], value[-1:].lower()
    if unit in _UNITS and number.isdigit():
        return timedelta(**{_UNITS[unit]: int(number)})
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: give an age (30d, 12h, 90m, 45s, 2w) or an ISO-8601 instant with its offset"
        ) from None
    if when.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no UTC offset (add Z or +HH:MM)")
    return when


def _counts(report: PruneReport) -> str:
    return (
        f"{report.responses} responses, {report.conversations} conversations, "
        f"{report.links} links, {report.items} items"
    )


def _run_retention(
    ctx: click.Context, verb: str, run: Callable[..., PruneReport], as_json: bool, progress: bool, dry_run: bool
) -> None:
    """Run ``run(storage, progress=...)`` with a running count on a terminal; then one summary line."""
    label = f"{verb} (dry run)" if dry_run else verb
    bar = _Progress(label, None, enabled=progress)

    def advance(report: PruneReport) -> None:
        bar.update(report.total - bar.count, status=_counts(report))

    with _open(_config(ctx)) as storage:
        try:
            report = run(storage, progress=advance)
        except DataconError as exc:
            bar.done(None)
            _fail(f"{_error_line(exc)} (the batches before it are done: re-run the same command to finish)")
    if as_json:
        bar.done(None)
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    bar.done(None)
    click.echo(f"{'would delete' if dry_run else 'deleted'} {_counts(report)}")


@cli.command("prune")
@target_options
@click.option(
    "--older-than",
    "older_than",
    required=True,
    help="Age (30d, 12h, 90m, 45s, 2w) or an ISO-8601 instant with its offset: records created before it go.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--batch", type=click.IntRange(min=1, max=COUNT_MAX), default=PRUNE_BATCH, show_default=True)
@click.option("--progress/--no-progress", default=True, help="Running count on stderr (on a terminal).")
@json_option
@click.pass_context
def prune_command(
    ctx: click.Context, older_than: str, dry_run: bool, batch: int, progress: bool, as_json: bool
) -> None:
    """Delete responses and conversations created before the cutoff (with their links), then the
    items created before it that no conversation links any more (SPEC 7.7).

    Batched (each batch one short transaction), so it can run beside live traffic; interrupted,
    running it again finishes the job.
    """
    cutoff = parse_age(older_than)
    _run_retention(
        ctx,
        "pruning",
        lambda storage, progress: storage.prune(cutoff, dry_run=dry_run, batch_size=batch, progress=progress),
        as_json,
        progress,
        dry_run,
    )


@cli.command("erase")
@target_options
@click.option("--identifier", required=True, help="The end user's safety_identifier.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--batch", type=click.IntRange(min=1, max=COUNT_MAX), default=PRUNE_BATCH, show_default=True)
@click.option("--progress/--no-progress", default=True, help="Running count on stderr (on a terminal).")
@json_option
@click.pass_context
def erase_command(
    ctx: click.Context, identifier: str, dry_run: bool, batch: int, progress: bool, as_json: bool
) -> None:
    """Delete one end user's data: every response with this safety identifier, the conversations
    they name that no other identifier's response names (with their links), and the items no
    longer linked anywhere (SPEC 7.7; what it covers: docs/operations.md)."""
    _run_retention(
        ctx,
        "erasing",
        lambda storage, progress: storage.erase_identifier(
            identifier, dry_run=dry_run, batch_size=batch, progress=progress
        ),
        as_json,
        progress,
        dry_run,
    )


# -- migrations ------------------------------------------------------------------------------


@cli.group()
def migrate() -> None:
    """Schema version and migrations of the SQL backends, and Redis's key layout."""


def _migration_status(config: StorageFactoryConfig) -> _admin.SchemaReport | None:
    """The configured backend's schema status; ``None`` (said why) when it has none to report."""
    missing = _admin.sqlite_file_missing(config)
    if missing is not None:
        click.echo(f"no SQLite database at {missing}: it is created at the latest version on first use")
        return None
    status = _admin.schema_status(config)
    if status is None:
        click.echo(f"the {HistoryBackend(config.backend).value} backend has no schema migrations")
    return status


def _status_lines(status: _admin.SchemaReport) -> list[tuple[str, object]]:
    return [
        ("backend", status.backend),
        ("current", status.current),
        ("latest", status.latest),
        ("pending", f"{len(status.statements)} statement(s)" if status.statements else "none"),
    ]


@migrate.command("status")
@target_options
@json_option
@click.pass_context
def migrate_status(ctx: click.Context, as_json: bool) -> None:
    """Show the schema version and whether migrations are pending."""
    status = _migration_status(_config(ctx))
    if status is None:
        return
    if as_json:
        data = {
            "backend": status.backend,
            "current": status.current,
            "latest": status.latest,
            "up_to_date": status.up_to_date,
            "statements": list(status.statements),
        }
        click.echo(json.dumps(data, indent=2))
    else:
        _fields(_status_lines(status))
    if not status.up_to_date:
        # Pending migrations are a failure (status 1, docs/cli.md), so scripts can test for them.
        _fail(f"{len(status.statements)} migration statement(s) pending: run 'datacon migrate apply'")


@migrate.command("plan")
@target_options
@click.pass_context
def migrate_plan(ctx: click.Context) -> None:
    """Print the exact SQL that 'migrate apply' would run."""
    status = _migration_status(_config(ctx))
    if status is None:
        return
    if status.up_to_date:
        click.echo("-- nothing to apply: the schema is up to date")
    else:
        click.echo(_admin.describe_pending(status.statements))


@migrate.command("sql")
@target_options
@click.pass_context
def migrate_sql(ctx: click.Context) -> None:
    """Print the complete DDL of the configured schema, without connecting (for a DBA to apply).

    Every table including _schema_versions, the rows recording the latest version, and the
    indexes: what a start-up creates in an empty database.
    """
    click.echo(_admin.describe_pending(_admin.schema_script(_config(ctx))))


@migrate.command("apply")
@target_options
@click.pass_context
def migrate_apply(ctx: click.Context) -> None:
    """Apply the pending migrations (under the backend's migration lock)."""
    config = _config(ctx)
    before = _migration_status(config)
    if before is None:
        return
    if before.up_to_date:
        click.echo("nothing to apply: the schema is up to date")
        return
    after = _admin.apply_migrations(config)
    if not after.up_to_date:
        _fail(f"{len(after.statements)} statement(s) still pending after apply")
    click.echo(f"applied {len(before.statements)} statement(s); the schema is up to date (version {after.current})")


# -- doctor ----------------------------------------------------------------------------------


@cli.command("doctor")
@target_options
@json_option
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the configuration, the connection and the schema version (secrets masked)."""
    target = _target(ctx)
    if target is None:
        source = f"default config (SQLite {DEFAULT_DATABASE})"
    else:
        # A URL may carry a password: the config check below shows it masked, this line not at all.
        source = f"config file {target[1]}" if target[0] == "config_path" else "the --url storage URL"
    try:
        config = _config(ctx)
    except DataconError as exc:
        checks = [_admin.Check("config", False, str(exc))]
    else:
        checks = _admin.doctor(config)
    if as_json:
        data = [{"check": c.name, "ok": c.ok, "warning": c.warning, "detail": c.detail} for c in checks]
        click.echo(json.dumps({"source": source, "checks": data}, indent=2))
    else:
        click.echo(f"using {source}")
        for check in checks:
            status = "FAIL" if not check.ok else "WARN" if check.warning else "ok  "
            click.echo(f"{status}  {check.name.ljust(10)}  {check.detail}")
    if not all(check.ok for check in checks):
        ctx.exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``datacon``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="datacon")
