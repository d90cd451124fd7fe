"""Task[T], the spec of one unit of work; Args[T], what its function receives; and the protocols
its code meets: ``Middleware`` (code around a task), ``TaskPool`` (the pool it submits work to)."""

from __future__ import annotations

import enum
import itertools
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import replace
from datetime import timedelta
from typing import Any, Generic, Protocol, Self, TypeVar, cast, overload

from ._breaker import CircuitBreaker
from ._checks import callables, integer, label, timeout_seconds
from ._drain import Drain
from ._handle import Handle
from ._rate import RateLimit, rate_limit
from ._retry import DEFAULT_MAX_WAIT, RetryPolicy
from ._runner import Runner
from ._spec import Spec, is_async_callable
from ._stats import PoolStats
from ._topic import Topic, WhenFull

T = TypeVar("T")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class _Missing(enum.Enum):
    MISSING = enum.auto()  # no input given: None is a valid input


_MISSING = _Missing.MISSING
_new = object.__new__
# Every run (and every Args made by hand) takes a number, so that ids are
# unique in the process.
run_numbers = itertools.count(1)


class Origin:
    """Where an Args comes from: its run's number and the running pool, if any, that runs it."""

    __slots__ = ("number", "pool")

    def __init__(self, number: int, pool: TaskPool | None) -> None:
        self.number = number
        self.pool = pool


def make_args(task: Task[T], origin: Origin, index: int) -> Args[T]:
    """The Args of a task at ``index`` in a run, made without ``Args.__init__``'s new run number."""
    args: Args[T] = _new(Args)  # pyright: ignore[reportUnknownVariableType]
    args._task, args._origin, args._index = task, origin, index
    return args


