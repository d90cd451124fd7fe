"""Review: a task submitted from a context of its own runs in an asyncio task that its worker awaits."""

import asyncio
from contextvars import ContextVar
from typing import Any

from go_async import Args, Drain, Handle, Hooks, Pool, Task
from looping import in_loop

request_id: ContextVar[str] = ContextVar("request_id")


class Heard(Hooks):
    """The end events the hooks heard, in order."""

    def __init__(self) -> None:
        self.ends: list[str] = []

    def task_succeeded(self, args: Args[Any], seconds: float) -> None:
        self.ends.append("succeeded")

    def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
        self.ends.append("failed")

    def task_cancelled(self, args: Args[Any]) -> None:
        self.ends.append("cancelled")


async def outcome(handle: Handle[Any]) -> str:
    """How the handle ended: "completed" or "cancelled"."""
    try:
        await handle
    except asyncio.CancelledError:
        return "cancelled"
    return "completed"


@in_loop
async def test_a_task_that_returned_keeps_its_value_when_cancelled_before_its_worker_resumes() -> None:
    """A task run in its submitter's context has returned: a cancel() now cannot undo it; hooks agree."""
    returning = asyncio.Event()
    heard = Heard()
    sent: Drain[int] = Drain()

    async def answer(args: Args[int]) -> None:
        returning.set()
        args.drain.send(args.input)

    async with Pool(hooks=[heard]) as pool:
        request_id.set("r-1")  # the submitter's context is no longer the pool's
        handle = await pool.submit(Task(answer).with_input(42).drain_to(sent))
        await returning.wait()  # it has returned; its worker has not resumed yet
        handle.cancel()
        got = await outcome(handle)
    assert (got, heard.ends, sent.drain()) == ("completed", ["succeeded"], [42])


@in_loop
async def test_a_task_cancelled_before_its_own_asyncio_task_starts_is_heard_as_cancelled() -> None:
    """Cancelled after its worker took it up but before its asyncio task ran: task_cancelled is heard."""
    first_ending = asyncio.Event()
    heard = Heard()

    async def first(args: Args[None]) -> None:
        first_ending.set()

    async def second(args: Args[None]) -> None:
        await asyncio.Event().wait()

    async with Pool(limit=1, hooks=[heard]) as pool:
        await pool.submit(Task(first))
        request_id.set("r-2")  # the second runs in a context of its own
        handle = await pool.submit(Task(second))
        await first_ending.wait()  # the worker took `second` up at once, in the same step
        assert handle.cancel()
        await outcome(handle)
    assert heard.ends == ["succeeded", "cancelled"]
