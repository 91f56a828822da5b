"""What can go wrong between a controller and its robot, injected on purpose: a slow or lossy network and
scheduled faults, so that controllers can be tested against them on the twin (``robot-stack ursim``).

``NetworkConditions`` delays every RTDE data package, in both directions, by ``latency`` plus a uniform
``[0, jitter]`` draw (never reordering them: TCP delivers in order) and drops each with probability
``drop`` (a lost data package, as when a real client falls behind; the connection itself stays up).

``Fault`` is one scheduled event, parsed from ``KIND@SECONDS[+DURATION]``:

* ``protective_stop@T``: the arm protective-stops (released by the dashboard's "unlock protective stop");
* ``program_stop@T``: the running program is stopped, as from the teach pendant;
* ``emergency_stop@T[+D]``: the emergency stop is pressed (the arm stops at once, the program ends); it is
  released after ``D`` s (default: never), after which the arm is powered off until the dashboard's
  "power on" and "brake release".
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from robot_stack.config import ConfigError

FAULT_KINDS = ("protective_stop", "program_stop", "emergency_stop")
_FAULT = re.compile(r"^(?P<kind>[a-z_]+)@(?P<at>[0-9.]+)(?:\+(?P<duration>[0-9.]+))?$")


@dataclass(frozen=True)
class NetworkConditions:
    """Latency (s), jitter (s, uniform on top of the latency) and drop probability of RTDE data packages."""

    latency: float = 0.0
    jitter: float = 0.0
    drop: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 5.0):
                raise ConfigError(f"network {name} must be in [0, 5] s, got {value}")
        if not (math.isfinite(self.drop) and 0.0 <= self.drop < 1.0):
            raise ConfigError(f"network drop must be a probability in [0, 1), got {self.drop}")

    @property
    def impaired(self) -> bool:
        return self.latency > 0 or self.jitter > 0 or self.drop > 0

    def link(self) -> "Link":
        """The state of one direction of one connection (its own random stream and last delivery time)."""
        return Link(self)


class Link:
    """One direction of one connection under ``NetworkConditions``: when each package is delivered."""

    def __init__(self, conditions: NetworkConditions):
        self.conditions = conditions
        self._rng = random.Random(conditions.seed)
        self._last_due = 0.0

    def due(self, now: float) -> float | None:
        """When a package sent at ``now`` arrives, or None if it is lost."""
        c = self.conditions
        if c.drop and self._rng.random() < c.drop:
            return None
        due = max(now + c.latency + (self._rng.uniform(0.0, c.jitter) if c.jitter else 0.0), self._last_due)
        self._last_due = due
        return due


@dataclass(frozen=True)
class Fault:
    """A fault of ``kind`` at ``at`` s after the server started, lasting ``duration`` s (emergency stop only;
    None: until the server stops)."""

    kind: str
    at: float
    duration: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Fault":
        """``KIND@SECONDS[+DURATION]``, e.g. ``emergency_stop@5+2``; ``ConfigError`` naming the problem."""
        m = _FAULT.match(text.strip())
        if m is None or m["kind"] not in FAULT_KINDS:
            raise ConfigError(f"--fault {text!r}: expected KIND@SECONDS[+DURATION] with KIND one of "
                              f"{', '.join(FAULT_KINDS)} (e.g. emergency_stop@5+2)")
        try:
            at = float(m["at"])
            duration = float(m["duration"]) if m["duration"] is not None else None
        except ValueError:
            raise ConfigError(f"--fault {text!r}: {m['at']!r} / {m['duration']!r} is not a number") from None
        if duration is not None and m["kind"] != "emergency_stop":
            raise ConfigError(f"--fault {text!r}: only emergency_stop takes a +DURATION (the others are released "
                              "from the dashboard or by the client)")
        return cls(m["kind"], at, duration)
