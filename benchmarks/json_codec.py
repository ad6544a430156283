"""Would an orjson codec pay? JSON cost alone, and whole SQLite operations with each codec.

    python -m benchmarks.json_codec [--quick]

Needs ``orjson`` importable (it is no dependency of datacon: ``pip install orjson`` into the
environment that runs this). Two orjson variants swap ``json.dumps``/``json.loads`` everywhere
datacon calls them:

- "orjson, unchecked" is orjson alone: an upper bound of the gain, with datacon's behaviour
  changed (orjson writes NaN and infinities as ``null``, reads integers past 64 bits as floats,
  and accepts UUIDs and enums that the stdlib refuses);
- "orjson, exact" falls back to the stdlib whenever orjson could differ: any ``null`` in its
  output (a NaN would be one), integers of 20 digits or more in the text to read, and anything
  orjson refuses. (UUIDs and enums would still need a walk of the value; not counted here.)

The bodies look like a chat completion's (ids, text, usage counts, a few ``null`` fields, as
real responses have). Figures are medians of interleaved rounds (``benchmarks.harness``); the
table goes to stdout (docs/performance.md, "JSON codec").
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import fmt_time, interleaved
from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    SqliteConfig,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)

Codec = tuple[Callable[..., Any], Callable[..., Any]]  # (dumps, loads) as the json module has them
STDLIB: Codec = (json.dumps, json.loads)
SIZES = (("0.3 KB", 300), ("4 KB", 4_000), ("64 KB", 64_000))


def payload(size: int) -> dict[str, Any]:
    """A response body of about ``size`` bytes of JSON, shaped like a chat completion's output."""
    text = "The quick brown fox jumps over the lazy dog. " * 4
    one: dict[str, Any] = {
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "error": None,
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": None}],
        "usage": {"input_tokens": 123, "output_tokens": 456, "ratio": 0.37},
    }
    count = max(1, size // len(json.dumps(one)))
    return {"id": "resp_x", "model": "gpt-x", "output": [one] * count}


def use(codec: Codec) -> None:
    """Make every ``json.dumps``/``json.loads`` call (datacon's included) go to ``codec``."""
    json.dumps, json.loads = codec


def orjson_codecs() -> dict[str, Codec]:
    """The two orjson variants of the module docstring."""
    import orjson

    stdlib_dumps, stdlib_loads = STDLIB
    big_int = re.compile(r"[0-9]{20}")
    passthrough = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS

    def unchecked_dumps(value: Any, **_: Any) -> str:
        return str(orjson.dumps(value), "utf-8")

    def unchecked_loads(text: str | bytes, **_: Any) -> Any:
        return orjson.loads(text)

    def exact_dumps(value: Any, **kwargs: Any) -> str:
        try:
            out: bytes = orjson.dumps(value, option=passthrough)
        except TypeError:
            return str(stdlib_dumps(value, **kwargs))
        return str(stdlib_dumps(value, **kwargs)) if b"null" in out else str(out, "utf-8")

    def exact_loads(text: str | bytes, **kwargs: Any) -> Any:
        if big_int.search(text if isinstance(text, str) else str(text, "utf-8")):
            return stdlib_loads(text, **kwargs)
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return stdlib_loads(text, **kwargs)

    return {"unchecked": (unchecked_dumps, unchecked_loads), "exact": (exact_dumps, exact_loads)}


def with_codec(codec: Codec, call: Callable[[], object]) -> Callable[[], object]:
    def variant() -> object:
        use(codec)
        try:
            return call()
        finally:
            use(STDLIB)

    return variant


def dumps_and_loads(body: object, text: str) -> object:
    return json.dumps(body), json.loads(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Would an orjson codec pay? (docs/performance.md)")
    parser.add_argument("--quick", action="store_true", help="smoke sizes (figures mean nothing)")
    args = parser.parse_args(argv)
    rounds, inner = (3, 5) if args.quick else (21, 40)
    codecs = {"json": STDLIB, **orjson_codecs()}

    print(f"median of {rounds} interleaved rounds of {inner} calls\n")
    print("| measure | stdlib json | orjson, unchecked | ratio | orjson, exact | ratio |")
    print("|---|---|---|---|---|---|")

    def report(measure: str, call: Callable[[], object]) -> None:
        variants = {name: with_codec(codec, call) for name, codec in codecs.items()}
        t = interleaved(variants, rounds=rounds, inner=inner)
        unchecked, exact = t["unchecked"] / t["json"], t["exact"] / t["json"]
        print(
            f"| {measure} | {fmt_time(t['json'])} | {fmt_time(t['unchecked'])} | {unchecked:.2f}× "
            f"| {fmt_time(t['exact'])} | {exact:.2f}× |"
        )

    for label, size in SIZES:
        body = payload(size)
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        report(f"dumps + loads of a {label} body", functools.partial(dumps_and_loads, body, text))

    with tempfile.TemporaryDirectory() as tmp:
        config = StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(path=str(Path(tmp) / "bench.db")))
        with create_storage(config) as storage:
            conv = storage.conversations.create_conversation(NewConversation(metadata={"topic": "bench"}))
            content = [{"type": "input_text", "text": "Hello, how are you today? " * 8}]
            for _ in range(20):
                item = storage.items.create_item(NewConversationItem("message", content, role="user"))
                storage.items.link_item(conv.id, item.id, datetime.now(UTC))

            def store(body: dict[str, Any]) -> object:
                response = StoredResponse(conversation_id=conv.id, raw_response=body, model="gpt-x")
                return storage.responses.store_response(response)

            def create_and_link() -> None:
                item = storage.items.create_item(NewConversationItem("message", content, role="user"))
                storage.items.link_item(conv.id, item.id, datetime.now(UTC))

            for label, size in SIZES:
                body = payload(size)
                stored = StoredResponse(conversation_id=conv.id, raw_response=body, model="gpt-x")
                storage.responses.store_response(stored)
                report(f"SQLite store_response, {label} body", functools.partial(store, body))
                report(
                    f"SQLite get_response, {label} body", functools.partial(storage.responses.get_response, stored.id)
                )
            report("SQLite list_items, 20 items", lambda: storage.items.list_items(conv.id, ListParams(limit=20)))
            report("SQLite create_item + link_item", create_and_link)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
