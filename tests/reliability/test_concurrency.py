"""Concurrency on every backend: mixed writers, duplicate-create races, paging while others append."""

from __future__ import annotations

import random
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from datacon import ListParams, NewConversation, NewConversationItem, SortOrder, Storage, StoredResponse
from datacon._time import to_epoch_us
from datacon.errors import ConflictError
from tests.conformance._util import at
from tests.reliability import figures
from tests.reliability._backends import backend_password
from tests.support import BackendUnderTest

pytestmark = pytest.mark.reliability

THREADS = 8
ROUNDS = 20
# Few instants: many links share an added_at, so ordering relies on the item-id tie-break.
INSTANTS = [at(seconds) for seconds in range(6)]


def run_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(index)`` in ``count`` threads at once; re-raise the first failure."""
    with ThreadPoolExecutor(count) as pool:
        for future in [pool.submit(work, index) for index in range(count)]:
            future.result(timeout=120)


def page_all(storage: Storage, conv: str, order: SortOrder, size: int) -> list[str]:
    """Every linked item id, fetched ``size`` at a time with the ``after`` cursor."""
    seen: list[str] = []
    after: str | None = None
    while True:
        page = storage.items.list_items(conv, ListParams(size, order, after))
        seen.extend(item.id for item in page)
        if len(page) < size:
            return seen
        after = page[-1].id


def test_mixed_operations_lose_and_duplicate_nothing(rel_backend: BackendUnderTest, rel_storage: Storage) -> None:
    s = rel_storage
    tag = secrets.token_hex(4)
    shared = s.conversations.create_conversation(NewConversation(id=f"shared-{tag}")).id
    linked: dict[str, datetime] = {}  # what must be linked to `shared` at the end
    unlinked: set[str] = set()
    lock = threading.Lock()

    def worker(t: int) -> None:
        rng = random.Random(t)
        own = s.conversations.create_conversation(NewConversation(id=f"own-{tag}-{t}", metadata={"t": t})).id
        previous: str | None = None
        mine: list[str] = []
        for n in range(ROUNDS):
            ids = [f"msg_{tag}_{t}_{n}_{k}" for k in range(2)]
            for item_id in ids:
                s.items.create_item(NewConversationItem("message", {"t": t, "n": n}, id=item_id, role="user"))
            when = [rng.choice(INSTANTS), rng.choice(INSTANTS)]
            if n % 2:
                s.items.link_items(shared, list(zip(ids, when, strict=True)))
            else:
                for item_id, added_at in zip(ids, when, strict=True):
                    s.items.link_item(shared, item_id, added_at)
            s.items.link_items(own, [(item_id, at(n, micros=k)) for k, item_id in enumerate(ids)])
            with lock:
                linked.update(zip(ids, when, strict=True))
            mine.extend(ids)
            response = StoredResponse(
                id=f"r-{tag}-{t}-{n:03}", previous_response_id=previous, created_at=at(n), safety_identifier=f"u-{tag}"
            )
            s.responses.store_response(response)
            previous = response.id
            if n % 4 == 3:
                victim = mine.pop(rng.randrange(len(mine)))
                with lock:
                    del linked[victim]
                    unlinked.add(victim)
                s.items.delete_item(shared, victim)
            # reads racing the writers must not fail
            s.items.list_items(shared, ListParams(5, SortOrder.DESC))
            s.conversations.update_conversation(own, {"t": t, "n": n})
        assert [r.id for r in s.responses.get_response_chain(previous or "")] == [
            f"r-{tag}-{t}-{n:03}" for n in range(ROUNDS)
        ]
        assert [i.id for i in s.items.list_items(own, ListParams(1000))] == [
            f"msg_{tag}_{t}_{n}_{k}" for n in range(ROUNDS) for k in range(2)
        ]

    run_threads(THREADS, worker)

    listed = [item.id for item in s.items.list_items(shared, ListParams(10_000))]
    duplicated = [item for item, count in Counter(listed).items() if count > 1]
    assert duplicated == []
    assert set(listed) == set(linked), (
        f"lost links: {sorted(set(linked) - set(listed))[:5]}, stale links: {sorted(set(listed) - set(linked))[:5]}"
    )
    # By added_at; ties in the order linked (racing calls have no order between them).
    assert [to_epoch_us(linked[item]) for item in listed] == sorted(to_epoch_us(linked[item]) for item in listed)
    assert page_all(s, shared, SortOrder.DESC, 7) == listed[::-1]
    assert all(not s.items.is_item_linked(shared, item) for item in unlinked)
    assert all(s.items.get_item(item) is not None for item in unlinked), "delete_item removed an item record"
    assert len(s.responses.list_identifier_responses(f"u-{tag}")) == THREADS * ROUNDS
    for t in range(THREADS):
        conv = s.conversations.get_conversation(f"own-{tag}-{t}")
        assert conv is not None
        assert conv.metadata == {"t": t, "n": ROUNDS - 1}
    figures.record(
        f"concurrency[{rel_backend.name}]",
        f"{THREADS} threads x {ROUNDS} rounds: {len(listed)} shared links intact, {len(unlinked)} unlinked, "
        f"{THREADS * ROUNDS} chained responses",
    )


RACES: dict[str, Callable[[Storage, str, str], object]] = {
    "create_conversation": lambda s, key, shared: s.conversations.create_conversation(NewConversation(id=key)),
    "create_item": lambda s, key, shared: s.items.create_item(NewConversationItem("message", [], id=key)),
    "store_response": lambda s, key, shared: s.responses.store_response(StoredResponse(id=key)),
    "link_item": lambda s, key, shared: s.items.link_item(shared, key, at(0)),
    "link_items": lambda s, key, shared: s.items.link_items(shared, [(key + "-a", at(0)), (key, at(1))]),
}


@pytest.mark.parametrize("operation", list(RACES))
def test_concurrent_duplicate_creates_yield_one_success(
    rel_backend: BackendUnderTest, rel_storage: Storage, operation: str
) -> None:
    s = rel_storage
    tag = secrets.token_hex(4)
    shared = s.conversations.create_conversation(NewConversation(id=f"race-{tag}")).id
    call = RACES[operation]
    password = backend_password(rel_backend)
    attempts = 5
    for attempt in range(attempts):
        key = f"{operation[:6]}-{tag}-{attempt}"
        if operation.startswith("link"):
            for item_id in (key, key + "-a"):
                s.items.create_item(NewConversationItem("message", [], id=item_id))
        barrier = threading.Barrier(THREADS)
        results: list[str] = []

        def racer(t: int, key: str = key, barrier: threading.Barrier = barrier, results: list[str] = results) -> None:
            barrier.wait(timeout=30)
            try:
                call(s, key, shared)
            except ConflictError as exc:
                results.append("conflict" if password is None or password not in str(exc) else "leak")
            else:
                results.append("ok")

        run_threads(THREADS, racer)
        assert sorted(results) == ["conflict"] * (THREADS - 1) + ["ok"], f"attempt {attempt}: {results}"
    if operation.startswith("link"):
        listed = [item.id for item in s.items.list_items(shared, ListParams(1000))]
        keys = [f"{operation[:6]}-{tag}-{a}" for a in range(attempts)]
        expected = keys if operation == "link_item" else [k for key in keys for k in (key + "-a", key)]
        assert sorted(listed) == sorted(expected), "a raced link is missing or was written twice"
    figures.record(
        f"duplicate races[{rel_backend.name}]",
        f"{len(RACES)} operations x {attempts} races x {THREADS} threads: one success each",
    )


def test_paging_while_others_append_never_repeats(rel_backend: BackendUnderTest, rel_storage: Storage) -> None:
    s = rel_storage
    tag = secrets.token_hex(4)
    conv = s.conversations.create_conversation(NewConversation(id=f"page-{tag}")).id
    added: dict[str, int] = {}  # item id -> added_at in µs, set before the link is written
    rng = random.Random(7)
    initial = [f"msg_{tag}_init_{n:03}" for n in range(60)]
    for item_id in initial:
        s.items.create_item(NewConversationItem("message", "x", id=item_id))
    batch = [(item_id, rng.choice(INSTANTS)) for item_id in initial]
    added.update((item_id, to_epoch_us(when)) for item_id, when in batch)
    s.items.link_items(conv, batch)
    linked_order = {item_id: n for n, (item_id, _) in enumerate(batch)}
    stop = threading.Event()
    passes = Counter[str]()

    def appender(t: int) -> None:
        local = random.Random(t)
        for n in range(40):
            item_id = f"msg_{tag}_{t}_{n:03}"
            s.items.create_item(NewConversationItem("message", "y", id=item_id))
            when = local.choice(INSTANTS)
            added[item_id] = to_epoch_us(when)
            s.items.link_item(conv, item_id, when)
        stop.set()

    def pager(t: int) -> None:
        order = SortOrder.ASC if t % 2 == 0 else SortOrder.DESC
        while not stop.is_set() or passes[order] < 3:
            seen = page_all(s, conv, order, 7)
            assert len(seen) == len(set(seen)), f"{order} pass returned an item twice"
            assert set(initial) <= set(seen), f"{order} pass missed an item linked before it started"
            times = [added[item] for item in seen]
            assert times == sorted(times, reverse=order is SortOrder.DESC), f"{order} pass went backwards"
            # Ties list in the order linked: the initial batch's items keep the order given.
            first = [item for item in seen if item in linked_order]
            in_order = sorted(first, key=lambda item: (added[item], linked_order[item]))
            assert first == (in_order if order is SortOrder.ASC else in_order[::-1]), f"{order} pass broke a tie"
            passes[order] += 1

    def role(t: int) -> None:
        (appender if t < 4 else pager)(t)

    run_threads(THREADS, role)
    final = page_all(s, conv, SortOrder.ASC, 7)
    assert len(final) == 60 + 4 * 40
    assert len(set(final)) == len(final)
    figures.record(
        f"paging under appends[{rel_backend.name}]",
        f"{passes[SortOrder.ASC]} ascending and {passes[SortOrder.DESC]} descending passes, no repeats",
    )


def test_concurrent_link_items_in_different_orders_yield_one_success(
    rel_backend: BackendUnderTest, rel_storage: Storage
) -> None:
    """The same links given in a different order by each caller: one winner, ``ConflictError``
    for the others (PostgreSQL used to abort some with ``DeadlockDetected`` as ``BackendError``)."""
    s = rel_storage
    tag = secrets.token_hex(4)
    rounds, size = 12, 20
    for attempt in range(rounds):
        conv = s.conversations.create_conversation(NewConversation(id=f"order-{tag}-{attempt}")).id
        ids = [f"msg_{tag}_{attempt}_{n:02}" for n in range(size)]
        for item_id in ids:
            s.items.create_item(NewConversationItem("message", [], id=item_id))
        links = [(item_id, at(n)) for n, item_id in enumerate(ids)]
        barrier = threading.Barrier(THREADS)
        results: list[str] = []

        def racer(
            t: int,
            conv: str = conv,
            links: list[tuple[str, datetime]] = links,
            seed: int = attempt,
            barrier: threading.Barrier = barrier,
            results: list[str] = results,
        ) -> None:
            mine = links[:]
            random.Random(t * 1000 + seed).shuffle(mine)
            barrier.wait(timeout=30)
            try:
                s.items.link_items(conv, mine)
            except ConflictError:
                results.append("conflict")
            except Exception as exc:  # any other outcome is the failure reported below
                results.append(f"{type(exc).__name__}: {exc}")
            else:
                results.append("ok")

        run_threads(THREADS, racer)
        assert sorted(results) == ["conflict"] * (THREADS - 1) + ["ok"], f"round {attempt}: {results}"
        # The winner's links, each once, in (added_at, item id) order whatever order won.
        assert [item.id for item in s.items.list_items(conv, ListParams(100))] == ids
    figures.record(
        f"link_items order races[{rel_backend.name}]",
        f"{rounds} rounds x {THREADS} threads linking the same {size} items in shuffled orders: one success each",
    )


def test_concurrent_turns_sharing_one_added_at_never_interleave(
    rel_backend: BackendUnderTest, rel_storage: Storage
) -> None:
    """SPEC 7.2: links sharing one ``added_at`` list in the order given, separate calls in call
    order. Calls racing on one conversation with one ``added_at`` (half ``append_items``, half
    ``link_items``) must each draw sequences of their own: every call's items stay contiguous
    and in the order given. Item ids are chosen so that a fall-back to item-id order (equal
    sequences) interleaves the calls and reverses each call's order, which this would see."""
    s = rel_storage
    tag = secrets.token_hex(4)
    rounds, size = 10, 4
    when = at(99)
    for attempt in range(rounds):
        conv = s.conversations.create_conversation(NewConversation(id=f"turns-{tag}-{attempt}")).id
        # Call t's k-th item (in the order given) has id "..._{size - k}_{t}": by id, calls interleave
        # and each call's items are reversed.
        calls = [[f"msg_{tag}_{attempt}_{size - k}_{t}" for k in range(size)] for t in range(THREADS)]
        for t in range(1, THREADS, 2):  # the link_items callers' items exist beforehand
            for item_id in calls[t]:
                s.items.create_item(NewConversationItem("message", [], id=item_id))
        barrier = threading.Barrier(THREADS)

        def racer(
            t: int, conv: str = conv, calls: list[list[str]] = calls, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait(timeout=30)
            if t % 2 == 0:
                s.items.append_items(conv, [NewConversationItem("message", [], id=i) for i in calls[t]], when)
            else:
                s.items.link_items(conv, [(item_id, when) for item_id in calls[t]])

        run_threads(THREADS, racer)
        listed = [item.id for item in s.items.list_items(conv, ListParams(100))]
        assert sorted(listed) == sorted(i for call in calls for i in call), f"round {attempt}: {listed}"
        turns = [listed[start : start + size] for start in range(0, len(listed), size)]
        assert sorted(turns) == sorted(calls), f"round {attempt}: the calls interleaved: {listed}"
        # Pages (whose cursors carry each link's sequence) agree, one item at a time.
        paged, cursor = [], None
        while True:
            page = s.items.list_items_page(conv, ListParams(1, after=cursor))
            paged += [item.id for item in page.data]
            if not page.has_more:
                break
            cursor = page.next_cursor
        assert paged == listed
        assert [item.id for item in s.items.list_items(conv, ListParams(100, SortOrder.DESC))] == listed[::-1]
    figures.record(
        f"turns sharing one added_at[{rel_backend.name}]",
        f"{rounds} rounds x {THREADS} concurrent append_items/link_items of {size} items: never interleaved",
    )
