"""Child process of the SQLite crash test: writes in a loop, printing each acknowledged write.

Usage: ``python -m tests.reliability._sqlite_writer PATH TAG``. Each line on stdout is JSON:
``["ack", kind, key...]`` printed (and flushed) after a write returned, and ``["try", "batch",
conversation, item...]`` before a ``link_items`` batch is sent. The parent SIGKILLs this
process at some point and checks that every acknowledged write survived and that no batch
is half linked.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from datacon import SqliteConfig, StorageFactoryConfig, create_storage
from tests.reliability._load import Ack, WriterLoad


def main(path: str, tag: str) -> None:
    storage = create_storage(StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(path=path, pool_max=4)))

    def printer(event: str) -> Callable[[Ack], None]:
        def emit(ack: Ack) -> None:
            sys.stdout.write(json.dumps([event, ack.kind, *ack.key]) + "\n")
            sys.stdout.flush()

        return emit

    load = WriterLoad(storage, tag, threads=3, on_ack=printer("ack"), on_attempt=printer("try"))
    load.start()
    while True:  # until killed
        time.sleep(1)
        if load.unexpected:
            sys.stderr.write("\n".join(load.unexpected) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
