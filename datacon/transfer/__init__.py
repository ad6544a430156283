"""Whole-storage export, import, copy and verify (the CLI's ``export``/``import``/``copy``).

- :mod:`~datacon.transfer.jsonl`: the dump format (JSON Lines), parsing and checking records;
- :mod:`~datacon.transfer.copy`: reading every record in pages, importing and copying;
- :mod:`~datacon.transfer.verify`: order-independent digests of two storages.
"""

from __future__ import annotations

from datacon.backends.base import Enumerable, NotEnumerableError, Restorable
from datacon.transfer.capability import enumerable, restorable
from datacon.transfer.copy import (
    DEFAULT_BATCH,
    ImportCounts,
    copy_storage,
    counts,
    import_records,
    iter_all,
    iter_batches,
)
from datacon.transfer.jsonl import KINDS, Kind, Record, dump_record, kind_of, parse_record, read_records
from datacon.transfer.verify import Digest, compare_digests, digest

__all__ = [
    "DEFAULT_BATCH",
    "KINDS",
    "Digest",
    "Enumerable",
    "ImportCounts",
    "Kind",
    "NotEnumerableError",
    "Record",
    "Restorable",
    "compare_digests",
    "copy_storage",
    "counts",
    "digest",
    "dump_record",
    "enumerable",
    "import_records",
    "iter_all",
    "iter_batches",
    "kind_of",
    "parse_record",
    "read_records",
    "restorable",
]
