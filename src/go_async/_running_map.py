"""``map``, ``amap`` and ``as_completed`` of a running pool: each input a task of the pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Literal, TypeVar, cast, overload

from ._calls import calls, check_mapping
from ._handle import Handle, State
from ._supply import Inputs, MappedAsync, being_cancelled, stray_cancel
from ._task import Task

X = TypeVar("X")
V = TypeVar("V")


class RunningMap:
    """What a running pool runs of one function over many inputs, a task of the pool per input.

    Each call is submitted as a task of this pool (its limit, retries,
    middleware and hooks apply), and waits for room in its queue like
    ``submit``. Cancelling the caller cancels the calls still queued or
    running. ``inputs`` may be an async iterable: its items are submitted
    as they come, and it is closed once read.

    Example::

        async with Pool(limit=8) as pool:
            sizes = await pool.map(size, urls)
            async for page in pool.as_completed(fetch, urls):
                print(page.title)
    """

    __slots__ = ()

    async def submit(self, task: Task[Any, Any, V]) -> Handle[V]:
        """Queue ``task`` to run in this pool; waits while the queue is full."""
        raise NotImplementedError  # the running pool's own

    def _check_open(self, call: str) -> None:
        raise NotImplementedError  # the running pool's own: refuses a call once it stopped

    @overload
    async def map(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], *, return_exceptions: Literal[False] = ...
    ) -> list[V]: ...
    @overload
    async def map(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], *, return_exceptions: bool
    ) -> list[V | Exception]: ...
    async def map(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], *, return_exceptions: bool = False
    ) -> list[V] | list[V | Exception]:
        """``fn(x)`` for each of ``inputs``, as tasks of this pool: their values in input order.

        Every call runs to its end. If any failed, their final errors are
        raised together in an ``ExceptionGroup``, in input order, unless
        ``return_exceptions=True``: then each failed call's place holds its
        error. A call cancelled on its own (``pool.cancel()``) makes the map
        raise ``CancelledError`` once every call has ended.
        """
        check_mapping("RunningPool.map", fn, inputs)
        self._check_open("map")
        return await self._map(fn, inputs, return_exceptions)

    @overload
    async def amap(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], *, return_exceptions: Literal[False] = ...
    ) -> list[V]: ...
    @overload
    async def amap(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], *, return_exceptions: bool
    ) -> list[V | Exception]: ...
    async def amap(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], *, return_exceptions: bool = False
    ) -> list[V] | list[V | Exception]:
        """``map`` by the name of ``Pool.amap``, so that code moves between the two unchanged."""
        check_mapping("RunningPool.amap", fn, inputs)
        self._check_open("amap")
        return await self._map(fn, inputs, return_exceptions)

    def as_completed(self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X]) -> AsyncGenerator[V, None]:
        """``fn(x)`` for each of ``inputs``, as tasks of this pool: each value as its call ends.

        Once every value is out, the failures, if any, are raised together
        in input order. Leaving the loop early cancels the calls not yet ended.
        """
        check_mapping("RunningPool.as_completed", fn, inputs)
        self._check_open("as_completed")
        return self._as_completed(fn, inputs)

    async def _as_completed(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X]
    ) -> AsyncGenerator[V, None]:
        handles = await self._submit_all(fn, inputs)
        ended: asyncio.Queue[Handle[V]] = asyncio.Queue()
        for handle in handles:
            handle._on_end(ended.put_nowait)
        try:
            failures: dict[int, Exception] = {}
            for _ in handles:
                handle = await ended.get()
                value, error = _outcome(handle)
                if error is None:
                    yield cast("V", value)
                else:
                    failures[handle._seq] = error
        finally:
            _cancel_unfinished(handles)
        if failures:
            msg = f"{len(failures)} of {len(handles)} calls failed"
            raise ExceptionGroup(msg, [failures[seq] for seq in sorted(failures)])

    async def _map(
        self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X], return_exceptions: bool
    ) -> list[V | Exception]:
        handles = await self._submit_all(fn, inputs)
        try:
            # In submission order: most have ended by the time their turn comes.
            for handle in handles:
                await handle._ended()
        except BaseException:
            _cancel_unfinished(handles)
            raise
        results: list[V | Exception] = []
        failures: list[Exception] = []
        for handle in handles:
            value, error = _outcome(handle)
            if error is None:
                results.append(cast("V", value))
            else:
                results.append(error)
                failures.append(error)
        if failures and not return_exceptions:
            msg = f"{len(failures)} of {len(handles)} calls failed"
            raise ExceptionGroup(msg, failures)
        return results

    async def _submit_all(self, fn: Callable[[X], Awaitable[V]], inputs: Inputs[X]) -> list[Handle[V]]:
        handles: list[Handle[V]] = []
        tasks = calls(fn, inputs)
        try:
            if isinstance(tasks, MappedAsync):
                pulled = cast("AsyncIterator[Task[X, X, V]]", tasks)
                try:
                    while True:
                        try:
                            task = await anext(pulled)
                        except StopAsyncIteration:
                            break
                        except Exception as error:
                            _note(error, len(handles))
                            raise
                        handles.append(await self.submit(task))
                finally:
                    await tasks.aclose()
            else:
                pulls = iter(cast("Iterable[Task[X, X, V]]", tasks))
                while True:
                    try:
                        task = next(pulls)
                    except StopIteration:
                        break
                    except Exception as error:
                        _note(error, len(handles))
                        raise
                    handles.append(await self.submit(task))
        except asyncio.CancelledError as cancelled:
            _cancel_unfinished(handles)
            if being_cancelled():
                raise
            # What `submit` awaits is cancelled only with its caller: the inputs raised this one.
            raise stray_cancel("the inputs iterable", cancelled) from cancelled
        except BaseException:
            _cancel_unfinished(handles)
            raise
        return handles


def _outcome(handle: Handle[V]) -> tuple[V | None, Exception | None]:
    """An ended call's value, or its final error; ``CancelledError`` if it was cancelled on its own."""
    handle._retrieved = True
    if handle._state is State.COMPLETED:
        return handle._value, None
    if handle._state is State.FAILED:
        error = handle._error
        assert isinstance(error, Exception)  # its final error; BaseExceptions end the pool
        return None, error
    raise asyncio.CancelledError  # a call cancelled on its own: pool.cancel()


def _cancel_unfinished(handles: list[Handle[Any]]) -> None:
    for handle in handles:
        if not handle.done():
            handle.cancel()


def _note(error: Exception, count: int) -> None:
    # An error of the inputs themselves says after how many it came, as in `Pool.map`.
    error.add_note(f"raised by the inputs iterable after {count} input{'' if count == 1 else 's'}")
