"""go_async: a typed worker pool for asyncio, with retries and typed drains.

Example::

    from go_async import Args, Drain, Pool, Task

    out: Drain[int] = Drain()

    async def square(args: Args[int]) -> None:
        args.drain.send(args.input**2)

    Pool(limit=8).go(Task(square).with_input(n).drain_to(out) for n in range(10))
    assert sorted(out.drain()) == [n**2 for n in range(10)]
"""

from ._adaptive import Adaptive
from ._breaker import CircuitBreaker, CircuitOpenError, CircuitState
from ._checkpoint import Checkpoint, RunProgress, SqliteCheckpoint
from ._clock import Clock, ManualClock
from ._drain import Drain
from ._flow import Flow, FlowError, Step, call, group, prepend, step
from ._handle import Handle
from ._log_tasks import LogTasks
from ._middleware import CatchErrors, Timing
from ._pool import Hooks, Pool
from ._rate import RateLimit
from ._retry_budget import RetryBudget
from ._running import QueueFull, RunningPool
from ._schedule import Schedule
from ._stats import PoolStats
from ._task import Args, CallNext, Middleware, Task, TaskPool
from ._testing import WaitLog, set_testing
from ._topic import Subscription, Topic

__all__ = [
    "Adaptive",
    "Args",
    "CallNext",
    "CatchErrors",
    "Checkpoint",
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
    "RetryBudget",
    "RunProgress",
    "RunningPool",
    "Schedule",
    "SqliteCheckpoint",
    "Step",
    "Subscription",
    "Task",
    "TaskPool",
    "Timing",
    "Topic",
    "WaitLog",
    "call",
    "group",
    "prepend",
    "set_testing",
    "step",
]
