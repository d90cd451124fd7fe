"""Task[T], the immutable spec of one unit of work, and Args[T], what its function receives."""

from __future__ import annotations

import enum
import inspect
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, overload

from ._breaker import CircuitBreaker
from ._checks import integer, label, timeout_seconds
from ._drain import Drain
from ._rate import RateLimit, rate_limit
from ._retry import DEFAULT_MAX_WAIT, RetryPolicy

if TYPE_CHECKING:
    from ._middleware import Middleware
    from ._service import RunningPool

T = TypeVar("T")


class _Missing(enum.Enum):
    MISSING = enum.auto()


_MISSING = _Missing.MISSING
_new = object.__new__
# Every run (and every Args made by hand) takes a number, so that ids are
# unique in the process.
run_numbers = itertools.count(1)


class Origin:
    """Where an Args comes from: its run's number and the running pool, if any, that runs it."""

    __slots__ = ("number", "pool")

    def __init__(self, number: int, pool: RunningPool | None) -> None:
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
    def pool(self) -> RunningPool:
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
        return self._task._core.name

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags given by ``Task.with_tags``."""
        return self._task._core.tags

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
        drain = self._task._core.drain
        if drain is None:
            msg = f"{self._task!r} has no drain: give it one with .drain_to(drain)"
            raise LookupError(msg)
        return drain

    def __repr__(self) -> str:
        return f"Args({self._task!r})"


@dataclass(frozen=True, slots=True)
class _Core:
    """What every copy of a task that differs only by its input shares.

    Keeping it apart makes ``with_input``, which runs once per task in the hot
    path of every pool, a copy of two references.
    """

    fn: Callable[[Args[Any]], Awaitable[None] | None]
    is_async: bool
    drain: Drain[Any] | None = None
    retry: RetryPolicy | None = None
    timeout: float | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    priority: int = 0
    middleware: tuple[Middleware, ...] = ()
    rate: RateLimit | None = None
    breaker: CircuitBreaker | None = None
    # An async function with nothing of its own around it (a timeout,
    # middleware, a rate limit, a breaker): the worker awaits it directly.
    # Derived, so that the hot path reads one field.
    plain: bool = field(init=False)
    # The task's name, else its function's, for logs; and the name of the
    # asyncio task that runs it, for debuggers and asyncio's introspection.
    # Derived once, as the workers rename themselves for each task.
    title: str = field(init=False)
    label: str = field(init=False)

    def __post_init__(self) -> None:
        alone = self.timeout is None and not self.middleware and self.rate is None and self.breaker is None
        object.__setattr__(self, "plain", self.is_async and alone)
        object.__setattr__(self, "title", self.name or _describe(self.fn))
        object.__setattr__(self, "label", f"go_async {self.title}")


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

    __slots__ = ("_core", "_input")

    _core: _Core
    _input: T | _Missing

    @overload
    def __init__(self, fn: Callable[[Args[T]], Awaitable[None]]) -> None: ...
    @overload
    def __init__(self, fn: Callable[[Args[T]], None]) -> None: ...
    def __init__(self, fn: Callable[[Args[T]], Awaitable[None] | None]) -> None:
        if not callable(fn):
            msg = f"Task(fn): fn must be a function taking Args, got {fn!r} ({type(fn).__name__})"
            raise TypeError(msg)
        self._core = _Core(fn, _is_async_callable(fn))
        self._input = _MISSING

    def with_input(self, value: T) -> Self:
        """A copy of this task whose ``args.input`` is ``value``."""
        task = _new(self.__class__)
        task._core = self._core
        task._input = value
        return task

    def drain_to(self, drain: Drain[T]) -> Self:
        """A copy of this task whose ``args.drain`` is ``drain``."""
        if not isinstance(drain, Drain):
            msg = f"Task.drain_to(drain): drain must be a Drain, got {drain!r} ({type(drain).__name__})"
            raise TypeError(msg)
        return self._with_core(replace(self._core, drain=drain))

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
        return self._with_core(replace(self._core, retry=retry))

    def with_timeout(self, seconds: float | timedelta | None) -> Self:
        """A copy of this task whose every try fails with ``TimeoutError`` after ``seconds``.

        A try that times out is a failure like any other: the task's retry, if
        it has one, tries again. ``None`` means no timeout of its own (the
        pool's applies, if it has one). A plain ``def`` cannot be interrupted:
        its try fails once the function returns.
        """
        timeout = timeout_seconds("Task.with_timeout", seconds)
        return self._with_core(replace(self._core, timeout=timeout))

    def with_name(self, name: str) -> Self:
        """A copy of this task named ``name``, which ``args.name`` gives inside it."""
        return self._with_core(replace(self._core, name=label("Task.with_name", "name", name)))

    def with_tags(self, *tags: str) -> Self:
        """A copy of this task with exactly these ``tags`` (``args.tags`` inside it)."""
        checked = tuple(dict.fromkeys(label("Task.with_tags", "tag", tag) for tag in tags))
        return self._with_core(replace(self._core, tags=checked))

    def with_priority(self, priority: int) -> Self:
        """A copy of this task that a running pool starts before queued tasks of lower priority.

        Higher runs first; equal priorities run in the order they were
        submitted. The default is 0; negative values are allowed.
        """
        return self._with_core(
            replace(self._core, priority=integer("Task.with_priority", "priority", priority))
        )

    def with_middleware(self, *middleware: Middleware) -> Self:
        """A copy of this task wrapped in ``middleware`` too, inside the pool's (see ``Middleware``).

        Each call adds to the task's middleware, after what it had.
        """
        from ._middleware import check_middleware  # noqa: PLC0415 - _middleware imports this module

        added = check_middleware("Task.with_middleware", middleware)
        return self._with_core(replace(self._core, middleware=self._core.middleware + added))

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
        return self._with_core(replace(self._core, rate=rate_limit("Task.with_rate_limit", limit, per)))

    def with_circuit_breaker(self, breaker: CircuitBreaker) -> Self:
        """A copy of this task whose runs go through ``breaker`` (see ``CircuitBreaker``).

        Give the same breaker to several tasks and their failures count together.
        """
        if not isinstance(breaker, CircuitBreaker):
            kind = type(breaker).__name__
            msg = f"Task.with_circuit_breaker: breaker must be a CircuitBreaker, got {breaker!r} ({kind})"
            raise TypeError(msg)
        return self._with_core(replace(self._core, breaker=breaker))

    async def execute(self) -> None:
        """Run this task once on its own, with its retries, raising its final error."""
        from ._run import run_alone  # noqa: PLC0415 - _run imports this module

        await run_alone(self)

    def __repr__(self) -> str:
        core = self._core
        parts = [_describe(core.fn)]
        if self._input is not _MISSING:
            parts.append(f"input={self._input!r}")
        if core.drain is not None:
            parts.append(f"drain={core.drain!r}")
        if core.retry is not None:
            parts.append(f"retry={core.retry}")
        if core.timeout is not None:
            parts.append(f"timeout={core.timeout}s")
        if core.name is not None:
            parts.append(f"name={core.name!r}")
        if core.tags:
            parts.append(f"tags={core.tags!r}")
        if core.priority:
            parts.append(f"priority={core.priority}")
        if core.middleware:
            parts.append(f"middleware={[_describe(each) for each in core.middleware]}")
        if core.rate is not None:
            parts.append(f"rate={core.rate!r}")
        if core.breaker is not None:
            parts.append(f"breaker={core.breaker.name!r}")
        return f"Task({', '.join(parts)})"

    def _with_core(self, core: _Core) -> Self:
        task = object.__new__(type(self))
        task._core = core
        task._input = self._input
        return task


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(call)


def _describe(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else repr(fn)
