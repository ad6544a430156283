"""Request context, carried in a context variable."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = [
    "RequestContext",
    "current_request_context",
    "request_context",
]


class RequestContext:
    """A string-to-string bag (tenant, user, request id...) that hooks can read.

    Make one current with :func:`request_context`; hooks receive it as ``context``.
    """

    __slots__ = ("_data", "_wrote")

    def __init__(self, data: Mapping[str, str] | None = None, /, **values: str) -> None:
        self._data: dict[str, str] = {}
        # Tokens of the storages that wrote while this context was current (read-your-writes:
        # a storage with read replicas reads from its primary after that). Not part of the bag.
        self._wrote: set[object] = set()
        for key, value in {**(data or {}), **values}.items():
            self.set(key, value)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value for ``key``, or ``default``."""
        return self._data.get(key, default)

    def set(self, key: str, value: str) -> None:
        """Set ``key`` to ``value`` (overwrites)."""
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("RequestContext keys and values must be str")
        self._data[key] = value

    def data(self) -> dict[str, str]:
        """A copy of the whole bag."""
        return dict(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestContext) and other._data == self._data

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data.items())))

    def __repr__(self) -> str:
        return f"RequestContext({self._data!r})"


_REQUEST_CONTEXT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "datacon_request_context", default=None
)


@contextmanager
def request_context(ctx: RequestContext | Mapping[str, str]) -> Iterator[RequestContext]:
    """Make ``ctx`` the current request context inside the ``with`` block.

    It is a context variable: visible to hooks in this thread, in tasks started from this
    one, and in calls made through the async facade (which copies the context to its
    worker thread).
    """
    value = ctx if isinstance(ctx, RequestContext) else RequestContext(ctx)
    token = _REQUEST_CONTEXT.set(value)
    try:
        yield value
    finally:
        _REQUEST_CONTEXT.reset(token)


def current_request_context() -> RequestContext | None:
    """The current request context, or ``None`` outside any :func:`request_context` block."""
    return _REQUEST_CONTEXT.get()


def note_write(token: object) -> None:
    """Record in the current request context (if any) that the storage ``token`` stands for wrote.

    Storages with read replicas call it before every write, and :func:`wrote_here` before a
    read, so a read after a write in the same request goes to the primary.
    """
    ctx = _REQUEST_CONTEXT.get()
    if ctx is not None:
        ctx._wrote.add(token)


def wrote_here(token: object) -> bool:
    """Whether the storage ``token`` stands for wrote in the current request context (or the
    caller asked for the primary with :func:`reads_from_primary`)."""
    if _FROM_PRIMARY.get():
        return True
    ctx = _REQUEST_CONTEXT.get()
    return ctx is not None and token in ctx._wrote


_FROM_PRIMARY: contextvars.ContextVar[bool] = contextvars.ContextVar("datacon_from_primary", default=False)


@contextmanager
def reads_from_primary() -> Iterator[None]:
    """Inside the block, storages with read replicas read from their primary (health probes)."""
    token = _FROM_PRIMARY.set(True)
    try:
        yield
    finally:
        _FROM_PRIMARY.reset(token)
