"""Drain[T]: the typed collector that tasks send their results to."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Drain(Generic[T]):
    """Collects the values that tasks send, in send order.

    ``send`` never blocks and is safe from worker threads; ``drain()`` returns
    every value sent so far. ``async for`` reads the values as they arrive and
    stops, once each value was read, when every run that fed the drain has
    ended or when ``close()`` was called (for a drain that no run feeds).

    Example::

        out: Drain[int] = Drain()
        out.send(1)
        assert out.drain() == [1] and len(out) == 1
    """

    __slots__ = ("__weakref__", "_closed", "_feeders", "_lock", "_values", "_waiters", "_was_fed")

    def __init__(self) -> None:
        self._values: list[T] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()
        self._feeders = 0
        self._was_fed = False
        self._closed = False

    def send(self, value: T) -> None:
        """Add ``value``; from a coroutine or from any thread. Refused once closed."""
        if self._closed:
            msg = f"Drain.send({value!r}): {self!r} is closed"
            raise RuntimeError(msg)
        self._values.append(value)
        # Readers register before re-checking the length, so one of the two
        # always sees the other: this check without the lock is safe.
        if self._waiters:
            self._wake_readers()

    def drain(self) -> list[T]:
        """Every value sent so far, in send order (a new list each call)."""
        return self._values.copy()

    def close(self) -> None:
        """Send no more values: readers stop once they have read every value."""
        self._closed = True
        self._wake_readers()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"<Drain of {len(self._values)} values{state}>"

    def __aiter__(self) -> AsyncIterator[T]:
        return self._read()

    async def _read(self) -> AsyncIterator[T]:
        values = self._values
        position = 0
        while True:
            while position < len(values):
                yield values[position]
                position += 1
            if self._finished():
                # A sender may have added values between our last length check
                # and the end of its run: read those before stopping.
                if position == len(values):
                    return
                continue
            await self._wait_beyond(position)

    def _finished(self) -> bool:
        return self._closed or (self._was_fed and self._feeders == 0)

    async def _wait_beyond(self, position: int) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (loop, waiter)
        with self._lock:
            self._waiters.append(entry)
        try:
            if len(self._values) == position and not self._finished():
                await waiter
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)

    def _wake_readers(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, waiter)

    # A run brackets its use of a drain with these, so that readers know when
    # no more values can come.
    # Runs in different threads may feed one drain, hence the lock.
    def _begin_feed(self) -> None:
        with self._lock:
            self._feeders += 1
            self._was_fed = True

    def _end_feed(self) -> None:
        with self._lock:
            self._feeders -= 1
            finished = self._feeders == 0
        if finished:
            self._wake_readers()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
