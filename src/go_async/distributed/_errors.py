"""The errors a named task's sender sees: the task failed on a worker, or the worker refused it."""

from __future__ import annotations


class RemoteError(Exception):
    """A named task failed on a worker; its error arrives as data, never as a pickled object.

    ``kind`` is the qualified name of the exception's type there
    (``"builtins.ValueError"``), ``remote_traceback`` its traceback text,
    ``attempts`` how many tries the worker made (see ``Retry``).

    Example::

        try:
            await remote.send(charge, order)
        except RemoteError as error:
            log.error("charge failed: %s\\n%s", error.kind, error.remote_traceback)
    """

    def __init__(
        self, task: str, task_id: str, kind: str, message: str, remote_traceback: str = "", attempts: int = 1
    ) -> None:
        self.task = task
        self.task_id = task_id
        self.kind = kind
        self.message = message
        self.remote_traceback = remote_traceback
        self.attempts = attempts
        tries = f" after {attempts} tries" if attempts > 1 else ""
        super().__init__(f"task {task!r} ({task_id}) failed on a worker{tries}: {kind}: {message}")


class MessageRejected(RemoteError):
    """The worker refused to run the task: its name or its arguments did not fit its registry.

    Example::

        except MessageRejected as error:
            log.error("workers run an older registry? %s", error.message)
    """


class TaskRevoked(RemoteError):
    """The task was revoked (``remote.revoke``): dropped before it ran, or cancelled while it ran.

    Example::

        await remote.revoke(handle)
        with contextlib.suppress(TaskRevoked):
            await handle
    """

    def __init__(self, task: str, task_id: str) -> None:
        super().__init__(task, task_id, "revoked", "the task was revoked")

    def __str__(self) -> str:
        return f"task {self.task!r} ({self.task_id}) was revoked"
