"""Argument checks shared by the public constructors.

Each check raises at the call that made the mistake, naming the call, the
parameter and the value, so the traceback points at the user's line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, cast


def integer(where: str, name: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` (``bool`` is refused)."""
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{where}: {name} must be an int, got {value!r} ({type(value).__name__})"
        raise TypeError(msg)
    return value


def positive_int(where: str, name: str, value: object) -> int:
    """Return ``value`` if it is an ``int >= 1`` (``bool`` is refused)."""
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{where}: {name} must be an int >= 1, got {value!r} ({type(value).__name__})"
        raise TypeError(msg)
    if value < 1:
        msg = f"{where}: {name} must be an int >= 1, got {value!r}"
        raise ValueError(msg)
    return value


def seconds(where: str, name: str, value: object, *, positive: bool = False) -> float:
    """Return ``value`` as finite, non-negative seconds (a number or a ``timedelta``); > 0 if ``positive``."""
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
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        msg = f"{where}: {name} must be finite and {'>' if positive else '>='} 0 seconds, got {value!r}"
        raise ValueError(msg)
    return number


def positive_seconds(where: str, name: str, value: object) -> float:
    """Return ``value`` as finite seconds > 0 (a number or a ``timedelta``)."""
    return seconds(where, name, value, positive=True)


def timeout_seconds(where: str, value: object, name: str = "seconds") -> float | None:
    """Return ``value`` (the parameter ``name``) as a timeout: ``None`` (no timeout) or finite seconds > 0."""
    if value is None:
        return None
    try:
        return seconds(where, name, value, positive=True)
    except ValueError as error:  # the same words for 0 and for -1
        error.args = (f"{error.args[0].split(', got ')[0]} (or None for no timeout), got {value!r}",)
        raise


def label(where: str, name: str, value: object) -> str:
    """Return ``value`` if it is a non-empty ``str``."""
    if not isinstance(value, str):
        msg = f"{where}: {name} must be a str, got {value!r} ({type(value).__name__})"
        raise TypeError(msg)
    if not value:
        msg = f"{where}: {name} must not be empty"
        raise ValueError(msg)
    return value


def callables(where: str, name: str, values: object, shape: str) -> tuple[Callable[..., Any], ...]:
    """``values`` as a tuple of callables, or a TypeError naming the first entry that is not one."""
    if callable(values) or not isinstance(values, Iterable):
        kind = type(values).__name__
        msg = f"{where}: {name} must be an iterable of {name}, got {values!r} ({kind})"
        raise TypeError(msg)
    checked: list[Callable[..., Any]] = []
    for index, each in enumerate(cast("Iterable[object]", values)):
        if not callable(each):
            msg = (
                f"{where}: {name}[{index}] must be an async callable {shape}, "
                f"got {each!r} ({type(each).__name__})"
            )
            raise TypeError(msg)
        checked.append(each)
    return tuple(checked)
