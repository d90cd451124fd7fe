"""go_async: a typed worker pool for asyncio, with retries and typed drains.

Example::

    from go_async import Args, Drain, Pool, Task

    out: Drain[int] = Drain()

    async def square(args: Args[int]) -> None:
        args.drain.send(args.input**2)

    Pool(limit=8).go(Task(square).with_input(n).drain_to(out) for n in range(10))
    assert sorted(out.drain()) == [n**2 for n in range(10)]
"""

from ._breaker import CircuitBreaker, CircuitOpenError, CircuitState
from ._clock import Clock, ManualClock
from ._drain import Drain
from ._flow import Flow, FlowError, Step, call, group, prepend, step
from ._hooks import Hooks
from ._middleware import CallNext, CatchErrors, LogTasks, Middleware, Timing
from ._pool import Pool
from ._rate import RateLimit
from ._schedule import Schedule
from ._service import Handle, PoolStats, QueueFull, RunningPool
from ._task import Args, Task
from ._testing import WaitLog, set_testing
from ._topic import Subscription, Topic

__all__ = [
    "Args",
    "CallNext",
    "CatchErrors",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Clock",
    "Drain",
    "Flow",
    "FlowError",
    "Handle",
    "Hooks",
    "LogTasks",
    "ManualClock",
    "Middleware",
    "Pool",
    "PoolStats",
    "QueueFull",
    "RateLimit",
    "RunningPool",
    "Schedule",
    "Step",
    "Subscription",
    "Task",
    "Timing",
    "Topic",
    "WaitLog",
    "call",
    "group",
    "prepend",
    "set_testing",
    "step",
]
