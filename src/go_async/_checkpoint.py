"""Resumable runs: what a run of ``go``/``ago`` records of its progress, and where it keeps it.

A run pulls its tasks in order, so its progress is two things: how many
positions it has passed (``started``), and which of those have not ended
(``unfinished``: the tasks running, at most ``limit``). That is O(limit)
however many tasks there are, and a run that resumes from it skips every
position below ``started`` but the unfinished ones. A task that failed has
ended too: its error was reported by the run it failed in, and it does not
run again. A task cancelled with its run, or stopped by an interrupt, has not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from ._checks import label
from ._supply import is_async_only

T = TypeVar("T")

logger = logging.getLogger("go_async")

# How many first inputs a run's fingerprint is made of, by their reprs.
FINGERPRINT_INPUTS = 16
# A run saves its progress at most this often (and always when it ends).
SAVE_EVERY = 0.05


@dataclass(frozen=True)
class RunProgress:
    """How far a run got: ``started`` positions passed, of which ``unfinished`` had not ended.

    ``run_id`` names the inputs: the ``run_id=`` given, or a fingerprint of
    the first inputs' reprs. A run refuses progress saved for another.

    Example::

        with SqliteCheckpoint("run.sqlite") as kept:
            progress = kept.load()
        if progress is not None:
            print(f"{progress.started} passed, {len(progress.unfinished)} of them to run again")
    """

    run_id: str
    started: int
    unfinished: frozenset[int]


@runtime_checkable
class Checkpoint(Protocol):
    """Where a resumable run keeps its ``RunProgress``: ``go(tasks, checkpoint=...)`` takes one.

    ``load`` returns what was saved last (``None`` if nothing was), and
    ``save`` replaces it. A run calls ``save`` at most every 50 ms while
    tasks end, and once as it ends; both are called on the event loop, so
    keep them quick. ``SqliteCheckpoint`` is the one a file path gives.

    Example::

        class InMemory:
            def __init__(self) -> None:
                self.progress: RunProgress | None = None

            def load(self) -> RunProgress | None:
                return self.progress

            def save(self, progress: RunProgress) -> None:
                self.progress = progress
    """

    def load(self) -> RunProgress | None:
        """The progress saved last, or ``None``."""
        ...

    def save(self, progress: RunProgress) -> None:
        """Keep ``progress`` in place of what was saved before."""
        ...


class SqliteCheckpoint:
    """A ``Checkpoint`` in one SQLite file (the standard library's ``sqlite3``); one row, O(limit) bytes.

    Each save is one transaction in WAL mode without a sync to disk: it
    survives the process being killed, not the machine losing power. It
    holds the file open from its first ``load`` or ``save`` until ``close``
    (or the end of a ``with`` block); a run given a path closes its own. A file
    that is not a SQLite database, or a database with tables of its own, is
    refused with a ``ValueError`` naming it.

    Example::

        Pool(limit=8).go(tasks, checkpoint=SqliteCheckpoint("run.sqlite"))
    """

    __slots__ = ("_db", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path: Path = Path(path)
        self._db: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, isolation_level=None)
            try:
                self._prepare(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _prepare(self, db: sqlite3.Connection) -> None:
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            msg = f"checkpoint {str(self.path)!r} is not a go_async checkpoint: {error}"
            raise ValueError(msg) from error
        if tables - {"go_async_progress", "go_async_values"}:
            msg = f"checkpoint {str(self.path)!r} is another database: tables {sorted(tables)}"
            raise ValueError(msg)
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS go_async_progress"
            " (id INTEGER PRIMARY KEY CHECK (id = 0), run_id TEXT, started INTEGER, unfinished TEXT)"
        )
        # map's values by input position (pickled): a resumed map returns them.
        db.execute("CREATE TABLE IF NOT EXISTS go_async_values (position INTEGER PRIMARY KEY, value BLOB)")

    def load(self) -> RunProgress | None:
        """The progress saved last in the file, or ``None`` for a new or empty file."""
        row = self._open().execute("SELECT run_id, started, unfinished FROM go_async_progress").fetchone()
        if row is None:
            return None
        try:
            run_id, started, unfinished = row
            positions = frozenset(int(p) for p in json.loads(unfinished))
            return RunProgress(str(run_id), int(started), positions)
        except (TypeError, ValueError) as error:
            msg = f"checkpoint {str(self.path)!r} holds progress it cannot read: {row!r}"
            raise ValueError(msg) from error

    def save(self, progress: RunProgress, values: dict[int, bytes] | None = None) -> None:
        """Replace the saved progress, with ``values`` (a map's, pickled) kept too, in one transaction."""
        db = self._open()
        row = (progress.run_id, progress.started, json.dumps(sorted(progress.unfinished)))
        with db:  # values and progress together: progress never says more than is kept
            db.execute("BEGIN")
            if values:
                db.executemany("INSERT OR REPLACE INTO go_async_values VALUES (?, ?)", values.items())
            db.execute("INSERT OR REPLACE INTO go_async_progress VALUES (0, ?, ?, ?)", row)

    def values(self) -> dict[int, bytes]:
        """The values a map kept, by input position (pickled)."""
        return dict(self._open().execute("SELECT position, value FROM go_async_values"))

    def __enter__(self) -> SqliteCheckpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (a later ``load`` or ``save`` opens it again); ``with`` closes it too."""
        if self._db is not None:
            self._db.close()
            self._db = None


CheckpointChoice = Checkpoint | str | os.PathLike[str]


def checkpoint_of(where: str, choice: object) -> Checkpoint:
    """The ``Checkpoint`` that ``checkpoint=choice`` names: a path gives a ``SqliteCheckpoint``."""
    if isinstance(choice, str | os.PathLike):
        return SqliteCheckpoint(choice)  # pyright: ignore[reportUnknownArgumentType]
    if isinstance(choice, Checkpoint):
        return choice
    kind = type(choice).__name__
    msg = f"{where}: checkpoint must be a file path or a Checkpoint (load/save), got {choice!r} ({kind})"
    raise TypeError(msg)


class Resume:
    """One run's progress: it skips what an earlier run finished, and hears of each task that ends.

    The run tells it of each task that ended (``succeeded``, ``ended``), by
    the task's index in the run's own order, its index among the tasks it was
    handed; ``_positions`` maps each running one's to its position in the inputs.
    """

    def __init__(self, where: str, checkpoint: object, run_id: str | None) -> None:
        self._checkpoint = checkpoint_of(where, checkpoint)
        kept = self._checkpoint
        self._opened = kept if isinstance(kept, SqliteCheckpoint) and kept is not checkpoint else None
        self._where = where
        self._given = None if run_id is None else label(where, "run_id", run_id)
        try:
            self._before = self._checkpoint.load()
        except BaseException:
            if self._opened is not None:  # a file it cannot read: closed before the error goes up
                self._opened.close()
            raise
        self._run_id = ""
        self._next = 0  # the position the inputs are at
        self._handed = 0  # the tasks handed to the run so far
        self._positions: dict[int, int] = {}  # a running task's index in the run -> its position
        self._timer: asyncio.TimerHandle | None = None

    def _check(self, firsts: list[Any]) -> None:
        # Name the inputs, and refuse progress saved for others, before anything runs (and
        # before anything is saved: a refused run leaves the checkpoint as it was).
        if self._given is not None:
            run_id = self._given
        else:
            digest = hashlib.sha256("\n".join(map(repr, firsts)).encode()).hexdigest()
            run_id = f"fingerprint:{digest[:32]}"
        before = self._before
        if before is not None and before.run_id != run_id:
            kept = self._checkpoint
            name = str(kept.path) if isinstance(kept, SqliteCheckpoint) else kept
            msg = (
                f"{self._where}: checkpoint {name!r} holds the progress of other inputs"
                f" ({before.run_id!r}, not {run_id!r}):"
                " use a new checkpoint, or pass the run_id= of the run it was made for"
            )
            raise ValueError(msg)
        self._run_id = run_id

    def _hand(self, position: int) -> bool:
        # Whether the task at `position` runs now (else an earlier run finished it).
        before = self._before
        if before is not None and position < before.started and position not in before.unfinished:
            return False
        self._positions[self._handed] = position
        self._handed += 1
        if self._timer is None:
            self._changed()
        return True

    def tasks(self, tasks: Iterable[T] | AsyncIterable[T]) -> Iterable[T] | AsyncIterable[T]:
        """``tasks`` without those an earlier run finished; async if ``tasks`` is."""
        if is_async_only(tasks):
            return self._async_tasks(tasks)  # type: ignore[arg-type]
        return self._sync_tasks(tasks)  # type: ignore[arg-type]

    def _sync_tasks(self, tasks: Iterable[T]) -> Iterator[T]:
        items = iter(tasks)
        firsts = list(islice(items, FINGERPRINT_INPUTS))
        self._check(firsts)
        if self._before is None:  # nothing to skip: hand every task
            positions = self._positions
            for item in chain(firsts, items):
                positions[self._handed] = self._handed
                self._handed = self._next = self._handed + 1
                if self._timer is None:
                    self._changed()
                yield item
            return
        for item in chain(firsts, items):
            position = self._next
            self._next += 1
            if self._hand(position):
                yield item

    async def _async_tasks(self, tasks: AsyncIterable[T]) -> AsyncIterator[T]:
        items = aiter(tasks)
        try:
            firsts: list[T] = []
            async for item in items:
                firsts.append(item)
                if len(firsts) == FINGERPRINT_INPUTS:
                    break
            self._check(firsts)
            for item in firsts:
                self._next += 1
                if self._hand(self._next - 1):
                    yield item
            async for item in items:
                self._next += 1
                if self._hand(self._next - 1):
                    yield item
        finally:
            close = getattr(items, "aclose", None)
            if close is not None:
                await close()

    def succeeded(self, index: int, value: object) -> None:
        """The task at ``index`` in the run's order ended well (the run's ``keep``)."""
        self._positions.pop(index, None)
        if self._timer is None:
            self._changed()

    def ended(self, index: int) -> None:
        """The task at ``index`` in the run's order ended: it will not run again."""
        self._positions.pop(index, None)
        if self._timer is None:
            self._changed()

    def _changed(self) -> None:
        # Saved within SAVE_EVERY of a change, in one write for every change until then.
        self._timer = asyncio.get_running_loop().call_later(SAVE_EVERY, self._save_soon)

    def _save_soon(self) -> None:
        # A failed save is tried again by the next; the caller hears of the last one's (`close`).
        try:
            self.save()
        except Exception:
            logger.warning("go_async: saving the checkpoint failed; the next save tries again", exc_info=True)

    def progress(self) -> RunProgress:
        """Where the run is now: positions passed, and those not ended (running, or not reached yet)."""
        before = self._before
        unfinished = set(self._positions.values())
        started = self._next
        if before is not None:
            unfinished.update(p for p in before.unfinished if p >= self._next)
            started = max(started, before.started)
        return RunProgress(self._run_id, started, frozenset(unfinished))

    def save(self) -> None:
        """Save the progress now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._run_id:  # named once the first inputs were read
            self._checkpoint.save(self.progress())

    def close(self, ending: BaseException | None = None) -> None:
        """Save, and close a file the run opened; a failed save is a note on ``ending``, if given."""
        try:
            self.save()
        except Exception as failed:
            if ending is None:
                raise
            ending.add_note(f"go_async: saving the checkpoint failed too: {failed!r}")
        finally:
            if self._opened is not None:
                self._opened.close()
