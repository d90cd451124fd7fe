"""Celery's tasks for the worker benchmark: Redis as broker and result backend.

Workers run ``celery -A worker_celery worker --pool prefork --concurrency N`` in the peers'
environment: N child processes, each running one task at a time (prefork's unit of work),
each reserving up to 10 (``worker_prefetch_multiplier``).
"""

from __future__ import annotations

import importlib
from typing import Any

from worker_common import echo as _echo
from worker_common import redis_url
from worker_common import spin as _spin

_celery = importlib.import_module("celery")

app: Any = _celery.Celery("worker_celery", broker=redis_url(), backend=redis_url())
app.conf.update(
    worker_prefetch_multiplier=10,
    result_expires=600,
    broker_connection_retry_on_startup=True,
)


def echo(value: int) -> int:
    return _echo(value)


def spin(value: int) -> int:
    return _spin(value)


tasks: dict[str, Any] = {
    function.__name__: app.task(name=function.__name__)(function) for function in (echo, spin)
}
