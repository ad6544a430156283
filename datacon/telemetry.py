"""Observability of storage operations: OpenTelemetry spans and metrics, and the slow-operation log.

With ``opentelemetry-api`` installed (``pip install 'datacon-store[otel]'``) every storage operation
is one span named ``datacon.<operation>`` (kind ``CLIENT``, attributes ``db.system`` and
``datacon.backend``) and one measurement of the ``datacon.operation.duration`` histogram; the
pools of open storages are observed as the gauges below. datacon only talks to the API: what is
recorded and where it goes is the application's choice of SDK and exporter. Without an SDK the
API's no-op implementations run (a small cost, measured in ``docs/performance.md``); without
``opentelemetry-api`` this module imports nothing and the guard takes a branch that does no
telemetry work at all.

The span is started by the guard in the thread that runs the call: under the async facade
that is the worker thread, which runs in a copy of the caller's context, so the span is a
child of the caller's current span, and the psycopg/redis instrumentors' driver spans (same
thread) are children of it. Spans, metrics and log records carry operation and backend names,
durations and exception types and messages (datacon's messages never hold secrets); never a
payload, an id list or a URL.
"""

from __future__ import annotations

import logging
import threading
import traceback
import weakref
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, TypeVar

from datacon._version import __version__
from datacon.hooks import StorageOperation

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation
    from opentelemetry.trace import Tracer

try:  # imported once: the per-call branch below only tests whether this worked
    from opentelemetry import context as _otel_context
    from opentelemetry import metrics as _otel_metrics
    from opentelemetry import trace as _otel_trace
    from opentelemetry.metrics import Observation as _Observation
    from opentelemetry.trace import SpanKind as _SpanKind
    from opentelemetry.trace import Status as _Status
    from opentelemetry.trace import StatusCode as _StatusCode
except ImportError:  # the datacon-store[otel] extra is not installed
    OTEL_AVAILABLE = False
else:
    OTEL_AVAILABLE = True
    try:  # where the API keeps its global meter provider (see Observer.observe)
        from opentelemetry.metrics import _internal as _otel_metrics_state
    except ImportError:  # pragma: no cover - another layout: always record
        _otel_metrics_state = None  # type: ignore[assignment]

#: Whether the API's "provider set" globals are where ``Observer.observe`` reads them, so that
#: ``Observer.idle`` may read them directly (when not, it says "not idle": everything is recorded).
_PROVIDER_GLOBALS = (
    OTEL_AVAILABLE and hasattr(_otel_trace, "_TRACER_PROVIDER") and hasattr(_otel_metrics_state, "_METER_PROVIDER")
)

__all__ = [
    "DB_SYSTEMS",
    "DURATION",
    "ERRORS",
    "OTEL_AVAILABLE",
    "POOL_IN_USE",
    "POOL_WAITING",
    "POOL_WAIT_TIME",
    "SPAN_PREFIX",
    "Observer",
    "observer_for",
]

log = logging.getLogger(__name__)
A = TypeVar("A")
T = TypeVar("T")

#: Span names are this prefix and the ``StorageOperation`` value: ``datacon.get_response``.
SPAN_PREFIX = "datacon."
#: Histogram of operation durations in seconds; attributes ``operation``, ``backend``, ``outcome``.
DURATION = "datacon.operation.duration"
#: Counter of failed operations; attributes ``operation``, ``backend``, ``error.type`` (class name).
ERRORS = "datacon.operation.errors"
#: Gauge of pooled connections checked out, summed over the process's open storages; attribute ``backend``.
POOL_IN_USE = "datacon.pool.connections.in_use"
#: Gauge of calls waiting for a pooled connection; attribute ``backend``.
POOL_WAITING = "datacon.pool.connections.waiting"
#: Cumulative seconds spent waiting for a pooled connection (a counter); attribute ``backend``.
POOL_WAIT_TIME = "datacon.pool.wait_time"

#: ``db.system`` of each backend (OpenTelemetry's names where it has one).
DB_SYSTEMS: Mapping[str, str] = {
    "postgres": "postgresql",
    "redis": "redis",
    "sqlite": "sqlite",
    "oracle": "oracle",
    "memory": "memory",
    "none": "none",
}

