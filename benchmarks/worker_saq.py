"""SAQ's functions for the worker benchmark, and its worker settings.

Workers run ``saq worker_saq.settings --workers N`` in the peers' environment, 10 jobs at
once in each process.
"""

from __future__ import annotations

import importlib
from typing import Any

from worker_common import echo as _echo
from worker_common import redis_url
from worker_common import spin as _spin

_saq = importlib.import_module("saq")


async def echo(context: dict[str, Any], *, value: int) -> int:
    return _echo(value)


async def spin(context: dict[str, Any], *, value: int) -> int:
    return _spin(value)


queue: Any = _saq.Queue.from_url(redis_url())
settings: dict[str, Any] = {"queue": queue, "functions": [echo, spin], "concurrency": 10}
