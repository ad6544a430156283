"""Test-only OpenTelemetry SDK set-up: in-memory span exporter and metric reader, installed once.

OpenTelemetry's global providers can be set once per process, so the first test that needs
them installs both and every later one shares them. Spans are sampled only while a test holds
:func:`recording` (the rest of the suite pays for no recording spans); metrics are cumulative,
so tests compare readings before and after (:meth:`Sdk.points`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes


class SwitchSampler(Sampler):
    """Records every span while switched on, none otherwise."""

    def __init__(self) -> None:
        self.on = False

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE if self.on else Decision.DROP, attributes)

    def get_description(self) -> str:
        return "SwitchSampler"


class Sdk:
    """The process's SDK: spans exported to memory, metrics read on demand."""

    def __init__(self) -> None:
        self.sampler = SwitchSampler()
        self.exporter = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        provider = TracerProvider(sampler=self.sampler)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[self.reader]))
        self.tracer = trace.get_tracer("datacon-tests")
        if trace.get_tracer_provider() is not provider:
            raise RuntimeError("another tracer provider was installed first; the telemetry tests need theirs")

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def points(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """Data points of metric ``name`` by attribute set (cumulative since the process started)."""
        found: dict[frozenset[tuple[str, Any]], Any] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            found[frozenset((point.attributes or {}).items())] = point
        return found


_sdk: Sdk | None = None
_lock = threading.Lock()


def sdk() -> Sdk:
    global _sdk
    with _lock:
        if _sdk is None:
            _sdk = Sdk()
        return _sdk


@contextmanager
def recording() -> Iterator[Sdk]:
    """Spans are recorded (into a cleared exporter) inside the block."""
    current = sdk()
    current.exporter.clear()
    current.sampler.on = True
    try:
        yield current
    finally:
        current.sampler.on = False


@contextmanager
def psycopg_instrumented() -> Iterator[None]:
    """opentelemetry-instrumentation-psycopg's instrumentor, on inside the block.

    Its ``uninstrument()`` puts ``psycopg.Connection.connect`` back as a method bound to
    ``psycopg.Connection`` rather than the classmethod it was, so every subclass's ``connect``
    (datacon's pool connects through one, which carries the read timeout) would make plain
    connections for the rest of the process; the classmethod is restored here after it.
    """
    import psycopg
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    original = psycopg.Connection.__dict__["connect"]
    instrumentor = PsycopgInstrumentor()
    instrumentor.instrument(skip_dep_check=True)
    try:
        yield
    finally:
        instrumentor.uninstrument()
        psycopg.Connection.connect = original  # type: ignore[method-assign]
