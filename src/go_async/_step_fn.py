"""A flow step's task function: what it calls, its fixed arguments, whether the input goes first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from ._spec import describe, is_plain_def, sync_fn
from ._task import Args, Task


def step_task(
    where: str,
    fn: object,
    body: Callable[[Args[Any]], Awaitable[Any]],
    fixed: tuple[object, ...],
    *,
    takes_input: bool,
) -> Task[Any, Any, Any]:
    if not callable(fn):
        msg = f"{where}(fn): fn must be an async function, got {fn!r} ({type(fn).__name__})"
        raise TypeError(msg)
    if is_plain_def(fn):
        # Run on the event loop, it would block it, then fail the step after its side effects.
        raise TypeError(f"{where}(fn): {sync_fn(fn)}")
    return Task(cast("Callable[[Args[Any]], Awaitable[None]]", StepFn(fn, body, fixed, takes_input)))


class StepFn:
    """A step's task function: it returns what the step's function returned.

    It keeps what the step calls, with which fixed arguments, and whether
    the previous result goes first, so that a flow can also be sent to
    workers as data.
    """

    __slots__ = ("_body", "fixed", "fn", "takes_input")

    def __init__(
        self,
        fn: Callable[..., Any],
        body: Callable[[Args[Any]], Awaitable[Any]],
        fixed: tuple[object, ...],
        takes_input: bool,
    ) -> None:
        self.fn = fn
        self._body = body
        self.fixed = fixed
        self.takes_input = takes_input

    async def __call__(self, args: Args[Any]) -> Any:
        return await self._body(args)

    def __repr__(self) -> str:
        return describe(self.fn)
