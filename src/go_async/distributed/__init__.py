"""Named tasks on workers elsewhere, through Redis streams: Machinery's shape, typed.

Needs the ``redis`` extra (``pip install 'go-async[redis]'``: redis and
pydantic); the core never imports this package. Arguments
and results travel as JSON, never as pickle.

Example::

    # tasks.py, imported by clients and by workers
    registry = Registry()

    @registry.task("add")
    async def add(a: int, b: int) -> int:
        return a + b

    # a client; workers run `python -m go_async.worker tasks:registry --url redis://...`
    async with Remote(registry, url="redis://localhost:6379/0") as remote:
        assert await (await remote.send(add, 1, 2)) == 3
"""

try:
    from ._errors import MessageRejected, RemoteError, TaskRevoked
    from ._registry import Named, Registry, Retry
    from ._remote import Remote
    from ._sent import Call, RemoteHandle
    from ._transport import DeadLetter
    from ._worker import Worker, WorkerStats
except ModuleNotFoundError as _missing:  # pragma: no cover - tested in a subprocess
    if (_missing.name or "").partition(".")[0] not in {"pydantic", "redis"}:
        raise
    msg = "go_async.distributed needs Redis's client and pydantic: pip install 'go-async[redis]'"
    raise ImportError(msg) from _missing

__all__ = [
    "Call",
    "DeadLetter",
    "MessageRejected",
    "Named",
    "Registry",
    "Remote",
    "RemoteError",
    "RemoteHandle",
    "Retry",
    "TaskRevoked",
    "Worker",
    "WorkerStats",
]
