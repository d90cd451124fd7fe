"""The task runner: one task through its layers, for every way of running tasks.

The layers, outermost first: hooks (``run``) → middleware → circuit breaker
→ retry (entered only after a first failure) → per try: rate limit →
room under an ``Adaptive`` limit → timeout → the function (a plain
``def`` in a thread). ``plan`` composes a
task's layers with its pool's once, into one callable whose awaitable is
the outermost layer's own coroutine: a layer that is absent costs nothing,
and one that is present adds its own work, not a wrapper around it.

The entry points (``go``/``map``, the running pool, flows through it, the
remote worker, ``Task.execute``) own what happens to an outcome; the bare
task, with no layer at all, never comes here: workers await it directly.
``go``'s workers also run the first try of a task whose only layers are a
breaker, rate limits and a time limit themselves (``inline``), and come
back here for its retries (``after_failure``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from time import monotonic, perf_counter
from typing import Any

from ._adaptive import gated
from ._breaker import CircuitBreaker
from ._deadlines import Deadlines
from ._explore import exploring, paused
from ._hookset import HookSet, emit
from ._rate import RateLimit
from ._retry import RetryPolicy, retry_after
from ._spec import NO_LAYERS, Layers, MiddlewareFn, Spec
from ._threads import Threads

Call = Callable[[Any], Awaitable[Any]]
# How many specs' plans a runner keeps.
_PLANS_KEPT = 64


class Runner:
    """Runs tasks through their layers and the pool's: one per run or running pool.

    ``retried`` counts the tasks that were tried again (``on_retry(args)``
    hears of each, for an entry point that counts them its own way).

    Example (what an entry point does with a task's ``Args``)::

        runner = Runner(pool_layers, hooks, Threads(limit))
        value = await runner.run(spec, args)  # or raises the task's final error
    """

    __slots__ = (
        "_explored",
        "_layers",
        "_notify_circuit",
        "_notify_limit",
        "_on_refused",
        "_on_retry",
        "_plans",
        "_threads",
        "budgeted",
        "deadlines",
        "hooks",
        "retried",
    )

    def __init__(
        self,
        layers: Layers = NO_LAYERS,
        hooks: HookSet | None = None,
        threads: Threads | None = None,
        *,
        on_retry: Callable[[Any], object] | None = None,
        on_refused: Callable[[Any], object] | None = None,
    ):
        self._layers = layers
        self.hooks = hooks
        self._explored = exploring()  # seeded interleavings (see `_explore`): decided once per run
        self._threads = Threads(None) if threads is None else threads
        self.deadlines = Deadlines()
        self._notify_circuit = None
        if hooks is not None and hooks.circuit_changed:
            self._notify_circuit = partial(emit, hooks.circuit_changed)
        self._notify_limit = None
        if hooks is not None and hooks.limit_changed:
            self._notify_limit = partial(emit, hooks.limit_changed)
        self.retried = 0
        # A retry budget counts the first tries of tasks that retry: one with its own retry is not bare.
        self.budgeted = layers.budget is not None
        self._on_retry, self._on_refused = on_retry, on_refused
        # Plans by spec: every input of one task shares its spec. Bounded, as
        # a run may go through any number of specs.
        self._plans: dict[int, tuple[Spec, Call, Call]] = {}

    @property
    def bare(self) -> bool:
        """Whether a plain task (see ``Spec.plain``) needs nothing of this runner until it fails."""
        layers = self._layers
        alone = (
            self.hooks is None and not layers.middleware and layers.rate is None and layers.adaptive is None
        )
        alone = alone and self._explored is None  # exploring: every task through `plan`, which pauses it
        if (retry := layers.retry) is None:
            return alone and layers.timeout is None
        # A retry budget counts the first tries of the tasks that retry (`plan` does, or a worker
        # told by `inline`), and a retry with a time budget times the first try too (only `plan`).
        counted = layers.budget is not None and retry.attempts > 1
        return alone and layers.timeout is None and retry.within is None and not counted

    async def run(self, spec: Spec, args: Any) -> Any:
        """Run the task of ``args`` through every layer, hooks included: its value, or its final error.

        The workers of ``go`` inline it, a coroutine less per task.
        """
        call = self.plan(spec)
        hooks = self.hooks
        if hooks is None:
            return await call(args)
        started = self.started(args)
        try:
            value = await call(args)
        except Exception as error:
            self.failed(args, error, started)
            raise
        except BaseException:  # cancelled, or KeyboardInterrupt/SystemExit
            self.cancelled(args)
            raise
        self.succeeded(args, started)
        return value

    def close(self) -> None:
        """Release the threads of plain ``def`` tasks (every call has returned by now)."""
        self._threads.close()

    # --- the hooks around a task, for workers that inline ``run`` -----------------

    def started(self, args: Any) -> float:
        """Tell the hooks a task starts; the time it did, if they time tasks."""
        hooks = self.hooks
        assert hooks is not None
        if hooks.task_started:
            emit(hooks.task_started, args)
        return perf_counter() if hooks.times_tasks else 0.0

    def succeeded(self, args: Any, started: float) -> None:
        hooks = self.hooks
        assert hooks is not None
        if hooks.task_succeeded:
            emit(hooks.task_succeeded, args, perf_counter() - started)

    def failed(self, args: Any, error: Exception, started: float) -> None:
        hooks = self.hooks
        assert hooks is not None
        if hooks.task_failed:
            emit(hooks.task_failed, args, error, perf_counter() - started)

    def cancelled(self, args: Any) -> None:
        hooks = self.hooks
        if hooks is not None and hooks.task_cancelled:
            emit(hooks.task_cancelled, args)

    # --- composing the layers -------------------------------------------------------

    def plan(self, spec: Spec) -> Call:
        """The task's layers and the pool's as one call: ``await plan(args)`` runs the task once."""
        return self._composed(spec)[0]

    def time_limit(self, spec: Spec) -> float | None:
        """The time limit of each try of ``spec``: its own, else the pool's."""
        return self._layers.timeout if spec.layers.timeout is None else spec.layers.timeout

    def inline(self, spec: Spec) -> Inline | None:
        """The layers of an async task that a worker may run around its first try itself.

        Only a circuit breaker, rate limits and a time limit (with a retry
        without a time budget, which ``after_failure`` runs): no middleware and no hooks, whose
        order only ``plan`` keeps. ``None`` for any other task.
        """
        pool, own = self._layers, spec.layers
        if not spec.is_async or pool.middleware or own.middleware or self.hooks is not None:
            return None
        if self._explored is not None:
            return None  # each try pauses as the seed says: only `plan` does
        if pool.adaptive is not None:
            return None  # each try waits for room under the adaptive limit: only `plan` does
        retry = own.retry or pool.retry
        if retry is not None and retry.within is not None:
            return None  # a time budget times the first try too: only `plan` does
        budget = pool.budget if retry is not None and retry.attempts > 1 else None
        rates = tuple(rate for rate in (pool.rate, own.rate) if rate is not None)
        return Inline(own.breaker, rates, self.time_limit(spec), None if budget is None else budget.first_try)

    def _composed(self, spec: Spec) -> tuple[Call, Call]:
        # The whole plan, and one try (what a retry calls again).
        known = self._plans.get(id(spec))
        if known is not None and known[0] is spec:
            return known[1], known[2]
        attempt = self._attempt(spec)
        call = self._compose(spec, attempt)
        if len(self._plans) >= _PLANS_KEPT:
            self._plans.clear()
        self._plans[id(spec)] = (spec, call, attempt)
        return call, attempt

    def timed_out(self, seconds: float, args: Any) -> TimeoutError:
        """The error of a try that ran out of its ``seconds``."""
        error = TimeoutError()
        error.add_note(f"timed out after {seconds}s")  # which task: its final error's note says
        return error

    def _attempt(self, spec: Spec) -> Call:
        # One try: its turns under rate limits, its time limit, the function
        # (in a thread for a plain def). Innermost first: each layer wraps
        # what is inside it.
        pool, own = self._layers, spec.layers
        call: Call = spec.fn if spec.is_async else partial(self._threads.call, spec.fn)
        timeout = self.time_limit(spec)
        if timeout is not None:
            call = self.deadlines.limit(call, timeout, partial(self.timed_out, timeout))
        if pool.adaptive is not None:  # room under the limit, then the try (its time limit included)
            call = partial(gated, pool.adaptive, call, notify=self._notify_limit)
        # A turn under a rate limit comes before the try: waiting for it is
        # not part of the try, nor of its time limit.
        for rate in (own.rate, pool.rate):
            if rate is not None:
                call = _paced(call, rate)
        if self._explored is not None:  # the seeded yields before each try, its turns included
            call = paused(call, self._explored)
        return call

    def _compose(self, spec: Spec, attempt: Call) -> Call:
        pool, own = self._layers, spec.layers
        call = attempt
        retry = own.retry or pool.retry
        if retry is not None and retry.attempts > 1:
            call = self._retrying(call, retry)
            if pool.budget is not None:
                call = pool.budget.counting(call)
        if own.breaker is not None:
            call = self._guarded(call, own.breaker)
        middleware = pool.middleware + own.middleware
        if middleware:
            call = _chain(middleware, call)
        return call

    async def after_failure(self, spec: Spec, args: Any, failure: Exception) -> Any:
        """A first try run inline failed: try again as the retry policy allows, or raise the final error."""
        retry = spec.layers.retry or self._layers.retry
        if retry is None or retry.attempts == 1:
            raise failure
        return await self._retry(self._composed(spec)[1], retry, args, failure)

    def _retrying(self, attempt: Call, policy: RetryPolicy) -> Call:
        timed = policy.within is not None  # its time budget counts from the first try

        async def retrying(args: Any) -> Any:
            started = monotonic() if timed else None
            try:
                return await attempt(args)
            except Exception as error:
                failure = error
            # Out of the except block, so that later errors do not chain to this one.
            return await self._retry(attempt, policy, args, failure, started)

        return retrying

    async def _retry(
        self, attempt: Call, policy: RetryPolicy, args: Any, failure: Exception, started: float | None = None
    ) -> Any:
        self.retried += 1
        if self._on_retry is not None:
            self._on_retry(args)
        hooks = self.hooks
        heard = None if hooks is None or not hooks.task_retried else partial(emit, hooks.task_retried, args)
        gate = None if (budget := self._layers.budget) is None else budget.gate(args, hooks, self._on_refused)
        return await retry_after(failure, partial(attempt, args), policy, heard, started, gate)

    def _guarded(self, inner: Call, breaker: CircuitBreaker) -> Call:
        notify = self._notify_circuit
        admit, succeeded, failed, abandoned = (
            breaker.admit,
            breaker.succeeded,
            breaker.failed,
            breaker.abandoned,
        )

        async def guarded(args: Any) -> Any:
            probe = admit(notify)
            try:
                value = await inner(args)
            except Exception as error:
                failed(probe, error, notify)
                raise
            except BaseException:
                abandoned(probe)
                raise
            succeeded(probe, notify)
            return value

        return guarded


@dataclass(frozen=True, slots=True)
class Inline:
    """What a worker runs around a task's first try, in the order of ``plan``: the breaker's
    admission, the count of a first try by a retry budget, each rate limit's turn (the pool's
    first), then the try within ``seconds``."""

    breaker: CircuitBreaker | None
    rates: tuple[RateLimit, ...]
    seconds: float | None
    first_try: Callable[[], None] | None = None


def _paced(inner: Call, rate: RateLimit) -> Call:
    reserve, clock = rate.reserve, rate.clock

    async def after_turn(turn: float, args: Any) -> Any:
        await clock.sleep_until(turn)
        return await inner(args)

    def paced(args: Any) -> Awaitable[Any]:
        # A plain function: with a turn free now, the try itself is the
        # awaitable, and no coroutine wraps it.
        turn = reserve()
        return inner(args) if turn is None else after_turn(turn, args)

    return paced


def _chain(middleware: tuple[MiddlewareFn, ...], last: Call) -> Call:
    # Each middleware's call_next calls the next one, the last one's the
    # task's remaining layers; a call gives the outermost one's own coroutine.
    if len(middleware) == 1:
        only = middleware[0]

        def chained_one(args: Any) -> Awaitable[Any]:
            return only(args, partial(last, args))

        return chained_one

    def chained(args: Any) -> Awaitable[Any]:
        call_next: Callable[[], Awaitable[Any]] = partial(last, args)
        for each in reversed(middleware[1:]):
            call_next = partial(each, args, call_next)
        return middleware[0](args, call_next)

    return chained