# Seconds: from a memory-backend call (tens of microseconds) to a pool timeout.
_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Instruments:
    """The process's instruments, made once from the global meter (a proxy until the SDK is set)."""

    def __init__(self) -> None:
        meter = _otel_metrics.get_meter("datacon", __version__)
        self.duration: Histogram = meter.create_histogram(
            DURATION,
            unit="s",
            description="Duration of datacon storage operations",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        self.errors: Counter = meter.create_counter(
            ERRORS, unit="{error}", description="Failed datacon storage operations, by exception type"
        )
        meter.create_observable_up_down_counter(
            POOL_IN_USE,
            callbacks=[_pool_callback("in_use", 1)],
            unit="{connection}",
            description="Pooled connections in use",
        )
        meter.create_observable_up_down_counter(
            POOL_WAITING,
            callbacks=[_pool_callback("waiting", 1)],
            unit="{request}",
            description="Calls waiting for a pooled connection",
        )
        meter.create_observable_counter(
            POOL_WAIT_TIME,
            callbacks=[_pool_callback("wait_ms", 0.001)],
            unit="s",
            description="Time spent waiting for a pooled connection",
        )


_instruments: _Instruments | None = None
_instruments_lock = threading.Lock()

# Open storages whose pools are observed; a closed storage's cumulative counters are kept in
# _closed_totals so that a counter never goes backwards when a storage closes.
_pools: weakref.WeakSet[_PoolSource] = weakref.WeakSet()
_closed_totals: dict[tuple[str, str], float] = {}
_pools_lock = threading.Lock()


def _get_instruments() -> _Instruments:
    global _instruments
    if _instruments is None:
        with _instruments_lock:
            if _instruments is None:
                _instruments = _Instruments()
    return _instruments


class _PoolSource:
    """One open storage's pool statistics, for the observable instruments."""

    def __init__(self, backend: str, stats: Callable[[], Mapping[str, int]]) -> None:
        self.backend = backend
        self.stats = stats


def _pool_callback(key: str, scale: float) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        totals: dict[str, float] = {}
        with _pools_lock:
            sources = list(_pools)
            for (backend, name), value in _closed_totals.items():
                if name == key:
                    totals[backend] = totals.get(backend, 0.0) + value
        for source in sources:
            try:
                stats = source.stats()
            except Exception:  # noqa: BLE001, S112 - a pool closing meanwhile: skip it this time
                continue
            if key in stats:
                totals[source.backend] = totals.get(source.backend, 0.0) + stats[key] * scale
        return [_Observation(value if scale != 1 else int(value), {"backend": b}) for b, value in totals.items()]

    return observe


def _error_attributes(exc: BaseException) -> dict[str, str]:
    # The exception event without the chained driver exception: datacon's own message is
    # checked for secrets, a driver's may quote connection details.
    return {"exception.stacktrace": "".join(traceback.format_exception(exc, chain=False))}


class Observer:
    """Times one storage's operations: a span and a duration per call, a warning when slow.

    Made by :func:`observer_for` (``None`` when there is nothing to do), used by the guard.
    """

    __slots__ = (
        "_attributes",
        "_backend",
        "_instruments",
        "_names",
        "_pool",
        "_quiet",
        "_slow",
        "_tracer",
        "span_attributes",
    )

    def __init__(
        self,
        backend: str,
        slow_operation_secs: float | None,
        pool_stats: Callable[[], Mapping[str, int]] | None,
        *,
        otel: bool,
    ) -> None:
        self._backend = backend
        self._slow = slow_operation_secs
        self._tracer: Tracer | None = None
        self._instruments: _Instruments | None = None
        self._pool: _PoolSource | None = None
        self._names = {op: SPAN_PREFIX + op.value for op in StorageOperation}
        #: The attributes of every span of this storage.
        self.span_attributes = {"db.system": DB_SYSTEMS.get(backend, backend), "datacon.backend": backend}
        self._attributes: dict[tuple[StorageOperation, str], dict[str, str]] = {}
        # No slow threshold, and OpenTelemetry either absent or with its globals where idle()
        # reads them: idle() then depends only on whether a provider is set.
        self._quiet = slow_operation_secs is None and (not otel or _PROVIDER_GLOBALS)
        if otel:
            self._tracer = _otel_trace.get_tracer("datacon", __version__)
            self._instruments = _get_instruments()
            self._attributes = {
                (op, outcome): {"operation": op.value, "backend": backend, "outcome": outcome}
                for op in StorageOperation
                for outcome in ("ok", "error")
            }
            if pool_stats is not None:
                self._pool = _PoolSource(backend, pool_stats)
                with _pools_lock:
                    _pools.add(self._pool)

    def observe(self, op: StorageOperation, func: Callable[[A], T], arg: A) -> T:
        """``func(arg)`` inside the span of ``op``, timed; an exception is recorded and re-raised.

        One argument, not ``*args``: this runs on every storage call, and packing costs.
        """
        span = token = None
        tracer = self._tracer
        instruments = self._instruments
        # Without an SDK (no provider set) the API hands out no-op spans and instruments, after
        # a context lookup; skip them. The checks read the API's own "provider set" globals, which
        # its proxies read too; should they ever move, everything is recorded as usual.
        if instruments is not None and getattr(_otel_metrics_state, "_METER_PROVIDER", instruments) is None:
            instruments = None
        if tracer is not None and getattr(_otel_trace, "_TRACER_PROVIDER", tracer) is not None:
            span = tracer.start_span(self._names[op], kind=_SpanKind.CLIENT, attributes=self.span_attributes)
            # A recording span becomes the current one, so driver spans nest under it; a
            # non-recording one (not sampled) is not attached: that would change nothing.
            if span.is_recording():
                token = _otel_context.attach(_otel_trace.set_span_in_context(span))
        elif instruments is None and self._slow is None:
            return func(arg)
        start = perf_counter()
        try:
            result = func(arg)
        except BaseException as exc:
            duration = perf_counter() - start
            name = type(exc).__name__
            if span is not None:
                if token is not None:
                    _otel_context.detach(token)
                span.record_exception(exc, attributes=_error_attributes(exc))
                span.set_attribute("error.type", name)
                span.set_status(_Status(_StatusCode.ERROR, name))
                span.end()
            if instruments is not None:
                instruments.duration.record(duration, self._attributes[op, "error"])
                instruments.errors.add(1, {"operation": op.value, "backend": self._backend, "error.type": name})
            if self._slow is not None:
                self._check_slow(op, duration, "error")
            raise
        duration = perf_counter() - start
        if span is not None:
            if token is not None:
                _otel_context.detach(token)
            span.end()
        if instruments is not None:
            instruments.duration.record(duration, self._attributes[op, "ok"])
        if self._slow is not None:
            self._check_slow(op, duration, "ok")
        return result

    def idle(self) -> bool:
        """Whether :meth:`observe` would now only call its function: no slow threshold, and
        neither a tracer provider nor a meter provider set (the same checks, read per call:
        a provider may be set after the storage was made)."""
        if not self._quiet:
            return False
        if self._tracer is None:  # no OpenTelemetry (and no threshold): nothing to do
            return True
        return _otel_trace._TRACER_PROVIDER is None and _otel_metrics_state._METER_PROVIDER is None

    def _check_slow(self, op: StorageOperation, duration: float, outcome: str) -> None:
        slow = self._slow
        if slow is not None and duration >= slow:
            log.warning(
                "slow datacon operation: %s on %s took %.3f s (threshold %.3f s, %s)",
                op.value,
                self._backend,
                duration,
                slow,
                outcome,
                extra={"operation": op.value, "backend": self._backend, "duration": duration, "outcome": outcome},
            )

    def close(self) -> None:
        """Stop observing the pool; its cumulative wait time is kept for the process's counter."""
        source, self._pool = self._pool, None
        if source is None:
            return
        try:
            wait = source.stats().get("wait_ms")
        except Exception:  # noqa: BLE001 - the pool may already be gone
            wait = None
        with _pools_lock:
            _pools.discard(source)
            if wait:
                key = (source.backend, "wait_ms")
                _closed_totals[key] = _closed_totals.get(key, 0.0) + wait * 0.001


def observer_for(
    backend: str,
    slow_operation_secs: float | None = None,
    pool_stats: Callable[[], Mapping[str, int]] | None = None,
) -> Observer | None:
    """The observer of one storage, or ``None`` (no OpenTelemetry and no slow threshold: no cost)."""
    if not OTEL_AVAILABLE and slow_operation_secs is None:
        return None
    return Observer(backend, slow_operation_secs, pool_stats, otel=OTEL_AVAILABLE)
