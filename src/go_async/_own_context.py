"""A running pool's task whose submit ran in a context of its own: it runs in an asyncio task of that context.

A worker runs in the pool's context. When ``submit`` was called with
context variables set that the pool's context lacks, the task must see
them, so it gets an asyncio task made in its submitter's context, which
its worker awaits in its place.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._calling import own_handle
from ._handle import Handle
from ._runner import Runner


async def in_own_context(
    runner: Runner, workers: set[asyncio.Task[Any]], handle: Handle[Any], me: asyncio.Task[Any]
) -> Any:
    """Run ``handle``'s task through ``runner`` in its own context, for worker ``me``; its value."""
    began: list[bool] = []
    inner = asyncio.get_running_loop().create_task(
        _run_caught(runner, handle, began), name=f"{handle._spec.label} {handle.id}", context=handle._context
    )
    workers.add(inner)  # it runs the family's task: its subscriptions count (see `_listening`)
    try:
        outcome = await inner
    except asyncio.CancelledError:
        # A cancel() that came once the task had ended, before its worker
        # resumed: the task's own outcome stands (the worker takes the cancel
        # back). One before it began: no hook heard of it yet.
        if handle._stopping and inner.done() and not inner.cancelled() and me.cancelling() == 1:
            outcome = inner.result()
        else:
            if not began:
                runner.cancelled(handle._args)
            raise
    finally:
        workers.discard(inner)
    if isinstance(outcome, _Interrupt):
        raise outcome.interrupt
    return outcome


async def _run_caught(runner: Runner, handle: Handle[Any], began: list[bool]) -> Any:
    began.append(True)
    own_handle.set(handle)  # its asyncio task is not its worker: this tells it from others (see `_calling`)
    try:
        return await runner.run(handle._spec, handle._args)
    except (KeyboardInterrupt, SystemExit) as interrupt:
        # Raised out of an asyncio task, it would leave the event loop at once.
        return _Interrupt(interrupt)


class _Interrupt:
    """A KeyboardInterrupt or SystemExit carried out of a task's own asyncio task."""

    __slots__ = ("interrupt",)

    def __init__(self, interrupt: BaseException) -> None:
        self.interrupt = interrupt
