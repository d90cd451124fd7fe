"""arq's functions for the worker benchmark, and its ``WorkerSettings``.

Each worker process is ``python worker_arq.py`` in the peers' environment: arq's
``run_worker(WorkerSettings)`` as its docs show, with logging at WARNING (arq's own command
line logs every job at INFO). Up to 10 jobs at once; it polls the queue every
``poll_interval()`` seconds.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, ClassVar

from worker_common import echo as _echo
from worker_common import poll_interval, redis_url
from worker_common import spin as _spin

_connections = importlib.import_module("arq.connections")
_worker = importlib.import_module("arq.worker")


async def echo(context: dict[str, Any], value: int) -> int:
    return _echo(value)


async def spin(context: dict[str, Any], value: int) -> int:
    return _spin(value)


def settings() -> Any:
    return _connections.RedisSettings.from_dsn(redis_url())


class WorkerSettings:
    functions: ClassVar[list[Any]] = [_worker.func(echo, name="echo"), _worker.func(spin, name="spin")]
    redis_settings = settings()
    max_jobs = 10
    poll_delay = poll_interval()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    _worker.run_worker(WorkerSettings)
