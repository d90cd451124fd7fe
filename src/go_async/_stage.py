"""Settings read from the environment when a run starts."""

from __future__ import annotations

import os

from . import _explore


def is_test_stage() -> bool:
    """Whether ``STAGE=test`` (any case, surrounding spaces ignored) is set."""
    return os.environ.get("STAGE", "").strip().casefold() == "test"


def effective_limit(limit: int | None) -> int | None:
    """The limit a run uses: ``STAGE=test`` forces one task at a time, unless interleavings are explored."""
    return 1 if is_test_stage() and _explore.active is None else limit
