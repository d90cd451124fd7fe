"""Workflows: typed chains of steps that pass results on, fan-out groups, and callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar, TypeVarTuple, cast

from ._calls import refuse_to_block
from ._checks import label, timeout_seconds
from ._pool import Pool
from ._retry import DEFAULT_MAX_WAIT, RetryPolicy
from ._running import RunningPool
from ._step_fn import step_task
from ._task import Task

A_contra = TypeVar("A_contra", contravariant=True)
B_co = TypeVar("B_co", covariant=True)
C = TypeVar("C")
X = TypeVar("X")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")


class FlowError(Exception):
    """A step of a flow failed: which one, and (as ``__cause__``) its own final error.

    ``position`` is the step's place in the flow, counting from 1 (``"2.1"``
    is the first member of the group at place 2); ``step`` is its name.

    Example::

        try:
            flow.run(order)
        except FlowError as error:
            log.error("step %s (%s) failed", error.position, error.step, exc_info=error.__cause__)
    """

    def __init__(self, position: str, step: str, error: BaseException) -> None:
        self.position = position
        self.step = step
        super().__init__(f"step {position} ({step}) of the flow failed: {error!r}")


class Flow(Generic[A_contra, B_co]):
    """A typed workflow from ``A`` to ``B``: its steps run as tasks of a pool, in order.

    Each step's result is the next step's input, so ``step(f).then(step(g))``
    with ``f: A -> B`` and ``g: B -> C`` is a ``Flow[A, C]``, and a type
    checker rejects a chain whose types do not meet. ``group(...)`` runs
    flows side by side on the same input and gives the list of their
    results, in order, to the next step (fan-out, fan-in). A step that fails
    stops its flow, which raises a ``FlowError`` naming the step.

    Each step is a task of the pool that runs the flow (a ``Pool``, or a
    running pool that each step is submitted to): the pool's limit, retry,
    timeout, middleware and hooks apply to it, as do the step's own
    ``with_retry``/``with_timeout``.

    Example::

        async def fetch(url: str) -> bytes: ...
        async def parse(page: bytes) -> Article: ...

        article: Article = step(fetch).then(step(parse)).run(url, Pool(limit=4))
    """

    __slots__ = ("_on_error", "_on_success", "_stages")

    def __init__(self, stages: tuple[_Stage, ...]) -> None:
        self._stages = stages
        self._on_success: tuple[Flow[Any, Any], ...] = ()
        self._on_error: tuple[Flow[Any, Any], ...] = ()

    def then(self, next_flow: Flow[B_co, C]) -> Flow[A_contra, C]:
        """This flow, then ``next_flow`` on its result."""
        if not isinstance(next_flow, Flow):
            kind = type(next_flow).__name__
            msg = f"Flow.then(next_flow): next_flow must be a Flow, got {next_flow!r} ({kind})"
            raise TypeError(msg)
        return Flow(self._as_stages() + next_flow._as_stages())

    def on_success(self, callback: Flow[B_co, object]) -> Flow[A_contra, B_co]:
        """A copy of this flow that, once it succeeds, runs ``callback`` on its result, in the pool.

        The flow's result is still its own; a failing callback fails the flow.
        Each call adds a callback, run after those added before.
        """
        flow = self._copy()
        flow._on_success += (_checked_flow("Flow.on_success", "callback", callback),)
        return flow

    def on_error(self, callback: Flow[FlowError, object]) -> Flow[A_contra, B_co]:
        """A copy of this flow that, if a step fails, runs ``callback`` on the ``FlowError``, in the pool.

        The flow still raises that error afterwards: a callback reports a
        failure, it does not swallow it. Each call adds a callback, run after
        those added before, each even if one before it failed.
        """
        flow = self._copy()
        flow._on_error += (_checked_flow("Flow.on_error", "callback", callback),)
        return flow

    def run(self, value: A_contra, pool: Pool | None = None) -> B_co:
        """Run the flow on ``value`` in ``pool`` (a pool with no limit by default); blocks, for scripts."""
        refuse_to_block("Flow.run()", "await flow.arun(value, pool)")
        return asyncio.run(self.arun(value, pool))

    async def arun(self, value: A_contra, pool: Pool | RunningPool | None = None) -> B_co:
        """Run the flow on ``value`` in ``pool``; the async twin of ``run``.

        In a running pool (``async with Pool() as pool``), each step is
        submitted to it like any task: its queue, priorities and limits apply.
        """
        if isinstance(pool, RunningPool):
            return cast("B_co", await _Runner(pool).flow(self, value, ""))
        config = Pool() if pool is None else pool
        if not isinstance(config, Pool):
            kind = type(pool).__name__
            msg = f"Flow.arun(value, pool): pool must be a Pool or a RunningPool, got {pool!r} ({kind})"
            raise TypeError(msg)
        # Each step is a task of a running pool opened for this run.
        async with config as running:
            return cast("B_co", await _Runner(running).flow(self, value, ""))

    def __repr__(self) -> str:
        return f"Flow({' -> '.join(_stage_text(stage) for stage in self._stages)})"

    def _as_stages(self) -> tuple[_Stage, ...]:
        # A flow with callbacks stays one stage, so that its callbacks keep to it.
        if not self._on_success and not self._on_error:
            return self._stages
        return (self,)

    def _copy(self) -> Flow[A_contra, B_co]:
        flow: Flow[A_contra, B_co] = Flow(self._stages)
        flow._on_success, flow._on_error = self._on_success, self._on_error
        return flow


class Step(Flow[A_contra, B_co]):
    """One step: an async function run as a task of the pool; from ``step``, ``call`` or ``prepend``.

    ``with_retry``, ``with_timeout`` and ``with_name`` work as on ``Task``.

    Example::

        fetch_page = step(fetch).with_retry(3, 0.5).with_timeout(10).with_name("fetch")
    """

    __slots__ = ("_task",)

    def __init__(self, task: Task[Any, Any, Any]) -> None:
        super().__init__((self,))
        self._task = task

    def with_retry(
        self, attempts: int, sleep: float | timedelta = 0.1, *, max_wait: float | timedelta = DEFAULT_MAX_WAIT
    ) -> Step[A_contra, B_co]:
        """A copy of this step that tries up to ``attempts`` times (see ``Task.with_retry``)."""
        retry = RetryPolicy.checked("Step.with_retry", attempts, sleep, max_wait)
        return Step(self._task._with_layers(retry=retry))

    def with_timeout(self, seconds: float | timedelta | None) -> Step[A_contra, B_co]:
        """A copy of this step whose every try times out after ``seconds`` (see ``Task.with_timeout``)."""
        return Step(self._task._with_layers(timeout=timeout_seconds("Step.with_timeout", seconds)))

    def with_name(self, name: str) -> Step[A_contra, B_co]:
        """A copy of this step named ``name``, for logs, hooks and ``FlowError``."""
        return Step(self._task._with(name=label("Step.with_name", "name", name)))


class _Group:
    """Flows run side by side on the same input; their results, in order, are the stage's result."""

    __slots__ = ("members",)

    def __init__(self, members: tuple[Flow[Any, Any], ...]) -> None:
        self.members = members


