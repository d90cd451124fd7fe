"""The named tasks of the distributed benchmark: run by worker processes and by a local pool alike."""

from __future__ import annotations

from go_async.distributed import Registry

registry = Registry()

# About a millisecond of pure-Python work on the machine the results were measured on.
SPIN_STEPS = 20_000


@registry.task("echo")
async def echo(value: int) -> int:
    return value


@registry.task("spin")
async def spin(value: int) -> int:
    total = value
    for step in range(SPIN_STEPS):
        total = (total + step * step) % 1_000_003
    return total
