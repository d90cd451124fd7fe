"""Settings: the frozen value behind ``Pool``; each ``with_*`` replaces one field."""

from __future__ import annotations

from dataclasses import dataclass

from ._hookset import HookSet
from ._spec import NO_LAYERS, Layers
from ._stage import effective_limit


@dataclass(frozen=True, slots=True)
class Settings:
    """What a pool is configured with; each run reads it when it starts and keeps its own state.

    ``hooks`` are the user's ``Hooks`` objects, ``events`` the same by event
    (made by ``Pool``, which knows the ``Hooks`` base class).
    """

    limit: int | None = None
    queue_size: int | None = None
    layers: Layers = NO_LAYERS
    hooks: tuple[object, ...] = ()
    events: HookSet | None = None

    @property
    def run_limit(self) -> int | None:
        """The limit a run uses now: ``STAGE=test`` forces one task at a time."""
        return effective_limit(self.limit)
