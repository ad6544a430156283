"""A TCP proxy that delays every byte by a fixed time each way: a network round trip on loopback.

The kernel here has no ``netem`` queueing discipline, so the network-delay benchmarks put each
server behind this proxy instead. It runs in its own process (its threads never compete with
the measured client for the GIL): ``python -m benchmarks.delay_proxy HOST PORT ROUND_TRIP``
listens on a free loopback port, prints it, and forwards to ``HOST:PORT``; each chunk read
from one side is written to the other ``ROUND_TRIP / 2`` seconds after it arrived, in order.

Threads, not asyncio: asyncio's timers go through epoll, whose timeout is whole milliseconds,
far too coarse for a 0.1 ms hop. Each direction of a connection has a reader and a writer
thread; the writer sleeps until each chunk's due time with the thread's timer slack set to
1 ns (``prctl``), so a 0.1 ms delay is not stretched by the kernel's default 50 µs slack. With
a zero delay the reader writes at once (one thread per direction): that is the proxy's own
cost, which the benchmark reports beside the delayed figures.

``DelayProxy`` starts and stops such a process from the benchmarks.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

__all__ = ["DelayProxy"]

_PR_SET_TIMERSLACK = 29


def _tight_timer() -> None:
    """Make this thread's sleeps end within about a microsecond of their due time (Linux)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the default slack stays
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
    """Forward ``source`` to ``sink``, each chunk ``delay`` seconds after it was read."""
    if delay <= 0:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)
        return
    due: collections.deque[tuple[float, bytes]] = collections.deque()
    ready = threading.Condition()

    def write() -> None:
        _tight_timer()
        try:
            while True:
                with ready:
                    while not due:
                        ready.wait()
                    at, data = due.popleft()
                if not data:
                    break
                wait = at - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        while True:
            data = source.recv(65536)
            with ready:
                due.append((time.perf_counter() + delay, data))
                ready.notify()
            if not data:
                break
    except OSError:
        with ready:
            due.append((0.0, b""))
            ready.notify()


def serve(host: str, port: int, round_trip: float) -> None:
    """Accept on a free loopback port (printed on stdout), forward every connection to ``host:port``."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    print(listener.getsockname()[1], flush=True)
    one_way = round_trip / 2
    while True:
        client, _ = listener.accept()
        server = socket.create_connection((host, port))
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pipe, args=(client, server, one_way), daemon=True).start()
        threading.Thread(target=_pipe, args=(server, client, one_way), daemon=True).start()


class DelayProxy:
    """The proxy in a child process, in front of ``host:port``: ``with DelayProxy(...) as port:``."""

    def __init__(self, host: str, port: int, round_trip: float) -> None:
        self.args = [sys.executable, "-m", "benchmarks.delay_proxy", host, str(port), repr(round_trip)]
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> int:
        root = Path(__file__).resolve().parent.parent  # where "benchmarks" imports from
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True, cwd=root)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.process.kill()
            raise RuntimeError(f"the delay proxy did not start: {line!r}")
        return int(line)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
