"""Checks of who calls a running pool: its event loop's thread, not a task that would wait for itself."""

from __future__ import annotations

import asyncio
import threading
from contextvars import ContextVar
from typing import Any

from ._handle import Handle
from ._place import Place
from ._task import Task

# In the context of a task run in a context of its own (see `_own_context`):
# its handle, since its asyncio task is not its worker.
own_handle: ContextVar[Handle[Any] | None] = ContextVar("go_async_own_handle", default=None)


def check_task(where: str, task: object) -> None:
    if not isinstance(task, Task):
        msg = f"{where}: task must be a Task, got {task!r} ({type(task).__name__})"
        raise TypeError(msg)


def check_open(where: str, place: Place, thread: int) -> None:
    """``where`` changes the pool: it must be called in its event loop's thread, while the pool runs."""
    if threading.get_ident() != thread:
        # asyncio is not thread-safe: a TaskGroup's create_task from another
        # thread starts nothing until the loop wakes for something else.
        msg = (
            f"{where} was called from another thread than the pool's event loop's (a plain def task "
            "runs in a worker thread): make the task async def, or hand the call to the pool's loop "
            "with loop.call_soon_threadsafe"
        )
        raise RuntimeError(msg)
    if not place.accepting:
        msg = f"{where}: the pool is not running (it was shut down or its block ended)"
        raise RuntimeError(msg)


def check_not_within(where: str, top: Place) -> None:
    """The caller must not be a task of ``top`` or below, since ``where`` waits for all those to end."""
    me, mine = asyncio.current_task(), own_handle.get()
    if me is not None and any(h._worker is me or h is mine for place in top.tree() for h in place.running):
        msg = (
            f"{where}: a task cannot wait for its own pool to shut down (it would wait for itself); "
            "call pool.cancel() to cancel the pool's tasks, or let the code that opened the pool "
            "leave its block or shut it down"
        )
        raise RuntimeError(msg)
