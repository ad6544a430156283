"""Child process of the migration race: waits for "go" on stdin, then opens a storage with auto_migrate.

Usage: ``python -m tests.reliability._migrator DB_URL [--transaction-pooling]``. Prints ``ready`` once imported, then
``ok`` after opening the storage and writing and reading one response. The migration
runner's INFO lines ("applied postgres schema migration vN") go to stderr.
"""

from __future__ import annotations

import logging
import sys

from datacon import PostgresConfig, SchemaConfig, StorageFactoryConfig, StoredResponse, create_storage


def main(url: str, transaction_pooling: bool = False) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    config = PostgresConfig(
        db_url=url, pool_max=2, schema=SchemaConfig(auto_migrate=True), transaction_pooling=transaction_pooling
    )
    with create_storage(StorageFactoryConfig(backend="postgres", postgres=config)) as storage:
        response = StoredResponse(safety_identifier="racer")
        storage.responses.store_response(response)
        assert storage.responses.get_response(response.id) is not None
    print("ok", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], "--transaction-pooling" in sys.argv[2:])
