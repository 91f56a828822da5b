"""Clocks for the servo loop: the runtime clock for real operation, a manual one for fast simulation.

The servo loop and the simulated arm only read time through a ``Clock``, so the same loop runs in real time
in the controller process and as fast as the CPU allows in tests (``SimClock`` jumps to each deadline
instead of sleeping).
"""

from __future__ import annotations

from typing import Protocol

from robot_stack.runtime import now, precise_wait


class Clock(Protocol):
    """Source of time (seconds) that can wait for a deadline."""

    def now(self) -> float:
        """Current time in seconds."""
        ...

    def wait_until(self, t: float) -> None:
        """Return once ``now() >= t``."""
        ...


class RuntimeClock:
    """The runtime clock (``robot_stack.runtime.now``), waiting with ``precise_wait``."""

    def now(self) -> float:
        return now()

    def wait_until(self, t: float) -> None:
        precise_wait(t)


class SimClock:
    """Manually advanced clock: waiting jumps straight to the deadline (faster than real time)."""

    def __init__(self, start: float = 0.0):
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def wait_until(self, t: float) -> None:
        self._t = max(self._t, float(t))

    def advance(self, dt: float) -> None:
        """Move time forward by ``dt`` seconds."""
        if dt < 0:
            raise ValueError(f"SimClock cannot go backwards (dt={dt})")
        self._t += dt
