"""The hooks of a run, by event: only the methods that a hook overrides are ever called.

This module knows the events' names and how to call their handlers safely;
the ``Hooks`` base class that users subclass lives beside ``Pool``, since
its pool events hand over the ``Pool``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

log = logging.getLogger("go_async")

EVENTS = (
    "pool_started",
    "pool_closed",
    "task_queued",
    "task_started",
    "task_retried",
    "task_succeeded",
    "task_failed",
    "task_cancelled",
    "circuit_changed",
    "retry_refused",
    "limit_changed",
)

Handlers = tuple[Callable[..., object], ...]


class HookSet:
    """A run's hooks as one tuple of handlers per event, empty for events nobody overrides."""

    __slots__ = ("hooks", *EVENTS)

    hooks: tuple[object, ...]
    pool_started: Handlers
    pool_closed: Handlers
    task_queued: Handlers
    task_started: Handlers
    task_retried: Handlers
    task_succeeded: Handlers
    task_failed: Handlers
    task_cancelled: Handlers
    circuit_changed: Handlers
    retry_refused: Handlers
    limit_changed: Handlers

    @classmethod
    def of(cls, hooks: Iterable[object], base: type) -> HookSet | None:
        """The set for ``hooks``, whose methods count where they differ from ``base``'s; ``None`` if empty."""
        every = tuple(hooks)
        if not every:
            return None
        hook_set = cls()
        hook_set.hooks = every
        for event in EVENTS:
            default = getattr(base, event)
            overridden = tuple(
                getattr(hook, event) for hook in every if getattr(type(hook), event, default) is not default
            )
            setattr(hook_set, event, overridden)
        return hook_set

    @property
    def times_tasks(self) -> bool:
        """Whether any handler hears how long a task took (so a run must time its tasks)."""
        return bool(self.task_succeeded or self.task_failed)


def emit(handlers: Handlers, *event: Any) -> None:
    """Call each of ``handlers`` with ``event``; one that raises is logged, and the rest still run."""
    for handler in handlers:
        try:
            handler(*event)
        except Exception:
            raised(handler)


def caller(handlers: Handlers) -> Callable[..., object] | None:
    """One callable for ``handlers``: ``None`` for none, the handler itself for one, else ``emit``'s.

    For a hot path: the caller wraps a single handler in ``try`` itself and
    passes what it raised to ``raised``, saving ``emit``'s frame per event.
    """
    if not handlers:
        return None
    return handlers[0] if len(handlers) == 1 else partial(emit, handlers)


def raised(handler: Callable[..., object]) -> None:
    """Log that ``handler`` raised (call it in an ``except`` block); the task and the run go on."""
    log.exception("go_async: the hook %s raised; the task and the run go on", _name(handler))


def _name(handler: Callable[..., object]) -> str:
    return getattr(handler, "__qualname__", repr(handler))
