"""What ``map`` and ``as_completed`` run: a task per input calling ``fn``, and the reader's bounded buffer."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sized
from typing import Any, Generic, TypeVar, cast, overload

from ._spec import describe, is_plain_def, short_repr, sync_fn
from ._supply import Inputs, MappedAsync, is_async_only
from ._task import Args, Task

X = TypeVar("X")
R = TypeVar("R")


@overload
def calls(fn: Callable[[X], Awaitable[R]], inputs: Iterable[X]) -> Iterable[Task[X, X, R]]: ...
@overload
def calls(fn: Callable[[X], Awaitable[R]], inputs: Inputs[X]) -> Inputs[Task[X, X, R]]: ...
def calls(fn: Callable[[X], Awaitable[R]], inputs: Inputs[X]) -> Inputs[Task[X, X, R]]:
    """A task per input whose function returns ``fn(input)``: the run keeps that value.

    Async ``inputs`` give async tasks, and closing those closes ``inputs``.
    """
    task = Task(cast("Callable[[Args[X]], Awaitable[R]]", _Call(fn)))
    if is_async_only(inputs):
        return MappedAsync(task.with_input, cast("AsyncIterable[X]", inputs))
    return (task.with_input(value) for value in cast("Iterable[X]", inputs))


class _Call:
    """``fn(args.input)``: the function of a task of ``map``, returning ``fn``'s result."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[Any], Awaitable[Any]]) -> None:
        self._fn = fn

    async def __call__(self, args: Args[Any]) -> Any:
        result = self._fn(args.input)
        try:
            return await result
        except TypeError:
            if inspect.isawaitable(result):
                raise  # fn's own error
            # A sync callable check_mapping could not tell apart (a lambda, a builtin); checked only
            # here, after the await failed, so that every call that works pays nothing for it.
            returned = short_repr(result)
            msg = f"fn must be an async function: {describe(self._fn)} returned {returned}, not an awaitable"
            raise TypeError(msg) from None

    def __repr__(self) -> str:
        return describe(self._fn)


class Results(Generic[R]):
    """Values on their way from a run's workers to one reader, at most ``bound`` unread at once.

    ``put`` waits while ``bound`` values are unread, so a worker takes no
    new input before its result is read; ``end`` says no more will come.
    """

    __slots__ = ("_bound", "_ended", "_reader", "_values", "_writers")

    def __init__(self, bound: int | None) -> None:
        self._bound = bound
        self._values: deque[R] = deque()
        self._ended = False
        self._reader: asyncio.Future[None] | None = None
        self._writers: deque[asyncio.Future[None]] = deque()

    async def put(self, value: R) -> None:
        while self._bound is not None and len(self._values) >= self._bound:
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._writers.append(room)
            await room
        self._values.append(value)
        self._wake_reader()

    def end(self) -> None:
        self._ended = True
        self._wake_reader()

    async def __aiter__(self) -> AsyncIterator[R]:
        values = self._values
        while True:
            while values:
                value = values.popleft()
                if self._writers and not (writer := self._writers.popleft()).done():
                    writer.set_result(None)
                yield value
            if self._ended:
                return
            self._reader = asyncio.get_running_loop().create_future()
            await self._reader

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)


async def stream(
    drive: Callable[[Callable[[R], Awaitable[None]]], Awaitable[object]], bound: int | None
) -> AsyncGenerator[R, None]:
    """The values a run delivers, as they come; ``drive(deliver)`` is the run, raising its failures."""
    out: Results[R] = Results(bound)
    run = asyncio.ensure_future(drive(out.put))
    run.add_done_callback(lambda _: out.end())
    try:
        async for value in out:
            yield value
    except BaseException:
        # The loop was left early, or its task is being cancelled.
        run.cancel()
        await settled(run)
        raise
    await run  # every result is out: raise the failures, if any


def size_of(items: Iterable[Any] | AsyncIterable[Any]) -> int | None:
    """The number of ``items`` if it is known without reading them."""
    return len(items) if isinstance(items, Sized) else None


async def settled(run: asyncio.Future[Any]) -> None:
    """Wait for a run we cancelled; what it raised is in the pool's errors()."""
    await asyncio.wait((run,))
    if not run.cancelled():
        run.exception()


def refuse_to_block(call: str, instead: str) -> None:
    """Raise ``RuntimeError`` if an event loop runs in this thread: ``call`` would block it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop here: the one case where blocking is right
    msg = f"{call} blocks, so it cannot run inside a running event loop: use `{instead}`"
    raise RuntimeError(msg)


def check_mapping(where: str, fn: object, inputs: object) -> None:
    """Refuse an ``fn`` that is not callable or ``inputs`` that are not iterable, naming them."""
    if not callable(fn):
        kind = type(fn).__name__
        msg = f"{where}(fn, inputs): fn must be an async function of one input, got {fn!r} ({kind})"
        raise TypeError(msg)
    if is_plain_def(fn):
        # Run on the event loop, it would block it, then fail after its side effects, on every try.
        raise TypeError(f"{where}(fn, inputs): {sync_fn(fn)}")
    if not isinstance(inputs, Iterable | AsyncIterable):
        kind = type(inputs).__name__
        msg = f"{where}(fn, inputs): inputs must be iterable, got {inputs!r} ({kind})"
        msg += " (async iterables work too)"
        raise TypeError(msg)


def not_a_task(index: int, value: object) -> TypeError:
    """The error for a value in the tasks iterable that is not a Task."""
    hint = f": wrap the function as Task({getattr(value, '__name__', 'fn')})" if callable(value) else ""
    return TypeError(f"tasks[{index}] must be a Task, got {value!r} ({type(value).__name__}){hint}")


def check_tasks(tasks: Iterable[Task[Any, Any, Any]] | AsyncIterable[Task[Any, Any, Any]]) -> None:
    """Refuse what is not an iterable or async iterable of tasks; a list or tuple is checked whole."""
    # Annotations do not bind untyped callers: check what we were given.
    if isinstance(tasks, Task) or not isinstance(tasks, Iterable | AsyncIterable):
        kind = type(tasks).__name__
        msg = f"Pool.go(tasks): tasks must be an iterable of Task, got {tasks!r} ({kind})"
        msg += " (an async iterable of Task works too)"
        raise TypeError(msg)
    if isinstance(tasks, list | tuple):
        for index, task in enumerate(tasks):
            if not isinstance(task, Task):
                raise not_a_task(index, task)