_Stage = Step[Any, Any] | _Group | Flow[Any, Any]


def step(fn: Callable[[X], Awaitable[R]]) -> Step[X, R]:
    """A step that calls ``fn`` with the previous step's result (or the flow's input).

    Example::

        async def double(n: int) -> int:
            return 2 * n

        assert step(double).then(step(double)).run(3) == 12
    """
    return Step(step_task("step", fn, lambda args: fn(args.input), (), takes_input=True))


def call(fn: Callable[[*Ts], Awaitable[R]], *args: *Ts) -> Step[object, R]:
    """An immutable step: ``fn(*args)``, ignoring the previous result, as Machinery's signatures allow.

    Example::

        assert call(add, 1, 1).run(None) == 2
    """
    return Step(step_task("call", fn, lambda _: fn(*args), args, takes_input=False))


def prepend(fn: Callable[[X, *Ts], Awaitable[R]], *args: *Ts) -> Step[X, R]:
    """A step that calls ``fn(previous_result, *args)``: the previous result goes first.

    Example::

        flow = call(add, 1, 1).then(prepend(add, 5, 6)).then(prepend(multiply, 4))
        assert flow.run(None) == 52  # (1 + 1 + 5 + 6) * 4
    """
    extra = args
    return Step(step_task("prepend", fn, lambda given: fn(given.input, *extra), extra, takes_input=True))


