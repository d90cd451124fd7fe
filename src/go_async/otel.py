"""OpenTelemetry for go_async: a span per task, and metrics that match ``RunningPool.stats()``.

Needs the ``otel`` extra (``pip install 'go-async[otel]'``, which installs
``opentelemetry-api``); the core never imports this module.

Example::

    from go_async.otel import OpenTelemetry

    pool = OpenTelemetry().instrument(Pool(limit=8))
    pool.go(tasks)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace import Status, StatusCode
except ImportError as _missing:  # pragma: no cover - tested in a subprocess
    msg = "go_async.otel needs OpenTelemetry's API: pip install 'go-async[otel]'"
    raise ImportError(msg) from _missing

from ._pool import Hooks, Pool
from ._task import CallNext

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker, CircuitState
    from ._task import Args

__all__ = ["OpenTelemetry"]

P = TypeVar("P", bound="Pool")
R = TypeVar("R")

_SCOPE = "go_async"


class OpenTelemetry(Hooks):
    """Spans and metrics for every task of the pools it instruments.

    Each task runs inside a span named ``go_async <name>`` (its name, else
    its function's), current while it runs so that spans it starts are its
    children; retries are events on it, and a failure is recorded with
    error status. The metrics follow ``stats()``: the counters
    ``go_async.tasks.completed``, ``.failed``, ``.retried`` (tasks retried at
    least once), ``.cancelled`` and ``.tagged`` (per ``go_async.tag``), the
    counter ``go_async.retries.refused`` of retries a ``RetryBudget`` refused, the
    up-down counters ``go_async.tasks.running`` and ``.queued``, and the
    histogram ``go_async.task.duration`` in seconds; and the counter
    ``go_async.circuit.changes`` of circuit breakers' state changes, per
    ``go_async.circuit`` and ``go_async.circuit.state``; with an ``Adaptive``
    limit, the up-down counter ``go_async.concurrency.limit``, moved by each
    change (so it reads the limit above its start). Without providers,
    the global ones are used.

    Example::

        telemetry = OpenTelemetry(tracer_provider=provider, meter_provider=meters)
        async with telemetry.instrument(Pool(limit=8)) as pool:
            await pool.submit(task)
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._completed = meter.create_counter("go_async.tasks.completed", "{task}", "Tasks that succeeded")
        self._failed = meter.create_counter("go_async.tasks.failed", "{task}", "Tasks that failed")
        self._retried = meter.create_counter(
            "go_async.tasks.retried", "{task}", "Tasks retried at least once"
        )
        self._refused = meter.create_counter(
            "go_async.retries.refused", "{retry}", "Retries refused by the pool's retry budget"
        )
        self._cancelled = meter.create_counter("go_async.tasks.cancelled", "{task}", "Tasks cancelled")
        self._tagged = meter.create_counter("go_async.tasks.tagged", "{task}", "Tasks run, per tag")
        self._running = meter.create_up_down_counter("go_async.tasks.running", "{task}", "Tasks running")
        self._queued = meter.create_up_down_counter("go_async.tasks.queued", "{task}", "Tasks queued")
        self._duration = meter.create_histogram(
            "go_async.task.duration", "s", "Task durations, retries included"
        )
        self._circuit_changes = meter.create_counter(
            "go_async.circuit.changes", "{change}", "Circuit breakers' changes of state"
        )
        self._limit = meter.create_up_down_counter(
            "go_async.concurrency.limit", "{try}", "An adaptive limit's changes, by how much"
        )
        # The ids of the tasks now queued or running, to know what a cancellation ends.
        self._waiting: set[str] = set()
        self._active: set[str] = set()

    def instrument(self, pool: P) -> P:
        """A copy of ``pool`` with these spans outermost of its middleware, and these metrics."""
        middleware = pool._settings.layers.middleware
        return pool._with_layers(middleware=(self, *middleware)).with_hooks(self)

    async def __call__(self, args: Args[Any], call_next: CallNext[R]) -> R:
        attributes = {"go_async.task.id": args.id, "go_async.task.tags": args.tags}
        if args.name is not None:
            attributes["go_async.task.name"] = args.name
        with self._tracer.start_as_current_span(
            args.task._spec.label,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await call_next()
            except Exception as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                raise
            except asyncio.CancelledError:
                span.set_attribute("go_async.task.cancelled", value=True)
                raise

    # --- the metrics, from the hooks --------------------------------------------

    def task_queued(self, args: Args[Any]) -> None:
        """Count a task queued, and its tags."""
        self._waiting.add(args.id)
        self._queued.add(1)
        self._count_tags(args)

    def task_started(self, args: Args[Any]) -> None:
        """Count a task running, no longer queued."""
        if args.id in self._waiting:
            self._waiting.discard(args.id)
            self._queued.add(-1)
        else:
            self._count_tags(args)
        self._active.add(args.id)
        self._running.add(1)

    def task_retried(self, args: Args[Any], error: Exception, attempt: int, wait: float) -> None:
        """Count a task retried at its first retry, and add a ``retry`` event to its span."""
        if attempt == 1:
            self._retried.add(1, _attributes(args))
        trace.get_current_span().add_event(
            "retry",
            {"go_async.attempt": attempt, "go_async.wait": wait, "exception.type": type(error).__name__},
        )

    def retry_refused(self, args: Args[Any], error: Exception, attempt: int) -> None:
        """Count a retry refused by the retry budget, and add a ``retry_refused`` event to the task's span."""
        self._refused.add(1, _attributes(args))
        trace.get_current_span().add_event(
            "retry_refused", {"go_async.attempt": attempt, "exception.type": type(error).__name__}
        )

    def task_succeeded(self, args: Args[Any], seconds: float) -> None:
        """Count a success and record its duration."""
        self._end(args)
        self._completed.add(1, _attributes(args))
        self._duration.record(seconds, _attributes(args))

    def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
        """Count a failure and record its duration."""
        self._end(args)
        self._failed.add(1, _attributes(args))
        self._duration.record(seconds, _attributes(args))

    def task_cancelled(self, args: Args[Any]) -> None:
        """Count a cancellation, of a queued or a running task."""
        if args.id in self._waiting:
            self._waiting.discard(args.id)
            self._queued.add(-1)
        else:
            self._end(args)
        self._cancelled.add(1, _attributes(args))

    def circuit_changed(self, breaker: CircuitBreaker, state: CircuitState) -> None:
        """Count a circuit breaker's change of state, per breaker and state."""
        self._circuit_changes.add(
            1, {"go_async.circuit": breaker.name, "go_async.circuit.state": state.value}
        )

    def limit_changed(self, old: int, new: int, reason: str) -> None:
        """Move the adaptive limit's up-down counter by the change, with its reason."""
        self._limit.add(new - old, {"go_async.concurrency.reason": reason})

    def _end(self, args: Args[Any]) -> None:
        if args.id in self._active:
            self._active.discard(args.id)
            self._running.add(-1)

    def _count_tags(self, args: Args[Any]) -> None:
        for tag in args.tags:
            self._tagged.add(1, {"go_async.tag": tag})


def _attributes(args: Args[Any]) -> dict[str, str]:
    # Only the name: ids would make every task a series of its own.
    return {"go_async.task.name": args.task._spec.title}
