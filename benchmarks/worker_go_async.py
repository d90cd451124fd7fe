"""go_async's tasks for the worker benchmark (``workers.py``), on its public API only.

Workers run ``python -m go_async.worker benchmarks.worker_go_async:registry --url ...``.
"""

from __future__ import annotations

from go_async.distributed import Registry
from worker_common import echo as _echo
from worker_common import spin as _spin

registry = Registry()


@registry.task("echo")
async def echo(value: int) -> int:
    return _echo(value)


@registry.task("spin")
async def spin(value: int) -> int:
    return _spin(value)
