"""KeyboardInterrupt and SystemExit raised by a task: unwind every task first, then let them go on."""

from __future__ import annotations

import asyncio


class Interrupts:
    """Holds the first interrupt a run's task raised, and cancels the run so that everything unwinds.

    Let KeyboardInterrupt or SystemExit escape a task and asyncio lets it out
    of the event loop at once: the other tasks are then cancelled by
    ``asyncio.run``'s clean-up, where the TaskGroup raises it again and cuts
    that clean-up short, leaving tasks pending. Instead the run keeps it,
    cancels its own asyncio task so that every task unwinds inside the loop,
    and raises it once they have (``reraise``).
    """

    __slots__ = ("_parent", "interrupt")

    def __init__(self) -> None:
        self._parent: asyncio.Task[object] | None = asyncio.current_task()
        self.interrupt: BaseException | None = None

    def catch(self, interrupt: BaseException) -> None:
        """A task raised ``interrupt``: cancel the run, and unwind the task's worker too."""
        if self._parent is None:
            raise interrupt
        if self.interrupt is None:
            self.interrupt = interrupt
            self._parent.cancel()
        raise asyncio.CancelledError

    def reraise(self) -> None:
        """The run was cancelled and has unwound: raise the interrupt if that was ours, else return."""
        if self.interrupt is not None:
            if self._parent is not None:
                self._parent.uncancel()
            raise self.interrupt from None
