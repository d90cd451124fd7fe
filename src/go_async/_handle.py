"""Handle[R]: one task submitted to a running pool, to await for what it returns, or to cancel."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

from ._checks import timeout_seconds

R = TypeVar("R", covariant=True)  # noqa: PLC0105 - the name its users read


class State(enum.Enum):
    """Where a submitted task stands."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class _Owner(Protocol):
    """What a handle asks of the running pool that runs its task."""

    def _cancel(self, handle: Handle[Any]) -> bool: ...


class Handle(Generic[R]):
    """One submitted task: await it for what its function returned, or cancel it.

    ``await handle`` returns once the task has ended: the value its function
    returned (an ``R``; ``None`` for a task that only sends to its drain),
    or it raises the task's final error, or ``CancelledError`` if it was
    cancelled; it can be awaited any number of times. Awaiting never cancels
    the task itself; ``wait(timeout)`` gives up waiting without stopping it.

    Example::

        handle = await pool.submit(Task(fetch).with_input(url))  # Handle[Page]
        page = await handle
    """

    __slots__ = (
        "_args",
        "_context",
        "_error",
        "_listeners",
        "_owner",
        "_place",
        "_retrieved",
        "_seq",
        "_spec",
        "_state",
        "_stopping",
        "_value",
        "_waiters",
        "_worker",
    )

    def __init__(self, owner: _Owner, args: Any, seq: int, context: Any, place: Any = None) -> None:
        self._owner = owner
        # The task's Args, its spec (function and layers) and its place in
        # submission order; the context its submit ran in, if it must run there.
        self._args = args
        self._spec = args._task._spec
        self._seq = seq
        self._context = context
        self._state = State.QUEUED
        self._value: Any = None
        self._error: BaseException | None = None
        self._retrieved = False
        # Set when its own cancel() stopped its worker, so the worker knows
        # the cancellation is this task's alone.
        self._stopping = False
        self._worker: asyncio.Task[Any] | None = None
        # The state of the pool (or sub-pool) it was submitted to.
        self._place = place
        self._waiters: list[asyncio.Future[None]] | None = None
        self._listeners: list[Callable[[Handle[Any]], object]] | None = None

    @property
    def id(self) -> str:
        """The id that ``args.id`` gives inside the task."""
        return str(self._args.id)

    @property
    def task(self) -> Any:
        """The ``Task`` submitted."""
        return self._args._task

    def done(self) -> bool:
        """Whether the task has ended: completed, failed or cancelled."""
        return self._state not in (State.QUEUED, State.RUNNING)

    def cancelled(self) -> bool:
        """Whether the task was cancelled before it ended on its own."""
        return self._state is State.CANCELLED

    def cancel(self) -> bool:
        """Cancel the task, queued or running; False if it had already ended."""
        return self._owner._cancel(self)

    def exception(self) -> BaseException | None:
        """The task's final error, ``None`` if it completed; it must have ended.

        Raises ``CancelledError`` if it was cancelled, as ``asyncio.Future`` does.
        """
        if not self.done():
            msg = f"{self!r} has not ended yet: await it first"
            raise asyncio.InvalidStateError(msg)
        self._retrieved = True
        if self._state is State.CANCELLED:
            raise asyncio.CancelledError
        return self._error

    async def wait(self, timeout: float | timedelta | None = None) -> None:  # noqa: ASYNC109 - a timeout for the wait only
        """Wait for the task's outcome, as ``await handle``, for at most ``timeout`` seconds.

        It returns nothing, but raises as ``await handle`` does: the task's
        error if it failed, ``CancelledError`` if it was cancelled. Raises
        ``TimeoutError`` if the task has not ended by then; it goes on.
        """
        seconds = timeout_seconds("Handle.wait", timeout, "timeout")
        async with asyncio.timeout(seconds):
            await self

    def result(self) -> R:
        """What the task's function returned; it must have ended.

        Raises its final error if it failed, ``CancelledError`` if it was
        cancelled, as ``asyncio.Future`` does.
        """
        error = self.exception()
        if error is not None:
            raise error
        value: R = self._value  # set by its run, from its function's R
        return value

    def __await__(self) -> Generator[Any, None, R]:
        self._retrieved = True
        return self._outcome().__await__()

    def __repr__(self) -> str:
        return f"<Handle {self.id} {self._state.value}: {self.task!r}>"

    async def _ended(self) -> None:
        """Wait until the task has ended, whatever its outcome (nothing is retrieved)."""
        if not self.done():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            try:
                await waiter  # a waiter cancelled here leaves the task running
            finally:
                if not waiter.done() and waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _outcome(self) -> Any:
        await self._ended()
        if self._state is State.CANCELLED:
            raise asyncio.CancelledError
        if self._error is not None:
            raise self._error
        return self._value

    def _on_end(self, listener: Callable[[Handle[Any]], object]) -> None:
        """Call ``listener(handle)`` once the task has ended (at once if it has)."""
        if self.done():
            listener(self)
        elif self._listeners is None:
            self._listeners = [listener]
        else:
            self._listeners.append(listener)

    def _end(self, state: State, value: Any = None, error: BaseException | None = None) -> None:
        self._state = state
        self._value = value
        self._error = error
        if self._waiters is not None:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._waiters = None
        if self._listeners is not None:
            listeners, self._listeners = self._listeners, None
            for listener in listeners:
                listener(self)
