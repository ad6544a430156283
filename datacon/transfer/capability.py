"""Finding a storage's enumeration and restore capabilities (``datacon.backends.base``)."""

from __future__ import annotations

from datacon.backends.base import Enumerable, NotEnumerableError, Restorable
from datacon.storage import Storage

__all__ = ["enumerable", "restorable"]


def enumerable(storage: Storage) -> Enumerable:
    """The backend of ``storage`` (as ``create_storage`` returns it) as an :class:`Enumerable`.

    :raises NotEnumerableError: the backend cannot list its records.
    """
    if isinstance(storage.raw, Enumerable):
        return storage.raw
    raise NotEnumerableError(
        f"the {storage.backend} backend cannot be enumerated (export and copy need a backend that lists its records)"
    )


def restorable(storage: Storage) -> Restorable | None:
    """The backend of ``storage`` as a :class:`Restorable`, or ``None`` (writes then use the public API)."""
    return storage.raw if isinstance(storage.raw, Restorable) else None