class Args(Generic[T]):
    """What a task's function receives: its ``input`` and ``drain``, and who it is.

    Reading an input or drain that the task was not given raises
    ``LookupError`` naming the task and the call that would give it. ``id``,
    ``name`` and ``tags`` say which run of which task this is, for logs.
    ``Args(task)`` makes one for calling a task's function directly in a test.

    Example::

        async def double(args: Args[int]) -> None:
            log.info("%s %s", args.id, args.name)
            args.drain.send(args.input * 2)
    """

    __slots__ = ("_index", "_origin", "_task")

    def __init__(self, task: Task[T]) -> None:
        self._task = task
        self._origin = Origin(next(run_numbers), None)
        self._index = 0

    @property
    def pool(self) -> TaskPool:
        """The running pool that runs this task, to submit more work to it.

        Only a pool opened with ``async with`` takes work while it runs; a
        task run by ``go``/``ago`` or ``execute()`` raises ``LookupError``.
        """
        pool = self._origin.pool
        if pool is None:
            msg = f"{self._task!r} is not run by a running pool: only `async with Pool() as pool` takes work"
            raise LookupError(msg)
        return pool

    @property
    def id(self) -> str:
        """This run of the task, unique in the process: the run's number, a dot, the task's position."""
        return f"{self._origin.number}.{self._index}"

    @property
    def name(self) -> str | None:
        """The name given by ``Task.with_name``, if any."""
        return self._task._spec.name

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags given by ``Task.with_tags``."""
        return self._task._spec.tags

    @property
    def task(self) -> Task[T]:
        """The task being run."""
        return self._task

    @property
    def input(self) -> T:
        """The value given by ``Task.with_input``."""
        value = self._task._input
        if value is _MISSING:
            msg = f"{self._task!r} has no input: give it one with .with_input(value)"
            raise LookupError(msg)
        return value

    @property
    def drain(self) -> Drain[T]:
        """The drain given by ``Task.drain_to``."""
        drain = self._task._spec.drain
        if drain is None:
            msg = f"{self._task!r} has no drain: give it one with .drain_to(drain)"
            raise LookupError(msg)
        return drain

    def __repr__(self) -> str:
        return f"Args({self._task!r})"


class CallNext(Protocol[R_co]):
    """What a middleware calls to run the rest: the next middleware, or the task itself.

    The task runs with its retries and timeout; ``await call_next()`` returns
    its result: ``None`` for a task, the function's value in ``map``.

    Example::

        async def log_start(args: Args[Any], call_next: CallNext[R]) -> R:
            log.info("starting %s", args.id)
            return await call_next()
    """

    def __call__(self) -> Awaitable[R_co]: ...


class Middleware(Protocol):
    """An async callable wrapping each run of a task: ``await call_next()`` runs the rest.

    A middleware receives the task's ``Args`` (id, name, tags, input) and
    must return what ``call_next()`` returned, or a result of its own; the
    type checker holds it to that, so that no result is dropped on the way.
    It wraps the whole run, retries and timeouts included. In
    ``Pool(middleware=[a, b])`` ``a`` is outermost: it sees the task first
    and its outcome last; a task's own ``with_middleware`` runs inside the
    pool's.

    Example::

        async def timed(args: Args[Any], call_next: CallNext[R]) -> R:
            started = time.perf_counter()
            try:
                return await call_next()
            finally:
                print(args.id, time.perf_counter() - started)

        Pool(limit=8, middleware=[timed]).go(tasks)
    """

    def __call__(self, args: Args[Any], call_next: CallNext[R], /) -> Awaitable[R]: ...


class TaskPool(Protocol):
    """What a task sees of the running pool that runs it: ``args.pool`` (a ``RunningPool``).

    Example::

        async def crawl(args: Args[str]) -> None:
            for link in await links(args.input):
                await args.pool.submit(args.task.with_input(link))
    """

    @property
    def is_running(self) -> bool: ...
    @property
    def limit(self) -> int | None: ...
    async def submit(self, task: Task[T]) -> Handle[T]: ...
    def submit_nowait(self, task: Task[T]) -> Handle[T]: ...
    def sub(self, limit: int | None = None) -> TaskPool: ...
    @overload
    def topic(
        self, name: str, kind: type[T], *, buffer: int = ..., when_full: WhenFull = ...
    ) -> Topic[T]: ...
    @overload
    def topic(self, name: str, *, buffer: int = ..., when_full: WhenFull = ...) -> Topic[Any]: ...
    def cancel(self) -> list[Handle[Any]]: ...
    async def shutdown(self, timeout: float | timedelta | None = None) -> list[Handle[Any]]: ...  # noqa: ASYNC109
    def stats(self) -> PoolStats: ...


class Task(Generic[T]):
    """An immutable spec: a function, its input, where its results go, how it retries.

    ``fn`` takes an ``Args[T]`` and returns nothing. An ``async def`` runs on
    the event loop; a plain ``def`` runs in a worker thread so that it cannot
    block the loop. Every ``with_*``/``drain_to`` call returns a new task, so
    one base task serves many inputs.

    Example::

        async def greet(args: Args[str]) -> None:
            args.drain.send(f"hello {args.input}")

        out: Drain[str] = Drain()
        base = Task(greet).drain_to(out).with_retry(3, 0.1)
        Pool(limit=4).go(base.with_input(name) for name in ["ada", "bob"])
    """

    __slots__ = ("_input", "_spec")

    _spec: Spec
    _input: T | _Missing

    @overload
    def __init__(self, fn: Callable[[Args[T]], Awaitable[None]]) -> None: ...
    @overload
    def __init__(self, fn: Callable[[Args[T]], None]) -> None: ...
    def __init__(self, fn: Callable[[Args[T]], Awaitable[None] | None]) -> None:
        if not callable(fn):
            msg = f"Task(fn): fn must be a function taking Args, got {fn!r} ({type(fn).__name__})"
            raise TypeError(msg)
        self._spec = Spec(fn, is_async_callable(fn))
        self._input = _MISSING

    def with_input(self, value: T) -> Self:
        """A copy of this task whose ``args.input`` is ``value``."""
        task = _new(self.__class__)
        task._spec = self._spec
        task._input = value
        return task

    def drain_to(self, drain: Drain[T]) -> Self:
        """A copy of this task whose ``args.drain`` is ``drain``."""
        if not isinstance(drain, Drain):
            msg = f"Task.drain_to(drain): drain must be a Drain, got {drain!r} ({type(drain).__name__})"
            raise TypeError(msg)
        return self._with(drain=drain)

    def with_retry(
        self,
        attempts: int,
        sleep: float | timedelta = 0.1,
        *,
        max_wait: float | timedelta = DEFAULT_MAX_WAIT,
    ) -> Self:
        """A copy of this task that tries up to ``attempts`` times in all.

        After the n-th failure it waits ``sleep * 2 ** (n - 1)`` seconds plus a
        jitter of up to half that, at most ``max_wait`` in all. Only
        ``Exception`` is retried; the last error is the task's error.
        """
        retry = RetryPolicy.checked("Task.with_retry", attempts, sleep, max_wait)
        return self._with_layers(retry=retry)

    def with_timeout(self, seconds: float | timedelta | None) -> Self:
        """A copy of this task whose every try fails with ``TimeoutError`` after ``seconds``.

        A try that times out is a failure like any other: the task's retry, if
        it has one, tries again. ``None`` means no timeout of its own (the
        pool's applies, if it has one). A plain ``def`` cannot be interrupted:
        its try fails once the function returns.
        """
        timeout = timeout_seconds("Task.with_timeout", seconds)
        return self._with_layers(timeout=timeout)

    def with_name(self, name: str) -> Self:
        """A copy of this task named ``name``, which ``args.name`` gives inside it."""
        return self._with(name=label("Task.with_name", "name", name))

    def with_tags(self, *tags: str) -> Self:
        """A copy of this task with exactly these ``tags`` (``args.tags`` inside it)."""
        checked = tuple(dict.fromkeys(label("Task.with_tags", "tag", tag) for tag in tags))
        return self._with(tags=checked)

    def with_priority(self, priority: int) -> Self:
        """A copy of this task that a running pool starts before queued tasks of lower priority.

        Higher runs first; equal priorities run in the order they were
        submitted. The default is 0; negative values are allowed.
        """
        return self._with(priority=integer("Task.with_priority", "priority", priority))

    def with_middleware(self, *middleware: Middleware) -> Self:
        """A copy of this task wrapped in ``middleware`` too, inside the pool's (see ``Middleware``).

        Each call adds to the task's middleware, after what it had.
        """
        added = check_middleware("Task.with_middleware", middleware)
        return self._with_layers(middleware=self._spec.layers.middleware + added)

    @overload
    def with_rate_limit(self, limit: RateLimit, /) -> Self: ...
    @overload
    def with_rate_limit(self, limit: int, /, per: float | timedelta = 1.0) -> Self: ...
    def with_rate_limit(self, limit: RateLimit | int, /, per: float | timedelta = 1.0) -> Self:
        """A copy of this task whose tries start at most ``limit`` times per ``per`` seconds.

        The limit is shared by every copy of this task (every input), and by
        every task given the same ``RateLimit`` object (see ``RateLimit``).
        It replaces the task's rate limit, if it had one.
        """
        return self._with_layers(rate=rate_limit("Task.with_rate_limit", limit, per))

    def with_circuit_breaker(self, breaker: CircuitBreaker) -> Self:
        """A copy of this task whose runs go through ``breaker`` (see ``CircuitBreaker``).

        Give the same breaker to several tasks and their failures count together.
        """
        if not isinstance(breaker, CircuitBreaker):
            kind = type(breaker).__name__
            msg = f"Task.with_circuit_breaker: breaker must be a CircuitBreaker, got {breaker!r} ({kind})"
            raise TypeError(msg)
        return self._with_layers(breaker=breaker)

    async def execute(self) -> None:
        """Run this task once on its own, with its retries, raising its final error."""
        with closing(Runner()) as runner:  # its threads, for a plain def, end with the call
            await runner.run(self._spec, Args(self))

    def __repr__(self) -> str:
        given = "" if self._input is _MISSING else f"input={self._input!r}"
        return f"Task({self._spec.describe(given)})"

    def _with(self, **changes: Any) -> Self:
        task = _new(type(self))
        task._spec = replace(self._spec, **changes)
        task._input = self._input
        return task

    def _with_layers(self, **changes: Any) -> Self:
        return self._with(layers=replace(self._spec.layers, **changes))


def check_middleware(where: str, middleware: object) -> tuple[Middleware, ...]:
    """``middleware`` as a tuple, or a TypeError naming the first entry that is not callable."""
    return cast("tuple[Middleware, ...]", callables(where, "middleware", middleware, "(args, call_next)"))
