"""Argument checks shared by the public constructors.

Each check raises at the call that made the mistake, naming the call, the
parameter and the value, so the traceback points at the user's line.
"""

from __future__ import annotations

import math
from datetime import timedelta


def positive_int(where: str, name: str, value: object) -> int:
    """Return ``value`` if it is an ``int >= 1`` (``bool`` is refused)."""
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{where}: {name} must be an int >= 1, got {value!r} ({type(value).__name__})"
        raise TypeError(msg)
    if value < 1:
        msg = f"{where}: {name} must be an int >= 1, got {value!r}"
        raise ValueError(msg)
    return value


def seconds(where: str, name: str, value: object) -> float:
    """Return ``value`` as finite, non-negative seconds (a number or a ``timedelta``)."""
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        msg = (
            f"{where}: {name} must be seconds as a float or a timedelta, "
            f"got {value!r} ({type(value).__name__})"
        )
        raise TypeError(msg)
    if not math.isfinite(number) or number < 0:
        msg = f"{where}: {name} must be finite and >= 0 seconds, got {value!r}"
        raise ValueError(msg)
    return number
