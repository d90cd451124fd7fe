"""A resumable ``map``: its progress as ``go``'s, and every value kept, so a resumed run returns them all.

A map's list holds a value for every input, so unlike ``go`` it keeps each
value in its checkpoint (pickled, in the SQLite file beside the progress,
written in the same transaction), and a failed call runs again when the map
is resumed: its value is still wanted. The values make the file grow with
the inputs; the progress itself stays O(limit).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from ._checkpoint import RunProgress, SqliteCheckpoint
from ._resume import Resume


class ResumeMap(Resume):
    """One resumable map: what an earlier run kept, and the values of this one, by input position.

    Example (what ``Pool.amap(..., checkpoint=path)`` does)::

        resume = ResumeMap("Pool.amap", "run.sqlite", None)
        todo = await resume.opened(calls(fn, inputs))
        failures = await pool._drive(todo, None, resume.succeeded, settle=True)
        values = resume.listed(failures)
    """

    KIND = "map:"

    def __init__(
        self, where: str, checkpoint: object, run_id: str | None, skipped: Callable[[], object] | None = None
    ) -> None:
        super().__init__(where, checkpoint, run_id, skipped)
        kept = self._checkpoint
        if not isinstance(kept, SqliteCheckpoint):
            msg = (
                f"{where}: a resumable map keeps its values in a SQLite checkpoint:"
                f" pass a file path or a SqliteCheckpoint, got {checkpoint!r}"
            )
            raise TypeError(msg)
        self._file = kept
        self._values: dict[int, Any] = {}  # by input position: this run's, then an earlier one's
        self._unsaved: dict[int, bytes] = {}

    def succeeded(self, index: int, value: object) -> None:
        """The call at ``index`` in the run's order gave ``value``: keep it by its input position."""
        position = self._positions[index]
        self._values[position] = value
        try:
            self._unsaved[position] = pickle.dumps(value)
        except Exception as error:
            error.add_note(f"go_async: a resumable map pickles each value: input {position}'s cannot be")
            raise
        super().succeeded(index, value)

    def _write(self, progress: RunProgress) -> None:
        # The values kept since the last save go with the progress, in one transaction.
        self._file.save(progress, self._unsaved)
        self._unsaved = {}

    def listed(self, failures: list[tuple[int, Exception]]) -> list[Any]:
        """Every input's value (or, from ``failures`` by run order, its error), in input order."""
        for index, error in failures:
            self._values[self._positions[index]] = error
        if self._before is not None:  # what earlier runs finished and this one skipped
            for position, data in self._file.values().items():
                # Unpickled from the file this program's earlier run wrote, never from elsewhere.
                self._values.setdefault(position, pickle.loads(data))
        missing = [position for position in range(self._next) if position not in self._values]
        if missing:  # a file that lost rows: never a list with holes
            msg = (
                f"{self._where}: checkpoint {str(self._file.path)!r} holds no value for inputs"
                f" {missing[:10]}: use a new checkpoint"
            )
            raise ValueError(msg)
        return [self._values[position] for position in range(self._next)]
