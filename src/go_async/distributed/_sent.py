"""What a client sends and gets back: a ``Call`` (a named task with its arguments) and a ``RemoteHandle``."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from datetime import timedelta
from typing import Any, Generic, TypeVar, cast

from .._checks import timeout_seconds
from ._errors import MessageRejected, RemoteError
from ._registry import Named

R = TypeVar("R")


class Call(Generic[R]):
    """A named task with its arguments, checked and encoded as JSON when it is made.

    ``remote.call(task, *args)`` makes one; ``remote.go``/``ago`` run many.

    Example::

        results = remote.go([remote.call(add, 1, 2), remote.call(add, 3, 4)])  # [3, 7]
    """

    __slots__ = ("arguments", "task")

    def __init__(self, task: Named[..., R], arguments: dict[str, Any]) -> None:
        self.task: Named[..., R] = task
        self.arguments: dict[str, Any] = arguments

    def __repr__(self) -> str:
        return f"<Call {self.task.name!r} {self.arguments!r}>"


class RemoteHandle(Generic[R]):
    """A sent task: ``await handle`` (or ``handle.result(timeout)``) gives its typed result.

    It can be awaited any number of times. ``await handle`` waits at most
    the remote's ``timeout``; ``result(None)`` as long as it takes. A task
    that failed on its worker raises ``RemoteError`` there.

    Example::

        handle = await remote.send(add, 1, 2)
        assert await handle == 3
    """

    __slots__ = ("_reply", "_task", "_timeout", "task_id")

    def __init__(
        self, task: Named[..., R], task_id: str, reply: asyncio.Future[dict[str, Any]], timeout: float
    ) -> None:
        self._task = task
        self._reply = reply
        self._timeout = timeout
        self.task_id: str = task_id

    @property
    def name(self) -> str:
        """The task's registered name."""
        return self._task.name

    def __repr__(self) -> str:
        return f"<RemoteHandle {self.name!r} {self.task_id}>"

    def __await__(self) -> Generator[Any, None, R]:
        return self.result(self._timeout).__await__()

    async def result(self, timeout: float | timedelta | None = None) -> R:  # noqa: ASYNC109 - the wait's own
        """Wait at most ``timeout`` seconds (``None``: as long as it takes) for the result."""
        seconds = timeout_seconds("RemoteHandle.result", timeout)
        async with asyncio.timeout(seconds):
            answer = await asyncio.shield(self._reply)  # a wait that times out leaves it to a later one
        return self._decode(answer)

    def _decode(self, answer: dict[str, Any]) -> R:
        if "ok" in answer:
            return self._task.decode_result(answer["ok"])
        if "rejected" in answer:
            raise MessageRejected(self.name, self.task_id, "rejected", str(answer["rejected"]))
        if not isinstance(answer.get("error"), dict):
            raise RemoteError(self.name, self.task_id, "unknown", repr(answer))
        error = cast("dict[str, object]", answer["error"])
        raise RemoteError(
            self.name,
            self.task_id,
            str(error.get("type")),
            str(error.get("message")),
            str(error.get("traceback", "")),
        )


def check_call(call: object) -> None:
    """Refuse what is not a ``Call``, naming it."""
    if not isinstance(call, Call):
        msg = f"Remote: expected a Call from remote.call(...), got {call!r} ({type(call).__name__})"
        raise TypeError(msg)
