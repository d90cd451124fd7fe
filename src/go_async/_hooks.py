"""Event hooks: what monitors and plugins hear of a pool, and how one failing hook is kept harmless."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from ._task import Args

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker, CircuitState
    from ._pool import Pool

log = logging.getLogger("go_async")


class Hooks:
    """Override the events you want to hear of; the others cost nothing.

    Hooks are plain (not async) methods called on the event loop as each
    event happens, in the context of the task they are about. Keep them
    quick. A hook that raises is logged on the ``go_async`` logger and the
    run goes on; it never changes a task's outcome. ``task_queued`` and the
    cancellation of a queued task only happen in a running pool.

    Example::

        class CountFailures(Hooks):
            def __init__(self) -> None:
                self.failed = 0

            def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
                self.failed += 1

        Pool(limit=8, hooks=[CountFailures()]).go(tasks)
    """

    def pool_started(self, pool: Pool) -> None:
        """A run of ``go``/``map`` began, or a running pool opened."""

    def pool_closed(self, pool: Pool) -> None:
        """That run, or that running pool, ended: every task has ended too."""

    def task_queued(self, args: Args[Any]) -> None:
        """A task was submitted to a running pool and waits for room."""

    def task_started(self, args: Args[Any]) -> None:
        """A task began its first try."""

    def task_retried(self, args: Args[Any], error: Exception, attempt: int, wait: float) -> None:
        """Try number ``attempt`` failed with ``error``; the next starts in ``wait`` seconds."""

    def task_succeeded(self, args: Args[Any], seconds: float) -> None:
        """A task ended well, ``seconds`` after it started (retries included)."""

    def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
        """A task ended with its final ``error``, ``seconds`` after it started."""

    def task_cancelled(self, args: Args[Any]) -> None:
        """A task was cancelled, running or (in a running pool) still queued."""

    def circuit_changed(self, breaker: CircuitBreaker, state: CircuitState) -> None:
        """A task of this pool moved ``breaker`` to ``state`` (see ``CircuitBreaker``)."""


_EVENTS = (
    "pool_started",
    "pool_closed",
    "task_queued",
    "task_started",
    "task_retried",
    "task_succeeded",
    "task_failed",
    "task_cancelled",
    "circuit_changed",
)


class HookSet:
    """The hooks of a pool, by event: only the methods that a hook overrides are ever called."""

    __slots__ = ("hooks", *_EVENTS)

    hooks: tuple[Hooks, ...]
    pool_started: tuple[Callable[[Pool], object], ...]
    pool_closed: tuple[Callable[[Pool], object], ...]
    task_queued: tuple[Callable[[Args[Any]], object], ...]
    task_started: tuple[Callable[[Args[Any]], object], ...]
    task_retried: tuple[Callable[[Args[Any], Exception, int, float], object], ...]
    task_succeeded: tuple[Callable[[Args[Any], float], object], ...]
    task_failed: tuple[Callable[[Args[Any], Exception, float], object], ...]
    task_cancelled: tuple[Callable[[Args[Any]], object], ...]
    circuit_changed: tuple[Callable[[CircuitBreaker, CircuitState], object], ...]

    @classmethod
    def of(cls, hooks: Iterable[Hooks]) -> HookSet | None:
        """The set for ``hooks``, or ``None`` when there are none: the run then checks nothing."""
        every = tuple(hooks)
        if not every:
            return None
        hook_set = cls()
        hook_set.hooks = every
        for event in _EVENTS:
            default = getattr(Hooks, event)
            overridden = tuple(
                getattr(hook, event) for hook in every if getattr(type(hook), event, default) is not default
            )
            setattr(hook_set, event, overridden)
        return hook_set

    def emit(self, handlers: tuple[Callable[..., object], ...], *event: Any) -> None:
        """Call each of ``handlers`` with ``event``; one that raises is logged, and the rest still run."""
        for handler in handlers:
            try:
                handler(*event)
            except Exception:
                log.exception("go_async: the hook %s raised; the task and the run go on", _name(handler))


def check_hooks(where: str, hooks: object) -> tuple[Hooks, ...]:
    """``hooks`` as a tuple, or a TypeError naming what is not a ``Hooks``."""
    if isinstance(hooks, Hooks) or not isinstance(hooks, Iterable):
        msg = f"{where}: hooks must be an iterable of Hooks, got {hooks!r} ({type(hooks).__name__})"
        raise TypeError(msg)
    checked: list[Hooks] = []
    for index, hook in enumerate(cast("Iterable[object]", hooks)):
        if not isinstance(hook, Hooks):
            msg = f"{where}: hooks[{index}] must be a Hooks instance, got {hook!r} ({type(hook).__name__})"
            raise TypeError(msg)
        checked.append(hook)
    return tuple(checked)


def _name(handler: Callable[..., object]) -> str:
    return getattr(handler, "__qualname__", repr(handler))
