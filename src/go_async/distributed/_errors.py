"""The errors a named task's sender sees: the task failed on a worker, or the worker refused it."""

from __future__ import annotations


class RemoteError(Exception):
    """A named task failed on a worker; its error arrives as data, never as a pickled object.

    ``kind`` is the qualified name of the exception's type there
    (``"builtins.ValueError"``), ``remote_traceback`` its traceback text.

    Example::

        try:
            await remote.send(charge, order)
        except RemoteError as error:
            log.error("charge failed: %s\\n%s", error.kind, error.remote_traceback)
    """

    def __init__(self, task: str, task_id: str, kind: str, message: str, remote_traceback: str = "") -> None:
        self.task = task
        self.task_id = task_id
        self.kind = kind
        self.message = message
        self.remote_traceback = remote_traceback
        super().__init__(f"task {task!r} ({task_id}) failed on a worker: {kind}: {message}")


class MessageRejected(RemoteError):
    """The worker refused to run the task: its name or its arguments did not fit its registry.

    Example::

        except MessageRejected as error:
            log.error("workers run an older registry? %s", error.message)
    """
