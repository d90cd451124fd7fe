"""Dramatiq's actors for the worker benchmark: the Redis broker, and the Results middleware
on Redis to get results back, as Dramatiq's guide sets them up.

Workers run ``dramatiq worker_dramatiq --processes N --threads 10`` in the peers' environment.
"""

from __future__ import annotations

import importlib
from typing import Any

from worker_common import echo as _echo
from worker_common import redis_url
from worker_common import spin as _spin

dramatiq = importlib.import_module("dramatiq")
_brokers = importlib.import_module("dramatiq.brokers.redis")
_results = importlib.import_module("dramatiq.results")
_backends = importlib.import_module("dramatiq.results.backends.redis")

broker: Any = _brokers.RedisBroker(url=redis_url())
broker.add_middleware(_results.Results(backend=_backends.RedisBackend(url=redis_url())))
dramatiq.set_broker(broker)


def echo(value: int) -> int:
    return _echo(value)


def spin(value: int) -> int:
    return _spin(value)


# Decorators typed Any would make the functions untyped for mypy: applied as calls instead.
actors: dict[str, Any] = {
    function.__name__: dramatiq.actor(function, actor_name=function.__name__, store_results=True)
    for function in (echo, spin)
}
