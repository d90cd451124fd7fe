"""The failures of a running pool that nobody retrieved: kept for its block's end, within a bound."""

from __future__ import annotations

import logging
from typing import Any

from ._handle import Handle

log = logging.getLogger("go_async")

# How many failures nobody has retrieved a running pool keeps for its block's end.
FAILURES_KEPT = 100


class Failures:
    """What a running pool raises at its block's end: failed tasks and schedules nobody retrieved.

    A pool that runs for days may see any number of failures; it keeps at
    most ``FAILURES_KEPT`` that nobody has retrieved (a failure retrieved
    later leaves room), and logs each further one at ERROR as it fails,
    counting it in ``dropped``.
    A task whose handle is awaited later still gives its error there.
    """

    __slots__ = ("dropped", "kept", "schedules")

    def __init__(self) -> None:
        self.kept: list[Handle[Any]] = []
        self.dropped = 0
        self.schedules: list[Any] = []

    def keep(self, handle: Handle[Any]) -> None:
        """``handle``'s task failed: keep it unless retrieved, or log it beyond the bound."""
        if handle._retrieved:
            return
        if len(self.kept) >= FAILURES_KEPT:
            # Those retrieved since they failed need no keeping any more.
            self.kept = [kept for kept in self.kept if not kept._retrieved]
        if len(self.kept) < FAILURES_KEPT:
            self.kept.append(handle)
            return
        self.dropped += 1
        log.error(
            "go_async: %r failed and nobody has retrieved it; the pool keeps only %d such failures "
            "for its end, so this one is only logged",
            handle,
            FAILURES_KEPT,
            exc_info=handle._error,
        )

    def raise_at_end(self, total: int, error: BaseException | None) -> None:
        """At the block's end: raise those nobody retrieved, or note them on the block's own ``error``."""
        failures = self._unretrieved()
        if failures and error is None:
            group = ExceptionGroup(
                f"{len(failures)} of {total} tasks failed and nobody awaited their handles", failures
            )
            if self.dropped:
                group.add_note(f"{self.dropped} more failed, nobody retrieved them, and they were logged")
            raise group
        if failures and error is not None:
            count = f"{len(failures)} submitted task" + ("s" if len(failures) > 1 else "")
            error.add_note(f"{count} failed too, and nobody awaited their handles")
            for failure in failures:  # the block's own error is raised instead: logged, or they would be lost
                log.error(
                    "go_async: a task failed and nobody awaited its handle; the block raised %r instead",
                    error,
                    exc_info=failure,
                )

    def _unretrieved(self) -> list[Exception]:
        # The kept ones nobody retrieved since, in submission order, now marked retrieved.
        failed = sorted((h for h in self.kept if not h._retrieved), key=lambda h: h._seq)
        for handle in failed:
            handle._retrieved = True
        errors = [error for h in failed if isinstance(error := h._error, Exception)]
        stopped = [schedule for schedule in self.schedules if not schedule._retrieved]
        return errors + [schedule._failure() for schedule in stopped]
