"""taskiq's tasks for the worker benchmark: taskiq-redis's stock ``RedisStreamBroker`` with
its ``RedisAsyncResultBackend``.

Workers run ``taskiq worker worker_taskiq:broker --workers N --max-async-tasks 10`` in the
peers' environment.
"""

from __future__ import annotations

import importlib
from typing import Any

from worker_common import echo as _echo
from worker_common import redis_url
from worker_common import spin as _spin

_taskiq_redis = importlib.import_module("taskiq_redis")

broker: Any = _taskiq_redis.RedisStreamBroker(url=redis_url()).with_result_backend(
    _taskiq_redis.RedisAsyncResultBackend(redis_url(), result_ex_time=600)
)


async def echo(value: int) -> int:
    return _echo(value)


async def spin(value: int) -> int:
    return _spin(value)


tasks: dict[str, Any] = {
    function.__name__: broker.task(task_name=function.__name__)(function) for function in (echo, spin)
}
