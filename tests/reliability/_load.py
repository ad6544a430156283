"""A writer load for fault tests: threads writing records, counting what was acknowledged."""

from __future__ import annotations

import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable

import attrs

from datacon import NewConversation, NewConversationItem, Storage, StoredResponse
from datacon._time import utc_now
from datacon.errors import BackendUnavailableError, ConflictError, DataconError


@attrs.define(frozen=True)
class Ack:
    """One acknowledged write: what it was, and when (``time.monotonic()``) it returned."""

    kind: str  # "conversation", "item", "link" or "response"
    key: tuple[str, ...]
    at: float


class WriterLoad:
    """``threads`` writers creating conversations, items, links, chained responses and
    ``link_items`` batches in a loop.

    A call that raises ``BackendUnavailableError`` is counted and the writer moves on to a
    new id (so an unacknowledged write is never retried under the same id). Anything else
    raised is kept in ``unexpected``; a call slower than ``bound`` seconds in ``slow``.
    """

    def __init__(
        self,
        storage: Storage,
        tag: str,
        threads: int = 4,
        bound: float = 10.0,
        on_ack: Callable[[Ack], None] | None = None,
        on_attempt: Callable[[Ack], None] | None = None,
    ) -> None:
        self.storage = storage
        self.on_ack = on_ack  # called (under the load's lock) with every acknowledged write
        self.on_attempt = on_attempt  # called before every link_items batch is sent
        self.batches: list[Ack] = []  # every link_items batch attempted, acknowledged or not
        self.tag = tag
        self.bound = bound
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.acks: list[Ack] = []
        self.unavailable = Counter[str]()  # error type name -> count
        self.unavailable_messages: list[str] = []
        self.unexpected: list[str] = []  # formatted exceptions that are not BackendUnavailableError
        self.conflicts_after_retry = 0  # a driver's own retry re-sent a write that had succeeded
        self.slow: list[tuple[str, float]] = []
        self.errors: list[BaseException] = []  # every datacon error raised, for the secrets check
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)]

    # --- control
    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.bound * 3)
            assert not thread.is_alive(), "a writer thread hangs"

    def count(self) -> int:
        with self._lock:
            return len(self.acks)

    def wait_for(self, acks: int, timeout: float) -> bool:
        """Wait until ``acks`` writes in total have been acknowledged; whether they were."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= acks:
                return True
            time.sleep(0.01)
        return False

    def first_ack_after(self, moment: float, timeout: float) -> float | None:
        """Seconds from ``moment`` to the first write acknowledged after it (``None``: none came)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                later = [ack.at for ack in self.acks if ack.at > moment]
            if later:
                return min(later) - moment
            time.sleep(0.005)
        return None

    # --- writing
    def _call(self, kind: str, key: tuple[str, ...], call: Callable[..., object], *args: object) -> bool:
        started = time.monotonic()
        try:
            call(*args)
        except BackendUnavailableError as exc:
            self._note_error(exc, started, kind)
            with self._lock:
                self.unavailable[type(exc).__name__] += 1
                if len(self.unavailable_messages) < 50:
                    self.unavailable_messages.append(str(exc))
            time.sleep(0.02)  # do not spin while the server is down
            return False
        except ConflictError as exc:
            # Only a retried write can conflict (every id is new): the record is there.
            self._note_error(exc, started, kind)
            with self._lock:
                self.conflicts_after_retry += 1
                self.acks.append(Ack(kind, key, time.monotonic()))
            return True
        except Exception as exc:  # anything else is a defect of the error seam
            if isinstance(exc, DataconError):
                self._note_error(exc, started, kind)
            with self._lock:
                self.unexpected.append("".join(traceback.format_exception_only(exc)).strip())
            time.sleep(0.02)
            return False
        elapsed = time.monotonic() - started
        with self._lock:
            ack = Ack(kind, key, time.monotonic())
            self.acks.append(ack)
            if self.on_ack is not None:
                self.on_ack(ack)
            if elapsed > self.bound:
                self.slow.append((kind, elapsed))
        return True

    def _note_error(self, exc: BaseException, started: float, kind: str) -> None:
        elapsed = time.monotonic() - started
        with self._lock:
            self.errors.append(exc)
            if elapsed > self.bound:
                self.slow.append((f"{kind} ({type(exc).__name__})", elapsed))

    def _run(self, t: int) -> None:
        s = self.storage
        conv = f"load-{self.tag}-{t}"
        while not self._stop.is_set() and not self._call(
            "conversation", (conv,), s.conversations.create_conversation, NewConversation(id=conv)
        ):
            pass
        previous: str | None = None
        n = 0
        while not self._stop.is_set():
            n += 1
            ident = f"{self.tag}-{t}-{n}"
            step = n % 4
            if step == 0:
                cid = f"c-{ident}"
                self._call("conversation", (cid,), s.conversations.create_conversation, NewConversation(cid, {"n": n}))
            elif step == 1:
                item = f"msg_{ident}"
                new = NewConversationItem("message", [{"text": ident}], id=item, role="user")
                if self._call("item", (item,), s.items.create_item, new):
                    self._call("link", (conv, item), s.items.link_item, conv, item, utc_now())
            elif step == 2:
                response = StoredResponse(id=f"r-{ident}", previous_response_id=previous, input=[{"n": n}])
                if self._call("response", (response.id,), s.responses.store_response, response):
                    previous = response.id
            else:
                # Links may name items without records (no foreign keys): one atomic multi-row write.
                ids = [f"fc_{ident}_{k}" for k in range(3)]
                batch = Ack("batch", (conv, *ids), time.monotonic())
                with self._lock:
                    self.batches.append(batch)
                    if self.on_attempt is not None:
                        self.on_attempt(batch)
                now = utc_now()
                self._call("batch", batch.key, s.items.link_items, conv, [(item, now) for item in ids])

    # --- checking
    def missing(self, storage: Storage) -> list[Ack]:
        """Acknowledged writes that ``storage`` cannot read back (must be none)."""
        return missing(storage, self.acks)

    def torn(self, storage: Storage) -> list[Ack]:
        """Batches the fault left half linked (must be none)."""
        return torn(storage, self.batches)


def missing(storage: Storage, acks: list[Ack]) -> list[Ack]:
    """The writes of ``acks`` that ``storage`` cannot read back."""
    lost: list[Ack] = []
    for ack in acks:
        if ack.kind == "conversation":
            found = storage.conversations.get_conversation(ack.key[0]) is not None
        elif ack.kind == "item":
            found = storage.items.get_item(ack.key[0]) is not None
        elif ack.kind == "link":
            found = storage.items.is_item_linked(ack.key[0], ack.key[1])
        elif ack.kind == "batch":
            found = all(storage.items.is_item_linked(ack.key[0], item) for item in ack.key[1:])
        else:
            found = storage.responses.get_response(ack.key[0]) is not None
        if not found:
            lost.append(ack)
    return lost


def torn(storage: Storage, batches: list[Ack]) -> list[Ack]:
    """``link_items`` batches (acknowledged or not) that are partly linked: all or none, always."""
    partial: list[Ack] = []
    for batch in batches:
        linked = {storage.items.is_item_linked(batch.key[0], item) for item in batch.key[1:]}
        if len(linked) > 1:
            partial.append(batch)
    return partial
