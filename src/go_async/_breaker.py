"""CircuitBreaker: after K failures in a row, fail fast for a cool-down, then let one probe decide."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import timedelta

from ._checks import label, positive_int
from ._checks import seconds as checked_seconds
from ._clock import Clock, clock_of


class CircuitState(enum.Enum):
    """Where a circuit breaker stands: ``breaker.state``, and what ``Hooks.circuit_changed`` hears.

    Example::

        if payments.state is CircuitState.OPEN:
            show_banner("payments are paused")
    """

    CLOSED = "closed"
    """Runs go through; failures in a row are counted."""
    OPEN = "open"
    """Runs fail fast with ``CircuitOpenError`` until the cool-down ends."""
    HALF_OPEN = "half-open"
    """The cool-down ended: the next run is a probe, and the others fail fast while it runs."""


class CircuitOpenError(Exception):
    """A run refused, without being tried, because its circuit breaker is open.

    ``breaker`` is the breaker; ``retry_in`` the seconds left of its
    cool-down (0 while a probe runs).

    Example::

        try:
            await Task(charge).with_circuit_breaker(payments).with_input(order).execute()
        except CircuitOpenError as error:
            reply_later(error.retry_in)
    """

    def __init__(self, breaker: CircuitBreaker, retry_in: float) -> None:
        self.breaker = breaker
        self.retry_in = retry_in
        if retry_in > 0:
            why = f"failing fast for {retry_in:.3g}s more"
        else:
            why = "a probe is running, and it decides whether the circuit closes"
        last = "" if breaker.last_error is None else f"; the last failure: {breaker.last_error!r}"
        super().__init__(f"circuit {breaker.name!r} is {breaker.state.value}: {why}{last}")


# What a run gives the breaker, to hear of its state changes (the run's hooks).
Notify = Callable[["CircuitBreaker", CircuitState], object]


class CircuitBreaker:
    """Stops running tasks that keep failing: shared by every task given it.

    After ``failures`` failures in a row (a task's final error, after its
    retries), the circuit opens: for ``cooldown`` seconds every run of a task
    with this breaker fails at once with ``CircuitOpenError``, recorded as
    that task's error. Then the circuit is half-open: the next run is a
    probe, and its success closes the circuit while its failure opens it
    for another cool-down. Each change of state is told to the pool's hooks
    (``Hooks.circuit_changed``). ``clock`` is for tests (see ``ManualClock``).

    Example::

        payments = CircuitBreaker("payments", failures=5, cooldown=30)
        charge = Task(charge_card).with_circuit_breaker(payments).with_retry(3)
        Pool(limit=8).go(charge.with_input(order) for order in orders)
    """

    __slots__ = (
        "_clock",
        "_cooldown",
        "_failures",
        "_in_a_row",
        "_opened_at",
        "_probing",
        "_state",
        "last_error",
        "name",
        "rejected",
    )

    def __init__(
        self,
        name: str = "circuit",
        *,
        failures: int = 5,
        cooldown: float | timedelta = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.name: str = label("CircuitBreaker", "name", name)
        self._failures = positive_int("CircuitBreaker", "failures", failures)
        self._cooldown = checked_seconds("CircuitBreaker", "cooldown", cooldown)
        self._clock = clock_of("CircuitBreaker", clock)
        self._state = CircuitState.CLOSED
        self._in_a_row = 0
        self._opened_at = 0.0
        self._probing = False
        self.rejected: int = 0
        """How many runs failed fast with ``CircuitOpenError``."""
        self.last_error: Exception | None = None
        """The latest failure it counted."""

    @property
    def state(self) -> CircuitState:
        """The state now; an open circuit whose cool-down has ended reads as half-open."""
        if self._state is CircuitState.OPEN and self._cooled_down():
            return CircuitState.HALF_OPEN
        return self._state

    @property
    def failures_in_a_row(self) -> int:
        """Failures counted since the last success."""
        return self._in_a_row

    def reset(self) -> None:
        """Close the circuit by hand and forget the failures counted (no hook hears of it)."""
        self._in_a_row = 0
        self._probing = False
        self._state = CircuitState.CLOSED

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker({self.name!r}, failures={self._failures}, cooldown={self._cooldown}): "
            f"{self.state.value}"
        )

    # --- what a run calls around each task ------------------------------------

    def admit(self, notify: Notify | None) -> bool:
        """Let a run through, or raise ``CircuitOpenError``; True if the run is the probe."""
        if self._state is CircuitState.CLOSED:
            return False
        if self._state is CircuitState.OPEN:
            if not self._cooled_down():
                self.rejected += 1
                raise CircuitOpenError(self, self._opened_at + self._cooldown - self._clock.time())
            self._move(CircuitState.HALF_OPEN, notify)
        if self._probing:
            self.rejected += 1
            raise CircuitOpenError(self, 0.0)
        self._probing = True
        return True

    def succeeded(self, probe: bool, notify: Notify | None) -> None:
        """A run let through ended well."""
        if probe or self._state is CircuitState.CLOSED:
            self._in_a_row = 0
        if probe:
            self._probing = False
            self._move(CircuitState.CLOSED, notify)

    def failed(self, probe: bool, error: Exception, notify: Notify | None) -> None:
        """A run let through failed with ``error``."""
        if probe:
            self._probing = False
        elif self._state is not CircuitState.CLOSED:
            return  # a run from before the circuit opened: the probe decides now
        self.last_error = error
        self._in_a_row += 1
        if probe or self._in_a_row >= self._failures:
            self._opened_at = self._clock.time()
            self._move(CircuitState.OPEN, notify)

    def abandoned(self, probe: bool) -> None:
        """A run let through was cancelled: it says nothing of the circuit."""
        if probe:
            self._probing = False

    def _cooled_down(self) -> bool:
        return self._clock.time() >= self._opened_at + self._cooldown

    def _move(self, state: CircuitState, notify: Notify | None) -> None:
        if state is not self._state:
            self._state = state
            if notify is not None:
                notify(self, state)
