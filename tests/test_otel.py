"""OpenTelemetry: spans and metrics reach the SDK's in-memory exporters, and the metrics match stats()."""

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from go_async import Args, CatchErrors, CircuitBreaker, ManualClock, Pool, PoolStats, Task, WaitLog
from go_async.otel import OpenTelemetry


class Telemetry:
    """An SDK wired to in-memory exporters, and the go_async integration on it."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.otel = OpenTelemetry(
            tracer_provider=self.tracer_provider, meter_provider=MeterProvider(metric_readers=[self.reader])
        )

    def finished(self) -> list[ReadableSpan]:
        return sorted(self.spans.get_finished_spans(), key=lambda span: span.start_time or 0)

    def metrics(self) -> dict[str, dict[tuple[tuple[str, Any], ...], float]]:
        """Each metric's value (a histogram's count) per set of attributes."""
        data = self.reader.get_metrics_data()
        assert data is not None
        found: dict[str, dict[tuple[tuple[str, Any], ...], float]] = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        value = float(getattr(point, "count", 0) or getattr(point, "value", 0))
                        found.setdefault(metric.name, {})[key] = value
        return found


def total(values: dict[Any, float] | None) -> float:
    return sum((values or {}).values())


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


async def work(args: Args[int]) -> None:
    if args.input < 0:
        raise ValueError(args.input)


def test_each_task_has_a_span_with_its_id_name_and_tags(telemetry: Telemetry) -> None:
    pool = telemetry.otel.instrument(Pool(limit=2))
    task = Task(work).with_name("work").with_tags("batch")
    with pytest.raises(ExceptionGroup):
        pool.go([task.with_input(1), task.with_input(-2), Task(work).with_input(3)])
    spans = telemetry.finished()
    assert [span.name for span in spans] == [
        "go_async work",
        "go_async work",
        f"go_async {work.__qualname__}",
    ]
    ok, failed, unnamed = spans
    assert ok.attributes is not None
    assert failed.attributes is not None
    assert unnamed.attributes is not None
    assert ok.attributes["go_async.task.name"] == "work"
    assert ok.attributes["go_async.task.tags"] == ("batch",)
    assert str(ok.attributes["go_async.task.id"]).endswith(".0")
    assert "go_async.task.name" not in unnamed.attributes
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]


def test_retries_are_span_events_and_spans_nest(telemetry: Telemetry, waits: WaitLog) -> None:
    """A span opened around the run is the parent; a span opened in the task is the child."""
    tracer = telemetry.tracer_provider.get_tracer("test")
    tries: list[int] = []

    async def flaky(args: Args[int]) -> None:
        tries.append(args.input)
        with tracer.start_as_current_span("inner"):
            if len(tries) < 3:
                raise OSError("again")

    async def main() -> None:
        with tracer.start_as_current_span("outer"):
            await telemetry.otel.instrument(Pool()).ago([Task(flaky).with_retry(3, 0.1).with_input(1)])

    asyncio.run(main())
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in telemetry.finished():
        by_name.setdefault(span.name, []).append(span)
    [outer], [task_span], inners = (
        by_name["outer"],
        by_name[f"go_async {flaky.__qualname__}"],
        by_name["inner"],
    )
    assert task_span.parent is not None
    assert task_span.parent.span_id == outer.context.span_id
    assert len(inners) == 3
    assert all(
        inner.parent is not None and inner.parent.span_id == task_span.context.span_id for inner in inners
    )
    retries = [event for event in task_span.events if event.name == "retry"]
    assert [event.attributes["go_async.attempt"] for event in retries if event.attributes] == [1, 2]
    assert [event.attributes["go_async.wait"] for event in retries if event.attributes] == waits.waits


def test_metrics_match_the_running_pools_stats(telemetry: Telemetry, waits: WaitLog) -> None:
    """Completed, failed, retried, cancelled, per tag and durations; running and queued back at 0."""
    gate, two_running = asyncio.Event(), asyncio.Event()
    tries: dict[int, int] = {}

    async def job(args: Args[int]) -> None:
        tries[args.input] = tries.get(args.input, 0) + 1
        if args.input == 1 and tries[1] == 1:
            raise OSError("once")
        if args.input == 2:
            raise ValueError("always")
        if args.input >= 10:
            if args.input == 11:
                two_running.set()
            await gate.wait()

    async def main() -> PoolStats:
        async with telemetry.otel.instrument(Pool(limit=2)) as pool:
            task = Task(job).with_retry(2, 0.1).with_tags("nightly")
            handles = [await pool.submit(task.with_input(n)) for n in (0, 1, 2)]
            await asyncio.gather(*handles, return_exceptions=True)
            blocked = [await pool.submit(task.with_input(n)) for n in (10, 11, 12)]
            await two_running.wait()
            mid = telemetry.metrics()
            assert total(mid["go_async.tasks.running"]) == 2
            assert total(mid["go_async.tasks.queued"]) == 1
            for handle in blocked:
                handle.cancel()
            await pool.shutdown()
            return pool.stats()

    stats = asyncio.run(main())
    metrics = telemetry.metrics()
    assert total(metrics.get("go_async.tasks.completed")) == stats.completed == 2
    assert total(metrics.get("go_async.tasks.failed")) == stats.failed == 1
    assert total(metrics.get("go_async.tasks.retried")) == stats.retried == 2
    assert total(metrics.get("go_async.tasks.cancelled")) == stats.cancelled == 3
    assert metrics["go_async.tasks.tagged"] == {(("go_async.tag", "nightly"),): stats.per_tag["nightly"]}
    assert total(metrics["go_async.task.duration"]) == 3
    assert total(metrics["go_async.tasks.running"]) == 0
    assert total(metrics["go_async.tasks.queued"]) == 0


def test_circuit_state_changes_are_counted_per_circuit_and_state(telemetry: Telemetry) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("db", failures=1, cooldown=1, clock=clock)
    pool = telemetry.otel.instrument(Pool(limit=1))
    with pytest.raises(ExceptionGroup):
        pool.go([Task(work).with_circuit_breaker(breaker).with_input(-1)])
    asyncio.run(clock.advance(1))
    pool.go([Task(work).with_circuit_breaker(breaker).with_input(1)])
    assert telemetry.metrics()["go_async.circuit.changes"] == {
        (("go_async.circuit", "db"), ("go_async.circuit.state", state)): 1
        for state in ("open", "half-open", "closed")
    }


def test_instrument_puts_the_span_outermost_and_keeps_the_pools_settings(telemetry: Telemetry) -> None:
    """A caught error still ends its span well; the pool's limit, middleware and hooks stay."""
    catch = CatchErrors(ValueError, log=False)
    pool = telemetry.otel.instrument(Pool(limit=3, middleware=[catch]))
    assert pool.limit == 3
    pool.go([Task(work).with_input(-1)])
    [span] = telemetry.finished()
    assert span.status.status_code is StatusCode.UNSET
    assert catch.caught == 1


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_the_core_never_imports_opentelemetry_and_a_missing_extra_is_named() -> None:
    core = _run_python("import sys, go_async; assert 'opentelemetry' not in sys.modules, 'imported'")
    assert core.returncode == 0, core.stderr
    missing = _run_python("import sys; sys.modules['opentelemetry'] = None; import go_async.otel")
    assert missing.returncode == 1
    assert (
        "ImportError: go_async.otel needs OpenTelemetry's API: pip install 'go-async[otel]'" in missing.stderr
    )
