"""PoolStats: a frozen snapshot of what a running pool has done."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a running pool (sub-pools included), from ``pool.stats()``.

    Durations are in seconds, over the latest ended tasks; ``throughput`` is
    tasks ended per second since the pool opened; ``per_tag`` counts the
    submitted tasks that carry each tag. ``dropped_failures`` counts the
    failures nobody retrieved beyond the ones the pool keeps for its block's
    end (see ``RunningPool``). ``retries_refused`` counts the retries that the
    pool's ``RetryBudget`` refused (each ended its task with its last error).
    ``running`` counts the tasks a worker has started: under an ``Adaptive``
    limit, some of them may be waiting for room below ``concurrency_limit``.
    ``retried`` counts the tasks that were tried again, once each however
    many retries they took.

    Example::

        stats = pool.stats()
        log.info("%d running, %d queued, p95 %.3fs", stats.running, stats.queued, stats.p95_duration or 0)
    """

    running: int
    queued: int
    completed: int
    failed: int
    retried: int
    cancelled: int
    throughput: float
    mean_duration: float | None
    p95_duration: float | None
    per_tag: Mapping[str, int]
    dropped_failures: int = 0
    retries_refused: int = 0
    # How many tries may run at once now: the limit, or where an Adaptive one stands.
    concurrency_limit: int | None = None
