"""Test-only adapter: the sync storage method names, driving an AsyncStorage through an anyio blocking portal."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from datacon import Storage
from datacon.aio import AsyncStorage


class PortalProxy:
    """Each coroutine method of ``target`` as a blocking call run on the portal's event loop.

    ``portal.call`` re-raises the coroutine's exception object itself, so ``ConflictError``
    and the rest reach the test unchanged.
    """

    def __init__(self, portal: BlockingPortal, target: object) -> None:
        self._portal = portal
        self._target = target

    def __getattr__(self, name: str) -> Any:
        member = getattr(self._target, name)
        if not inspect.iscoroutinefunction(member):
            # The sync suite only calls storage methods; anything else is a facade gap to see.
            raise AttributeError(f"{type(self._target).__name__}.{name} is not a coroutine method")

        @functools.wraps(member)
        def call(*args: Any, **kwargs: Any) -> Any:
            # portal.call passes positional arguments only; bind keywords first.
            return self._portal.call(functools.partial(member, *args, **kwargs))

        return call


class PortalStorage:
    """Looks like a sync :class:`~datacon.Storage`; every storage call goes through the async facade."""

    def __init__(self, portal: BlockingPortal, storage: AsyncStorage) -> None:
        self.portal = portal
        self.facade = storage
        self.responses = PortalProxy(portal, storage.responses)
        self.conversations = PortalProxy(portal, storage.conversations)
        self.items = PortalProxy(portal, storage.items)
        self.backend = storage.backend
        self.max_concurrency = storage.max_concurrency

    def close(self) -> None:
        self.portal.call(self.facade.aclose)

    def prune(self, *args: Any, **kwargs: Any) -> Any:
        return self.portal.call(functools.partial(self.facade.prune, *args, **kwargs))

    def erase_identifier(self, *args: Any, **kwargs: Any) -> Any:
        return self.portal.call(functools.partial(self.facade.erase_identifier, *args, **kwargs))

    def pool_stats(self) -> dict[str, int]:
        return self.facade.sync.pool_stats()

    def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func`` on the portal's event loop, awaiting it if it is a coroutine function."""
        return self.portal.call(func, *args)


@contextmanager
def portal_storage(storage: Storage, backend: str) -> Iterator[PortalStorage]:
    """``storage`` behind :class:`AsyncStorage`, driven from this thread by a portal running ``backend``.

    The facade is closed with ``aclose`` on the portal's loop before the portal stops.
    """
    with start_blocking_portal(backend) as portal:
        adapter = PortalStorage(portal, AsyncStorage(storage))
        try:
            yield adapter
        finally:
            adapter.close()
