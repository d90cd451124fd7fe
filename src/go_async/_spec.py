"""The records behind a task: what it runs (``Spec``) and the layers it runs through (``Layers``).

``Task`` (in ``_task``) is the typed, public face of a ``Spec``; the task
runner (in ``_runner``) reads a ``Spec`` and composes its ``Layers`` with the
pool's. Neither record knows how a layer works: each field is a value owned
by the layer's own module.
"""

from __future__ import annotations

import functools
import inspect
import reprlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ._adaptive import Adaptive
from ._breaker import CircuitBreaker
from ._drain import Drain
from ._rate import RateLimit
from ._retry import RetryPolicy
from ._retry_budget import RetryBudget

# What a middleware is, to the records and the runner: an async callable of
# (args, call_next). Its typed protocol, `Middleware`, lives with `Args`.
MiddlewareFn = Callable[[Any, Callable[[], Awaitable[Any]]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Layers:
    """The layers a task runs through, outermost first: middleware, breaker, retry, rate limit, timeout.

    A task has one, a pool has one; the runner lays the task's inside the
    pool's (middleware) or in place of the pool's (retry, timeout).
    """

    middleware: tuple[MiddlewareFn, ...] = ()
    breaker: CircuitBreaker | None = None
    retry: RetryPolicy | None = None
    rate: RateLimit | None = None
    timeout: float | None = None
    # A pool's adaptive limit on the tries running at once (a pool's only: see `Adaptive`).
    adaptive: Adaptive | None = None
    # A pool's cap on its tasks' retries (a pool's only: see `RetryBudget`).
    budget: RetryBudget | None = None


NO_LAYERS = Layers()


@dataclass(frozen=True, slots=True)
class Spec:
    """What every copy of a task that differs only by its input shares.

    Keeping it apart makes ``with_input``, which runs once per task in the hot
    path of every pool, a copy of two references.
    """

    fn: Callable[[Any], Awaitable[Any] | Any]
    is_async: bool
    drain: Drain[Any] | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    priority: int = 0
    layers: Layers = NO_LAYERS
    # An async function with no layer around it but a retry (without a time
    # budget), which only a failure enters: a worker awaits it directly, unless its pool's retry
    # budget must count it (see `Runner.budgeted`). Derived, so that the hot path reads one field.
    plain: bool = field(init=False)
    # The task's name, else its function's, for logs; and the name of the
    # asyncio task that runs it, for debuggers and asyncio's introspection.
    # Derived once, as workers rename themselves for each task.
    title: str = field(init=False)
    label: str = field(init=False)

    def __post_init__(self) -> None:
        layers = self.layers
        alone = not layers.middleware and layers.breaker is None and layers.rate is None
        unbudgeted = layers.retry is None or layers.retry.within is None
        object.__setattr__(self, "plain", self.is_async and alone and layers.timeout is None and unbudgeted)
        object.__setattr__(self, "title", self.name or describe(self.fn))
        object.__setattr__(self, "label", f"go_async {self.title}")

    def describe(self, *given: str) -> str:
        """What the spec holds, for ``Task``'s repr: the function first, then ``given``, then the rest."""
        layers = self.layers
        fields = {
            "drain": repr(self.drain) if self.drain is not None else "",
            "retry": str(layers.retry) if layers.retry is not None else "",
            "timeout": f"{layers.timeout}s" if layers.timeout is not None else "",
            "name": repr(self.name) if self.name is not None else "",
            "tags": repr(self.tags) if self.tags else "",
            "priority": str(self.priority) if self.priority else "",
            "middleware": str([describe(each) for each in layers.middleware]) if layers.middleware else "",
            "rate": repr(layers.rate) if layers.rate is not None else "",
            "breaker": repr(layers.breaker.name) if layers.breaker is not None else "",
        }
        shown = [f"{key}={text}" for key, text in fields.items() if text]
        return ", ".join([describe(self.fn), *filter(None, given), *shown])


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine: an ``async def``, or an object with an async ``__call__``."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(call)


def is_plain_def(fn: object) -> bool:
    """Whether ``fn`` is clearly a sync ``def`` (or a partial of one, or an object whose ``__call__`` is one).

    Such a function would run on the event loop, blocking it, and its result
    cannot be awaited. A lambda, or a def wrapping an async function
    (``functools.wraps``), may return an awaitable: those are not refused.
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return False  # marked async though its class's __call__ is a def: an AsyncMock
    if inspect.ismethod(fn):
        fn = fn.__func__
    if not inspect.isfunction(fn):
        if inspect.isroutine(fn) or isinstance(fn, type):
            return False  # a builtin or a class: nothing is clear about what it returns
        call = getattr(type(fn), "__call__", None)  # noqa: B004 - the class's __call__, not a callable check
        return inspect.isfunction(call) and _sync_def(call)
    return _sync_def(fn)


def _sync_def(fn: Any) -> bool:
    if inspect.iscoroutinefunction(inspect.unwrap(fn)) or inspect.iscoroutinefunction(fn):
        return False
    name: str = fn.__name__
    return name != "<lambda>"


def describe(fn: Callable[..., Any]) -> str:
    """A function's qualified name, for logs and reprs; the repr of anything else."""
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else repr(fn)


# A value's repr in a note or a log line: containers cut short by reprlib
# (without building the whole repr), anything else cut at the end.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 2, 60, 60, 40
_SHORT_MAX = 100


def short_repr(value: object) -> str:
    """``repr(value)``, at most 100 characters: for notes and logs, which must stay small."""
    text = _SHORT.repr(value)
    return text if len(text) <= _SHORT_MAX else f"{text[: _SHORT_MAX - 3]}..."


def sync_fn(fn: object) -> str:
    """The error text for a plain ``def`` given where an async function is needed."""
    return (
        f"fn must be an async function (async def), got {fn!r}, a plain def:"
        " run on the event loop it would block it, and its result cannot be awaited"
    )
