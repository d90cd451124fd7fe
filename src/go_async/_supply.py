"""An async iterable as a run's supply: its items pulled by the workers, one pull at a time.

A run's workers pull their tasks with ``next(specs)``. Given an async
iterable, the run's ``specs`` is an ``AsyncSupply``, whose ``__next__``
raises ``Pull``: the worker then awaits ``supply.pull()``. So the run chooses
its kind of pull once, and a sync iterable's workers run exactly the loop
they ran before (an ``except`` clause costs nothing until it is taken).
Pulls are serialized by a lock: an async generator refuses a second
``__anext__`` while one is running, and a cursor or a paginated API would
hand out the same page twice. A worker pulls only when it has no task, so a
run with a limit ``L`` holds at most ``L`` pulled items that have not ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Generic, TypeAlias, TypeVar, cast

T = TypeVar("T")
U = TypeVar("U")
# What map, amap and as_completed take: inputs from an iterable or an async iterable.
Inputs: TypeAlias = Iterable[T] | AsyncIterable[T]

# What `AsyncSupply.pull` returns once the iterable has ended.
END: Any = object()


class Pull(Exception):
    """Raised by ``next()`` on an ``AsyncSupply``: await ``supply.pull()`` for the next item."""


class AsyncSupply(Generic[T]):
    """The items of an async iterable, pulled by one worker at a time, and closed when the run ends."""

    __slots__ = ("_ended", "_iterator", "_lock", "_next", "_quiet", "waiting")

    def __init__(self, items: AsyncIterable[T]) -> None:
        self._iterator: AsyncIterator[T] = aiter(items)
        self._next = self._iterator.__anext__
        self._lock = asyncio.Lock()
        self._ended = False
        # Workers waiting for an item: while any does, more workers would only wait too.
        self.waiting = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    async def until_quiet(self) -> None:
        """Return once no worker waits for an item (the source keeps up with the workers)."""
        while self.waiting:
            await self._quiet.wait()

    def __iter__(self) -> AsyncSupply[T]:
        return self

    def __next__(self) -> T:
        raise Pull

    async def pull(self) -> T:
        """The next item, or ``END`` once there are none; the iterable's own error passes through."""
        self.waiting += 1
        self._quiet.clear()
        try:
            return await self._pull_one()
        finally:
            self.waiting -= 1
            if not self.waiting:
                self._quiet.set()

    async def _pull_one(self) -> T:
        async with self._lock:
            if self._ended:
                return cast("T", END)
            try:
                return await self._next()
            except StopAsyncIteration:
                self._ended = True
                return cast("T", END)
            except BaseException:
                self._ended = True  # it raised, or was cancelled mid-pull: pull no more
                raise

    async def aclose(self) -> None:
        """Close the iterator (an async generator runs its ``finally``), if it can be closed."""
        self._ended = True
        close: Callable[[], Awaitable[object]] | None = getattr(self._iterator, "aclose", None)
        if close is not None:
            await close()


class MappedAsync(Generic[T, U]):
    """``make(item)`` for each item of an async iterable; closing it closes that iterable."""

    __slots__ = ("_iterator", "_make", "_next")

    def __init__(self, make: Callable[[T], U], items: AsyncIterable[T]) -> None:
        self._make = make
        self._iterator: AsyncIterator[T] = aiter(items)
        self._next = self._iterator.__anext__

    def __aiter__(self) -> MappedAsync[T, U]:
        return self

    async def __anext__(self) -> U:
        return self._make(await self._next())

    async def aclose(self) -> None:
        close: Callable[[], Awaitable[object]] | None = getattr(self._iterator, "aclose", None)
        if close is not None:
            await close()


def is_async_only(items: object) -> bool:
    """Whether ``items`` is an async iterable and not a sync one (which a run prefers)."""
    return not isinstance(items, Iterable) and isinstance(items, AsyncIterable)


def stray_cancel(what: str, cancelled: asyncio.CancelledError) -> RuntimeError:
    """The failure of ``what`` (a task, an iterable) that raised ``cancelled``, its run not cancelled.

    It awaited something cancelled elsewhere. Taken for a cancellation, a task's
    would pass for cancelled, and an iterable's would end the run's pulls as if
    it had run out: the rest lost, unsaid.
    """
    error = RuntimeError(f"{what} raised CancelledError, though its run was not cancelled")
    error.__cause__ = cancelled
    return error


def being_cancelled() -> bool:
    """Whether the running asyncio task is being cancelled."""
    me = asyncio.current_task()
    return me is not None and me.cancelling() > 0
