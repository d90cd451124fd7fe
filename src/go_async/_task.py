"""Task[In, Out, R], the spec of one unit of work; Args[In, Out], what its function receives; and
the protocols its code meets: ``Middleware`` (code around a task), ``TaskPool`` (the pool it
submits work to)."""

from __future__ import annotations

import enum
import itertools
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import closing
from dataclasses import replace
from datetime import timedelta
from typing import Any, Generic, Literal, Protocol, Self, cast, overload

from typing_extensions import TypeVar

from ._checks import callables
from ._drain import Drain
from ._handle import Handle
from ._options import TaskOptions
from ._runner import Runner
from ._spec import Spec, is_async_callable, short_repr
from ._stats import PoolStats
from ._supply import Inputs
from ._topic import Topic, WhenFull

# A task's input, what its drain takes (its input's type unless said), and
# what its function returns (None for a task that only sends to its drain).
In = TypeVar("In")
Out = TypeVar("Out", default=In)
R = TypeVar("R", covariant=True, default=None)  # noqa: PLC0105 - the name its users read
T = TypeVar("T")
X = TypeVar("X")
V = TypeVar("V")
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


def make_args(task: Task[In, Out, Any], origin: Origin, index: int) -> Args[In, Out]:
    """The Args of a task at ``index`` in a run, made without ``Args.__init__``'s new run number."""
    args: Args[In, Out] = _new(Args)  # pyright: ignore[reportUnknownVariableType]
    args._task, args._origin, args._index = task, origin, index
    return args


class Args(Generic[In, Out]):
    """What a task's function receives: its ``input`` and ``drain``, and who it is.

    ``Args[In, Out]``: ``input`` is an ``In``, ``drain`` a ``Drain[Out]``;
    ``Args[T]`` is ``Args[T, T]``.

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

    def __init__(self, task: Task[In, Out, Any]) -> None:
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
    def task(self) -> Task[In, Out, Any]:
        """The task being run."""
        return self._task

    @property
    def input(self) -> In:
        """The value given by ``Task.with_input``."""
        value = self._task._input
        if value is _MISSING:
            msg = f"{self._task!r} has no input: give it one with .with_input(value)"
            raise LookupError(msg)
        return value

    @property
    def drain(self) -> Drain[Out]:
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

        async def log_start(args: Args[Any], call_next: CallNext[V]) -> V:
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

        async def timed(args: Args[Any], call_next: CallNext[V]) -> V:
            started = time.perf_counter()
            try:
                return await call_next()
            finally:
                print(args.id, time.perf_counter() - started)

        Pool(limit=8, middleware=[timed]).go(tasks)
    """

    def __call__(self, args: Args[Any], call_next: CallNext[V], /) -> Awaitable[V]: ...


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
    async def submit(self, task: Task[Any, Any, V]) -> Handle[V]:
        """Queue ``task`` to run; waits while the queue is full."""
        ...

    def submit_nowait(self, task: Task[Any, Any, V]) -> Handle[V]:
        """Queue ``task`` to run, or raise ``QueueFull`` if the queue is full."""
        ...

    @overload
    async def map(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], *, return_exceptions: Literal[False] = ...
    ) -> list[V]: ...
    @overload
    async def map(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], *, return_exceptions: bool
    ) -> list[V | Exception]: ...
    @overload
    async def amap(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], *, return_exceptions: Literal[False] = ...
    ) -> list[V]: ...
    @overload
    async def amap(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], *, return_exceptions: bool
    ) -> list[V | Exception]: ...
    def as_completed(self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X]) -> AsyncGenerator[V, None]:
        """``fn(x)`` for each of ``inputs``, as tasks of the pool: each value as its call ends."""
        ...

    def sub(self, limit: int | None = None) -> TaskPool:
        """A sub-pool with a limit of its own, counted against this pool's too."""
        ...

    @overload
    def topic(
        self, name: str, kind: type[T], *, buffer: int = ..., when_full: WhenFull = ...
    ) -> Topic[T]: ...
    @overload
    def topic(self, name: str, *, buffer: int = ..., when_full: WhenFull = ...) -> Topic[Any]: ...
    def cancel(self) -> list[Handle[Any]]:
        """Cancel every task queued or running, and every schedule: the handles of the tasks cancelled."""
        ...

    async def shutdown(self, timeout: float | timedelta | None = None) -> list[Handle[Any]]:  # noqa: ASYNC109
        """Take no more tasks, let the others end within ``timeout``, then cancel the rest: their handles."""
        ...

    def stats(self) -> PoolStats:
        """Counts and timings of this pool and its sub-pools, now."""
        ...


