"""Observability on every backend, sync and async: spans, metrics, on_error, health, slow-operation logs.

Spans and metrics go to the OpenTelemetry SDK's in-memory exporter and reader
(``tests/telemetry_sdk.py``); driver spans come from the real psycopg and redis instrumentors.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import anyio
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from datacon import (
    BeforeHookResult,
    HealthReport,
    NewConversation,
    RequestContext,
    SchemaConfig,
    StorageFactoryConfig,
    StorageHook,
    StorageOperation,
    StoredResponse,
    create_storage,
    request_context,
)
from datacon.aio import AsyncStorage
from datacon.errors import ConfigError, ConflictError, HookRejectedError
from datacon.telemetry import DURATION, ERRORS, POOL_IN_USE, POOL_WAIT_TIME, POOL_WAITING
from tests.conftest import SERVER_BACKENDS
from tests.support import BackendUnderTest, repo_root
from tests.telemetry_sdk import Sdk, psycopg_instrumented, recording, sdk

SECRET = "s3cret-payload-value"
DB_SYSTEM = {"memory": "memory", "none": "none", "sqlite": "sqlite", "postgres": "postgresql", "redis": "redis"}
DB_SYSTEM["oracle"] = "oracle"


class NoneBackend:
    """The ``none`` backend: stores nothing."""

    name = "none"

    def config(self, schema: SchemaConfig | None = None, hook: StorageHook | None = None) -> StorageFactoryConfig:
        return StorageFactoryConfig(backend="none", hook=hook)

    def wipe(self, schema: SchemaConfig | None = None) -> None:
        return None


@pytest.fixture(scope="session")
def none_backend() -> BackendUnderTest:
    return NoneBackend()


BACKEND_PARAMS = [pytest.param("memory", id="memory"), pytest.param("none", id="none")] + [
    pytest.param(name, id=name, marks=[getattr(pytest.mark, name)]) for name in SERVER_BACKENDS
]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest) -> Iterator[BackendUnderTest]:
    found: BackendUnderTest = request.getfixturevalue(f"{request.param}_backend")
    yield found
    found.wipe()


class Recorder(StorageHook):
    """Rejects ``delete_response``; records ``on_error`` calls."""

    def __init__(self) -> None:
        self.errors: list[tuple[StorageOperation, RequestContext | None, Any, Exception]] = []

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        if operation is StorageOperation.DELETE_RESPONSE:
            return BeforeHookResult.reject("responses are kept")
        return BeforeHookResult.cont()

    def on_error(
        self, operation: StorageOperation, context: RequestContext | None, payload: Any, error: Exception
    ) -> None:
        self.errors.append((operation, context, payload, error))


def steps(backend: str, suffix: str) -> list[tuple[str, str, tuple[Any, ...], type[Exception] | None]]:
    """(store, method, args, expected error) of one scenario: reads, writes, a conflict, a rejection."""
    conversation = f"conv_tel_{suffix}"
    response = StoredResponse(input=[{"text": SECRET}], safety_identifier="user-tel")
    found: list[tuple[str, str, tuple[Any, ...], type[Exception] | None]] = [
        ("conversations", "create_conversation", (NewConversation(id=conversation, metadata={"k": SECRET}),), None),
        ("conversations", "get_conversation", (conversation,), None),
        ("responses", "store_response", (response,), None),
        ("responses", "get_response", (response.id,), None),
    ]
    if backend != "none":  # the none backend stores nothing, so nothing conflicts
        found.append(("conversations", "create_conversation", (NewConversation(id=conversation),), ConflictError))
    found.append(("responses", "delete_response", (response.id,), HookRejectedError))
    return found


def run_scenario(storage: Any, api: str, backend: str, sdk_: Sdk) -> tuple[int, int]:
    """Run :func:`steps` under a parent span, through the sync API or the async facade; (trace id, span id)."""
    plan = steps(backend, api)
    ids: list[int] = []

    def sync_main() -> None:
        with sdk_.tracer.start_as_current_span("request") as parent, request_context(RequestContext({"t": "1"})):
            ids.extend([parent.get_span_context().trace_id, parent.get_span_context().span_id])
            for store, method, args, error in plan:
                call = getattr(getattr(storage, store), method)
                if error is None:
                    call(*args)
                else:
                    with pytest.raises(error):
                        call(*args)

    async def async_main() -> None:
        facade = AsyncStorage(storage)
        with sdk_.tracer.start_as_current_span("request") as parent, request_context(RequestContext({"t": "1"})):
            ids.extend([parent.get_span_context().trace_id, parent.get_span_context().span_id])
            for store, method, args, error in plan:
                call = getattr(getattr(facade, store), method)
                if error is None:
                    await call(*args)
                else:
                    with pytest.raises(error):
                        await call(*args)

    if api == "sync":
        sync_main()
    else:
        anyio.run(async_main, backend=api)
    return ids[0], ids[1]


def counts(sdk_: Sdk, name: str) -> dict[frozenset[tuple[str, Any]], float]:
    return {key: (point.count if hasattr(point, "count") else point.value) for key, point in sdk_.points(name).items()}


Points = Mapping[frozenset[tuple[str, Any]], float]


def delta(before: Points, after: Points) -> dict[frozenset[tuple[str, Any]], float]:
    return {key: value - before.get(key, 0) for key, value in after.items() if value - before.get(key, 0)}


@pytest.mark.parametrize("api", ["sync", "asyncio", "trio"])
def test_one_span_per_operation_in_the_callers_trace_and_metrics(
    backend: BackendUnderTest, api: str, caplog: pytest.LogCaptureFixture
) -> None:
    hook = Recorder()
    name = backend.name
    caplog.set_level(logging.DEBUG, logger="datacon")
    config = backend.config(hook=hook)
    config.slow_operation_secs = 1e-9  # every operation logs its slow-operation warning
    with recording() as sdk_, create_storage(config) as storage:
        durations, errors = counts(sdk_, DURATION), counts(sdk_, ERRORS)
        trace_id, parent_id = run_scenario(storage, api, name, sdk_)
        spans = [s for s in sdk_.spans() if s.name.startswith("datacon.")]
        new_durations, new_errors = delta(durations, counts(sdk_, DURATION)), delta(errors, counts(sdk_, ERRORS))

    plan = steps(name, api)
    assert [s.name for s in spans] == [f"datacon.{method}" for _, method, _, _ in plan]
    for span, (_, _method, _, error) in zip(spans, plan, strict=True):
        assert span.kind is SpanKind.CLIENT
        assert span.context is not None
        assert span.context.trace_id == trace_id
        assert span.parent is not None
        assert span.parent.span_id == parent_id, "not a child of the caller's span"
        assert dict(span.attributes or {}) == {"db.system": DB_SYSTEM[name], "datacon.backend": name} | (
            {"error.type": error.__name__} if error else {}
        )
        if error is None:
            assert span.status.status_code is StatusCode.UNSET
            assert not span.events
        else:
            assert span.status.status_code is StatusCode.ERROR
            (event,) = span.events
            assert event.name == "exception"
            assert str((event.attributes or {})["exception.type"]).endswith(error.__name__)
        for event in span.events:  # no payload ever reaches telemetry
            assert SECRET not in repr(dict(event.attributes or {}))
        assert SECRET not in repr(dict(span.attributes or {}))

    expected: dict[frozenset[tuple[str, Any]], float] = {}
    for _, method, _, error in plan:
        key = frozenset({"operation": method, "backend": name, "outcome": "error" if error else "ok"}.items())
        expected[key] = expected.get(key, 0) + 1
    assert new_durations == expected
    expected_errors = {
        frozenset({"operation": method, "backend": name, "error.type": error.__name__}.items()): 1
        for _, method, _, error in plan
        if error is not None
    }
    assert new_errors == expected_errors
    slow = [r for r in caplog.records if r.name == "datacon.telemetry"]
    assert [(r.operation, r.outcome) for r in slow] == [  # type: ignore[attr-defined]
        (method, "error" if error else "ok") for _, method, _, error in plan
    ]
    assert SECRET not in caplog.text, "a payload reached a log record"

    # on_error: the backend's conflict, with the caller's context; never the hook's own rejection.
    if name == "none":
        assert hook.errors == []
    else:
        ((operation, context, payload, raised),) = hook.errors
        assert operation is StorageOperation.CREATE_CONVERSATION
        assert isinstance(raised, ConflictError)
        assert context == RequestContext({"t": "1"})
        assert payload == {"id": f"conv_tel_{api}"}


def test_pool_metrics_follow_pool_stats(backend: BackendUnderTest) -> None:
    sdk_ = sdk()
    with create_storage(backend.config()) as storage:
        storage.conversations.get_conversation("conv_absent")
        stats = storage.pool_stats()
        in_use = sdk_.points(POOL_IN_USE)
        waiting = sdk_.points(POOL_WAITING)
        wait_time = sdk_.points(POOL_WAIT_TIME)
    key = frozenset({"backend": backend.name}.items())
    if "in_use" in stats:
        assert key in in_use
        assert in_use[key].value >= 0
    else:
        assert key not in in_use
    if "waiting" in stats:
        assert key in waiting
        assert waiting[key].value >= 0
    if "wait_ms" in stats:
        assert key in wait_time
        assert wait_time[key].value >= 0
    assert (backend.name in ("memory", "none")) == (stats == {})


@pytest.mark.sqlite
def test_pool_gauges_count_a_waiting_caller_and_its_wait(sqlite_backend: BackendUnderTest) -> None:
    """One SQLite writer holds the writer lock; a second waits: waiting 1, then the wait is counted."""
    import threading

    sdk_ = sdk()
    key = frozenset({"backend": "sqlite"}.items())
    entered = threading.Event()

    with create_storage(sqlite_backend.config()) as storage:
        connector = storage.raw.store.connector  # type: ignore[attr-defined]
        before = sdk_.points(POOL_WAIT_TIME).get(key)
        with connector.session(write=True):

            def write() -> None:
                entered.set()
                storage.conversations.create_conversation(NewConversation())

            worker = threading.Thread(target=write)
            worker.start()
            entered.wait(5)
            for _ in range(200):
                if storage.pool_stats()["waiting"] == 1:
                    break
                threading.Event().wait(0.01)
            assert storage.pool_stats()["waiting"] == 1
            assert sdk_.points(POOL_WAITING)[key].value >= 1
            threading.Event().wait(0.05)
        worker.join(10)
        after = sdk_.points(POOL_WAIT_TIME)[key].value
        assert storage.pool_stats()["waiting"] == 0
        assert storage.pool_stats()["wait_ms"] >= 40
    assert after - (before.value if before is not None else 0) >= 0.04


@pytest.mark.parametrize("api", ["sync", "asyncio", "trio"])
def test_health_on_every_backend(backend: BackendUnderTest, api: str) -> None:
    storage = create_storage(backend.config())
    try:
        if api == "sync":
            report = storage.health()
        else:

            async def main() -> HealthReport:
                return await AsyncStorage(storage).health()

            report = anyio.run(main, backend=api)
    finally:
        storage.close()
    assert isinstance(report, HealthReport)
    assert report.ok, report.error
    assert report.error is None
    assert report.backend == backend.name
    assert 0 <= report.latency_secs < 30
    if backend.name in ("memory", "none"):
        assert report.pool == {}
    else:
        assert report.pool["in_use"] == 0
    assert report.to_dict()["ok"] is True
    closed = storage.health()
    assert (closed.ok, closed.error) == (False, "the storage is closed")


@pytest.mark.redis
def test_health_reports_an_unreachable_server_without_raising(redis_backend: BackendUnderTest) -> None:
    from tests.support import free_port

    section = redis_backend.config().redis
    assert section is not None
    import attrs

    dead = attrs.evolve(section, url=f"redis://:pw-s3cret@127.0.0.1:{free_port()}/0", connect_timeout_secs=1)
    try:
        storage = create_storage(StorageFactoryConfig(backend="redis", redis=dead))
    except Exception as exc:  # opening may already connect
        pytest.fail(f"opening a Redis storage connected eagerly: {exc!r}")
    with storage:
        report = storage.health()
    assert report.ok is False
    assert report.error is not None
    assert report.error.startswith("BackendUnavailableError")
    assert "pw-s3cret" not in repr(report)


def test_slow_operations_are_logged_with_structured_fields_and_no_payload(caplog: pytest.LogCaptureFixture) -> None:
    config = StorageFactoryConfig(slow_operation_secs=1e-9)
    with caplog.at_level(logging.WARNING, logger="datacon.telemetry"), create_storage(config) as storage:
        storage.conversations.create_conversation(NewConversation(metadata={"k": SECRET}))
    (record,) = [r for r in caplog.records if r.name == "datacon.telemetry"]
    assert record.levelno == logging.WARNING
    assert (record.operation, record.backend, record.outcome) == ("create_conversation", "memory", "ok")  # type: ignore[attr-defined]
    duration = getattr(record, "duration", None)
    assert isinstance(duration, float)
    assert duration > 0
    assert "create_conversation on memory took" in record.getMessage()
    assert SECRET not in caplog.text


def test_fast_operations_are_not_logged_and_the_threshold_is_validated(caplog: pytest.LogCaptureFixture) -> None:
    config = StorageFactoryConfig(slow_operation_secs=60)
    with caplog.at_level(logging.DEBUG, logger="datacon"), create_storage(config) as s:
        s.conversations.get_conversation("conv_x")
    assert not [r for r in caplog.records if r.name == "datacon.telemetry"]
    for bad in (0, -1, "1", True):
        with pytest.raises(ConfigError, match="slow_operation_secs must be greater than 0"):
            StorageFactoryConfig(slow_operation_secs=bad)  # type: ignore[arg-type]
    parsed = StorageFactoryConfig.from_mapping({"backend": "memory", "slow_operation_secs": 0.25})
    assert parsed.slow_operation_secs == 0.25


def test_a_raising_on_error_is_logged_and_the_backend_error_still_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(StorageHook):
        def on_error(
            self, operation: StorageOperation, context: RequestContext | None, payload: Any, error: Exception
        ) -> None:
            raise RuntimeError("on_error blew up")

    config = StorageFactoryConfig(hook=Broken())
    with caplog.at_level(logging.WARNING, logger="datacon.hooks"), create_storage(config) as s:
        s.conversations.create_conversation(NewConversation(id="conv_dup"))
        with pytest.raises(ConflictError):
            s.conversations.create_conversation(NewConversation(id="conv_dup"))
        assert s.conversations.get_conversation("conv_dup") is not None
    assert any("on_error(create_conversation) failed: RuntimeError" in r.getMessage() for r in caplog.records)


def test_a_hook_without_on_error_still_works() -> None:
    class Old:  # written before on_error existed, not subclassing StorageHook
        def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
            return BeforeHookResult.cont()

        def after(self, *args: Any) -> None:
            return None

    with create_storage(StorageFactoryConfig(hook=Old())) as storage:  # type: ignore[arg-type]
        storage.conversations.create_conversation(NewConversation(id="conv_old"))
        with pytest.raises(ConflictError):
            storage.conversations.create_conversation(NewConversation(id="conv_old"))


def test_every_datacon_logger_is_named_after_its_module() -> None:
    import importlib
    import importlib.util
    import pkgutil

    import datacon

    for module in pkgutil.walk_packages(datacon.__path__, "datacon."):
        if module.name.startswith("datacon.backends.oracle"):
            continue  # needs its driver only when chosen
        importlib.import_module(module.name)
    names = [name for name in logging.root.manager.loggerDict if name == "datacon" or name.startswith("datacon.")]
    assert "datacon.telemetry" in names
    assert "datacon.hooks" in names
    for name in names:
        if isinstance(logging.root.manager.loggerDict[name], logging.PlaceHolder):
            continue
        assert importlib.util.find_spec(name) is not None, f"logger {name} is not a module's"


def _driver_spans(spans: list[Any], parent_name: str) -> tuple[Any, list[Any]]:
    (outer,) = [s for s in spans if s.name == parent_name]
    children = [s for s in spans if s.parent is not None and s.parent.span_id == outer.context.span_id]
    return outer, children


@pytest.mark.postgres
@pytest.mark.parametrize("api", ["sync", "asyncio", "trio"])
def test_psycopg_instrumentor_spans_nest_under_the_datacon_span(postgres_backend: BackendUnderTest, api: str) -> None:
    try:
        with psycopg_instrumented(), recording() as sdk_, create_storage(postgres_backend.config()) as storage:
            _call(storage, api, lambda s: s.conversations.get_conversation("conv_nested"))
            spans = sdk_.spans()
    finally:
        postgres_backend.wipe()
    outer, children = _driver_spans(spans, "datacon.get_conversation")
    assert children, f"no psycopg span under datacon.get_conversation: {[s.name for s in spans]}"
    assert all((c.attributes or {}).get("db.system") in ("postgresql", "postgres") for c in children)
    assert all(c.context.trace_id == outer.context.trace_id for c in children)


@pytest.mark.redis
@pytest.mark.parametrize("api", ["sync", "asyncio", "trio"])
def test_redis_instrumentor_spans_nest_under_the_datacon_span(redis_backend: BackendUnderTest, api: str) -> None:
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentor = RedisInstrumentor()
    instrumentor.instrument(skip_dep_check=True)
    try:
        with recording() as sdk_, create_storage(redis_backend.config()) as storage:
            _call(storage, api, lambda s: s.conversations.get_conversation("conv_nested"))
            spans = sdk_.spans()
    finally:
        instrumentor.uninstrument()
        redis_backend.wipe()
    _outer, children = _driver_spans(spans, "datacon.get_conversation")
    assert children, f"no redis span under datacon.get_conversation: {[s.name for s in spans]}"
    assert all((c.attributes or {}).get("db.system") == "redis" for c in children)


def _call(storage: Any, api: str, action: Callable[[Any], Any]) -> None:
    if api == "sync":
        action(storage)
        return

    async def main() -> None:
        await action(AsyncStorage(storage))

    anyio.run(main, backend=api)


def test_without_opentelemetry_nothing_is_imported_and_nothing_observed(tmp_path: Any) -> None:
    """A process where ``opentelemetry`` cannot be imported: no observer, calls go straight through."""
    script = textwrap.dedent(
        """
        import logging, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError("blocked for the test")
                return None

        sys.meta_path.insert(0, Block())
        from datacon import StorageFactoryConfig, NewConversation, create_storage
        from datacon import telemetry
        assert telemetry.OTEL_AVAILABLE is False
        assert not [m for m in sys.modules if m.startswith("opentelemetry")]
        with create_storage() as storage:
            assert storage.conversations._observer is None
            storage.conversations.create_conversation(NewConversation(id="conv_plain"))
            assert storage.health().ok
        records = []
        handler = type("H", (logging.Handler,), {"emit": lambda s, r: records.append(r)})()
        logging.getLogger("datacon.telemetry").addHandler(handler)
        with create_storage(StorageFactoryConfig(slow_operation_secs=1e-9)) as storage:
            assert storage.conversations._observer is not None
            storage.conversations.get_conversation("conv_plain")
        assert [r.operation for r in records] == ["get_conversation"], records
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=repo_root(), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_with_the_api_and_no_sdk_then_metrics_only() -> None:
    """A fresh process: no provider set (the cheap path; slow log still works), then a meter provider only."""
    script = textwrap.dedent(
        """
        import logging
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from datacon import NewConversation, StorageFactoryConfig, create_storage, telemetry

        assert telemetry.OTEL_AVAILABLE
        started = []
        real_start = trace.ProxyTracer.start_span
        trace.ProxyTracer.start_span = lambda self, *a, **k: started.append(a) or real_start(self, *a, **k)
        records = []
        handler = type("H", (logging.Handler,), {"emit": lambda s, r: records.append(r)})()
        logging.getLogger("datacon.telemetry").addHandler(handler)
        with create_storage(StorageFactoryConfig(slow_operation_secs=1e-9)) as storage:
            assert storage.conversations._observer is not None
            storage.conversations.create_conversation(NewConversation(id="conv_api"))
            assert [r.operation for r in records] == ["create_conversation"]
            assert started == [], "a span was asked for with no tracer provider set"

            reader = InMemoryMetricReader()
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            storage.conversations.get_conversation("conv_api")
            assert started == []
        points = [
            (dict(p.attributes), p.count)
            for rm in reader.get_metrics_data().resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "datacon.operation.duration"
            for p in m.data.data_points
        ]
        assert points == [({"operation": "get_conversation", "backend": "memory", "outcome": "ok"}, 1)], points
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=repo_root(), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_unobserved_writes_go_straight_until_a_provider_is_set() -> None:
    """A fresh process, no hook, no slow threshold: create_item, link_item and store_response
    take the guard's straight path while no provider is set (no span asked for), and are
    measured and traced from the next call once a meter, then a tracer provider is set."""
    script = textwrap.dedent(
        """
        from datetime import UTC, datetime
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from datacon import NewConversation, NewConversationItem, StorageFactoryConfig, StoredResponse, create_storage

        started = []
        real_start = trace.ProxyTracer.start_span
        trace.ProxyTracer.start_span = lambda self, *a, **k: started.append(a) or real_start(self, *a, **k)
        with create_storage(StorageFactoryConfig()) as storage:
            items, observer = storage.items, storage.items._observer
            conversation = storage.conversations.create_conversation(NewConversation()).id

            def writes():
                item = items.create_item(NewConversationItem("message", ["x"]))
                items.link_item(conversation, item.id, datetime.now(UTC))
                storage.responses.store_response(StoredResponse())

            assert observer is not None and observer.idle()
            writes()
            assert started == [], "a span was asked for with no tracer provider set"

            reader = InMemoryMetricReader()
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            assert not observer.idle()
            writes()
            points = sorted(
                (p.attributes["operation"], p.count)
                for rm in reader.get_metrics_data().resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
                if m.name == "datacon.operation.duration"
                for p in m.data.data_points
            )
            assert points == [("create_item", 1), ("link_item", 1), ("store_response", 1)], points

            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            writes()
            names = [span.name for span in exporter.get_finished_spans()]
            assert names == ["datacon.create_item", "datacon.link_item", "datacon.store_response"], names
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=repo_root(), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
