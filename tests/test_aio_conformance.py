"""The conformance suite's async runs really drive the facade, on the event loop they name."""

from __future__ import annotations

import sniffio

from datacon import NewConversation, Storage
from datacon.aio import AsyncStorage
from tests.aio_adapter import PortalStorage
from tests.support import Case


def test_the_case_fixture_drives_the_api_it_names(case: Case, api: str) -> None:
    if api == "sync":
        assert isinstance(case.storage, Storage)
        return
    assert isinstance(case.storage, PortalStorage)
    assert isinstance(case.storage.facade, AsyncStorage)
    assert case.storage.run(sniffio.current_async_library) == api
    conv = case.conversations.create_conversation(NewConversation(metadata={"via": api}))
    # Written through the facade, read back through the sync storage it wraps.
    assert case.storage.facade.sync.conversations.get_conversation(conv.id) == conv
    # The portal's loop has made this storage's private limiter, sized to the pool.
    limiter = case.storage.run(lambda: case.storage.facade.limiter)
    assert limiter.total_tokens == case.storage.facade.sync.max_concurrency
    assert limiter.borrowed_tokens == 0