class Task(TaskOptions, Generic[In, Out, R]):
    """An immutable spec: a function, its input, where its results go, how it runs.

    ``fn`` takes an ``Args[In, Out]``: ``args.input`` is an ``In``, and
    ``args.drain`` takes ``Out`` values (``Args[T]`` means ``Args[T, T]``).
    What ``fn`` returns (``R``) is what awaiting the task's ``Handle`` gives,
    and what ``execute()`` returns. An ``async def`` runs on the event loop;
    a plain ``def`` runs in a worker thread so that it cannot block the loop.
    Every ``with_*``/``drain_to`` call returns a new task, so one base task
    serves many inputs; ``with_retry``, ``with_timeout``, ``with_name``... are
    described on ``TaskOptions``.

    Example::

        async def title(args: Args[str, Page]) -> None:
            args.drain.send(await fetch(args.input))

        pages: Drain[Page] = Drain()
        base = Task(title).drain_to(pages).with_retry(3, 0.1)
        Pool(limit=4).go(base.with_input(url) for url in urls)
    """

    __slots__ = ("_input", "_spec")

    _spec: Spec
    _input: In | _Missing

    @overload
    def __init__(self, fn: Callable[[Args[In, Out]], Awaitable[R]]) -> None: ...
    @overload
    def __init__(self, fn: Callable[[Args[In, Out]], R]) -> None: ...
    def __init__(self, fn: Callable[[Args[In, Out]], Any]) -> None:
        if not callable(fn):
            msg = f"Task(fn): fn must be a function taking Args, got {fn!r} ({type(fn).__name__})"
            raise TypeError(msg)
        self._spec = Spec(fn, is_async_callable(fn))
        self._input = _MISSING

    def with_input(self, value: In) -> Self:
        """A copy of this task whose ``args.input`` is ``value``."""
        task = _new(self.__class__)
        task._spec = self._spec
        task._input = value
        return task

    def drain_to(self, drain: Drain[Out]) -> Self:
        """A copy of this task whose ``args.drain`` is ``drain``."""
        if not isinstance(drain, Drain):
            msg = f"Task.drain_to(drain): drain must be a Drain, got {drain!r} ({type(drain).__name__})"
            raise TypeError(msg)
        return self._with(drain=drain)

    def with_middleware(self, *middleware: Middleware) -> Self:
        """A copy of this task wrapped in ``middleware`` too, inside the pool's (see ``Middleware``).

        Each call adds to the task's middleware, after what it had.
        """
        added = check_middleware("Task.with_middleware", middleware)
        return self._with_layers(middleware=self._spec.layers.middleware + added)

    async def execute(self) -> R:
        """Run this task once on its own, with its retries: what its function returned, or its final error."""
        args = Args(self)
        with closing(Runner()) as runner:  # its threads, for a plain def, end with the call
            try:
                return cast("R", await runner.run(self._spec, args))
            except Exception as error:
                name_failure(error, args)
                raise

    def __repr__(self) -> str:
        given = "" if self._input is _MISSING else f"input={short_repr(self._input)}"
        return f"Task({self._spec.describe(given)})"

    def _with(self, **changes: Any) -> Self:
        task = _new(type(self))
        task._spec = replace(self._spec, **changes)
        task._input = self._input
        return task


def name_failure(error: BaseException, args: Args[Any]) -> None:
    """Note on a task's final ``error`` which task it was: its name, id and a short repr of its input."""
    task = args._task
    given = "" if task._input is _MISSING else f", input {short_repr(task._input)}"
    error.add_note(f"in task {task._spec.title} (id {args.id}{given})")


def check_middleware(where: str, middleware: object) -> tuple[Middleware, ...]:
    """``middleware`` as a tuple, or a TypeError naming the first entry that is not callable."""
    return cast("tuple[Middleware, ...]", callables(where, "middleware", middleware, "(args, call_next)"))
