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

import inspect
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

# How many first inputs a run's fingerprint is made of (see `Resume`).
FINGERPRINT_INPUTS = 16
# A run saves its progress at most this often (and always when it ends).
SAVE_EVERY = 0.05


@dataclass(frozen=True)
class RunProgress:
    """How far a run got: ``started`` positions passed, of which ``unfinished`` had not ended.

    ``run_id`` names the inputs: the ``run_id=`` given, or a fingerprint of
    the first inputs (their functions and reprs). A run refuses progress saved for another.

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

    def save(self, progress: RunProgress, /) -> None:
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
            try:
                db = sqlite3.connect(self.path, isolation_level=None)
            except sqlite3.Error as error:  # a directory, a missing folder
                msg = f"checkpoint {str(self.path)!r} cannot be opened: {error}"
                raise ValueError(msg) from error
            try:
                self._prepare(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _prepare(self, db: sqlite3.Connection) -> None:
        # Read first: a file that is not ours is refused before anything in it changes.
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError as error:  # unreadable
            msg = f"checkpoint {str(self.path)!r} cannot be opened: {error}"
            raise ValueError(msg) from error
        except sqlite3.DatabaseError as error:
            msg = f"checkpoint {str(self.path)!r} is not a go_async checkpoint: {error}"
            raise ValueError(msg) from error
        if tables - {"go_async_progress", "go_async_values"}:
            msg = f"checkpoint {str(self.path)!r} is another database: tables {sorted(tables)}"
            raise ValueError(msg)
        db.execute("PRAGMA synchronous = OFF")
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS go_async_progress"
                " (id INTEGER PRIMARY KEY CHECK (id = 0), run_id TEXT, started INTEGER, unfinished TEXT)"
            )
            # map's values by input position (pickled): a resumed map returns them.
            db.execute(
                "CREATE TABLE IF NOT EXISTS go_async_values (position INTEGER PRIMARY KEY, value BLOB)"
            )
        except sqlite3.OperationalError as error:  # a new file in a place that cannot take it
            msg = f"checkpoint {str(self.path)!r} cannot be written: {error}"
            raise ValueError(msg) from error

    def writable(self) -> None:
        """Raise ``ValueError`` unless the file takes a write: a run asks before it starts, not at its end."""
        try:
            self._open().execute("PRAGMA user_version = 0")  # the file is ours: this changes nothing
        except sqlite3.OperationalError as error:
            msg = f"checkpoint {str(self.path)!r} cannot be written: {error}"
            raise ValueError(msg) from error

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
        """The values a map kept, by input position (pickled); a ``go``'s progress keeps none."""
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
# What map and amap take: a file, as a map keeps its values beside its progress.
MapCheckpointChoice = SqliteCheckpoint | str | os.PathLike[str]


def checkpoint_of(where: str, choice: object) -> Checkpoint:
    """The ``Checkpoint`` that ``checkpoint=choice`` names: a path gives a ``SqliteCheckpoint``."""
    if isinstance(choice, str | os.PathLike):
        if not os.fspath(choice):
            msg = f"{where}: checkpoint must name a file, got {choice!r}"
            raise ValueError(msg)
        return SqliteCheckpoint(choice)  # pyright: ignore[reportUnknownArgumentType]
    if isinstance(choice, Checkpoint):
        if inspect.iscoroutinefunction(choice.load) or inspect.iscoroutinefunction(choice.save):
            msg = f"{where}: a checkpoint's load and save are plain methods, not async ones: {choice!r}"
            raise TypeError(msg)
        return choice
    kind = type(choice).__name__
    msg = f"{where}: checkpoint must be a file path or a Checkpoint (load/save), got {choice!r} ({kind})"
    raise TypeError(msg)
