"""What a client sends and gets back: a ``Call`` (a named task with its arguments) and a ``RemoteHandle``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast

from .._checks import seconds, timeout_seconds
from .._flow import FlowError
from ._errors import MessageRejected, RemoteError, TaskRevoked
from ._registry import Named

R = TypeVar("R")


class Call(Generic[R]):
    """A named task with its arguments, checked and encoded as JSON when it is made.

    ``remote.call(task, *args)`` makes one; ``remote.go``/``ago`` run many,
    ``remote.submit`` sends one. ``after(seconds)`` and ``at(when)`` give a
    copy that workers run no sooner than that (a delayed task).

    Example::

        results = remote.go([remote.call(add, 1, 2), remote.call(add, 3, 4)])  # [3, 7]
        handle = await remote.submit(remote.call(remind, user).after(timedelta(hours=1)))
    """

    __slots__ = ("arguments", "delay", "task", "when")

    def __init__(
        self,
        task: Named[..., R],
        arguments: dict[str, Any],
        delay: float | None = None,
        when: datetime | None = None,
    ) -> None:
        self.task: Named[..., R] = task
        self.arguments: dict[str, Any] = arguments
        self.delay: float | None = delay
        self.when: datetime | None = when

    def after(self, delay: float | timedelta) -> Call[R]:
        """A copy that runs ``delay`` seconds after it is sent, or later."""
        return Call(self.task, self.arguments, seconds("Call.after", "delay", delay))

    def at(self, when: datetime) -> Call[R]:
        """A copy that runs at ``when`` (a datetime with its time zone), or later."""
        if not isinstance(when, datetime):
            msg = f"Call.at(when): when must be a datetime, got {when!r} ({type(when).__name__})"
            raise TypeError(msg)
        if when.tzinfo is None:
            msg = f"Call.at(when): when must say its time zone (e.g. tzinfo=UTC), got {when!r}"
            raise ValueError(msg)
        return Call(self.task, self.arguments, when=when)

    def due(self, now: datetime) -> float | None:
        """When it is due (seconds since the epoch), if delayed; ``now`` is the sender's wall clock."""
        if self.when is not None:
            return self.when.timestamp()
        if self.delay is not None:
            return now.timestamp() + self.delay
        return None

    def __repr__(self) -> str:
        later = f" after {self.delay}s" if self.delay is not None else ""
        later += f" at {self.when.isoformat()}" if self.when is not None else ""
        return f"<Call {self.task.name!r} {self.arguments!r}{later}>"


class RemoteHandle(Generic[R]):
    """A sent task (or flow): ``await handle`` (or ``handle.result(timeout)``) gives its typed result.

    It can be awaited any number of times. ``await handle`` waits at most
    the remote's ``timeout`` (from when a delayed task is due);
    ``result(None)`` as long as it takes. A task that failed on its worker
    raises ``RemoteError`` there (``TaskRevoked`` if it was revoked), a
    flow ``FlowError`` naming its step. ``attempts`` says how many tries
    its worker made, once it has ended.

    Example::

        handle = await remote.send(add, 1, 2)
        assert await handle == 3 and handle.attempts == 1
    """

    __slots__ = ("_decode_value", "_reply", "_timeout", "name", "task_id")

    def __init__(
        self,
        name: str,
        task_id: str,
        reply: asyncio.Future[dict[str, Any]],
        timeout: float,
        decode: Callable[[object], R],
    ) -> None:
        self.name: str = name
        self.task_id: str = task_id
        self._reply = reply
        self._timeout = timeout
        self._decode_value = decode

    @property
    def attempts(self) -> int | None:
        """How many tries the task took, once it has ended; ``None`` before."""
        if not self._reply.done() or self._reply.cancelled():
            return None
        attempts = self._reply.result().get("attempts", 1)
        return attempts if isinstance(attempts, int) else 1

    def __repr__(self) -> str:
        return f"<RemoteHandle {self.name!r} {self.task_id}>"

    def __await__(self) -> Generator[Any, None, R]:
        return self.result(self._timeout).__await__()

    async def result(self, timeout: float | timedelta | None = None) -> R:  # noqa: ASYNC109 - the wait's own
        """Wait at most ``timeout`` seconds (``None``: as long as it takes) for the result."""
        seconds = timeout_seconds("RemoteHandle.result", timeout, "timeout")
        async with asyncio.timeout(seconds):
            answer = await asyncio.shield(self._reply)  # a wait that times out leaves it to a later one
        return self._decode(answer)

    def _decode(self, answer: dict[str, Any]) -> R:
        if "ok" in answer:
            return self._decode_value(answer["ok"])
        failure = self._failure(answer)
        if "at" in answer and not answer.get("revoked"):  # a step of a flow failed
            raise FlowError(str(answer["at"]), str(answer.get("step")), failure) from failure
        raise failure

    def _failure(self, answer: dict[str, Any]) -> RemoteError:
        name = str(answer.get("step", self.name))
        if answer.get("revoked"):
            return TaskRevoked(name, self.task_id)
        if "rejected" in answer:
            return MessageRejected(name, self.task_id, "rejected", str(answer["rejected"]))
        if not isinstance(answer.get("error"), dict):
            return RemoteError(name, self.task_id, "unknown", repr(answer))
        error = cast("dict[str, object]", answer["error"])
        attempts = answer.get("attempts", 1)
        return RemoteError(
            name,
            self.task_id,
            str(error.get("type")),
            str(error.get("message")),
            str(error.get("traceback", "")),
            attempts if isinstance(attempts, int) else 1,
        )


def check_call(call: object) -> None:
    """Refuse what is not a ``Call``, naming it."""
    if not isinstance(call, Call):
        msg = f"Remote: expected a Call from remote.call(...), got {call!r} ({type(call).__name__})"
        raise TypeError(msg)