def group(*flows: Flow[X, R]) -> Flow[X, list[R]]:
    """Fan-out: ``flows`` run side by side on the same input, under the pool's limit.

    The group's result is the list of their results, in the order given,
    which the next step receives (fan-in). Every member runs to its end; if
    any failed, the group fails with the first failure in that order.

    Example::

        total = group(step(price_a), step(price_b)).then(step(cheapest)).run(item)
    """
    if not flows:
        msg = "group(*flows): give at least one flow"
        raise ValueError(msg)
    members = tuple(_checked_flow("group", f"flows[{index}]", flow) for index, flow in enumerate(flows))
    return Flow((_Group(members),))


class _Runner:
    """One run of a flow: each step is submitted to the running pool, and its handle gives its result."""

    __slots__ = ("_pool",)

    def __init__(self, pool: RunningPool) -> None:
        self._pool = pool

    async def flow(self, flow: Flow[Any, Any], value: Any, where: str) -> Any:
        try:
            for place, stage in enumerate(flow._stages, 1):
                value = await self.stage(stage, value, f"{where}{place}")
        except FlowError as error:
            for number, callback in enumerate(flow._on_error, 1):
                try:
                    await self.flow(callback, error, f"{where}on_error{_nth(number)}.")
                except FlowError as failed:
                    error.add_note(f"its on_error callback failed too: {failed}")
            raise
        for number, callback in enumerate(flow._on_success, 1):
            await self.flow(callback, value, f"{where}on_success{_nth(number)}.")
        return value

    async def stage(self, stage: _Stage, value: Any, where: str) -> Any:
        if isinstance(stage, Step):
            return await self.step(stage, value, where)
        if isinstance(stage, _Group):
            return await self.group(stage, value, where)
        return await self.flow(stage, value, f"{where}.")

    async def step(self, step: Step[Any, Any], value: Any, where: str) -> Any:
        handle = await self._pool.submit(step._task.with_input(value))
        try:
            return await handle
        except Exception as failure:
            raise FlowError(where, step._task._spec.title, failure) from failure
        except BaseException:
            # The flow's caller was cancelled (or interrupted): awaiting a handle never
            # cancels its task, so stop the step here, and return once it has ended.
            handle.cancel()
            await handle._ended()
            raise

    async def group(self, group: _Group, value: Any, where: str) -> list[Any]:
        failures: dict[int, FlowError] = {}

        async def member(place: int, flow: Flow[Any, Any]) -> Any:
            # A failure is kept, not raised: the TaskGroup would cancel the other members.
            try:
                return await self.flow(flow, value, f"{where}.{place}.")
            except FlowError as error:
                failures[place] = error
                return None

        async with asyncio.TaskGroup() as members:
            running = [
                members.create_task(member(place, flow)) for place, flow in enumerate(group.members, 1)
            ]
        if failures:
            first = failures[min(failures)]
            if len(failures) > 1:
                others = len(failures) - 1
                first.add_note(f"{others} other member{'s' if others > 1 else ''} of the group failed too")
            raise first
        return [each.result() for each in running]


def _nth(number: int) -> str:
    # The first callback's place reads as it did when a flow had one callback.
    return "" if number == 1 else str(number)


def _stage_text(stage: _Stage) -> str:
    if isinstance(stage, Step):
        return stage._task._spec.title
    if isinstance(stage, _Group):
        return "group(" + ", ".join(repr(member) for member in stage.members) + ")"
    return repr(stage)


def _checked_flow(where: str, name: str, flow: Flow[Any, Any]) -> Flow[Any, Any]:
    # Annotations do not bind untyped callers: check what we were given.
    if not isinstance(flow, Flow):
        msg = f"{where}: {name} must be a Flow (from step, call, prepend or group), got {flow!r}"
        raise TypeError(msg)
    return flow
