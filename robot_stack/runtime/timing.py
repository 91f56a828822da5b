"""The runtime clock and precise waiting.

Clock convention (the one place it is defined): every timestamp in the runtime — ring-buffer records,
waypoint target times, action timestamps — is ``now()`` == ``time.monotonic()`` in seconds. Monotonic time
never jumps with NTP corrections, which matters for a control loop, and is shared by all processes on one
machine (Linux CLOCK_MONOTONIC). Device clocks (camera hardware timestamps, robot controller time) are mapped
into it by their drivers. Wall-clock ``time.time()`` is used only for human-facing metadata (episode start).
Across machines (remote policy server) timestamps stay in the robot machine's clock: the server only uses
differences between them.
"""

from __future__ import annotations

import time

now = time.monotonic

# Below this remaining time we stop sleeping and spin: time.sleep overshoots by ~0.1-1 ms on Linux.
_SPIN_SLACK_S = 0.001


def precise_wait(t_end: float, slack: float = _SPIN_SLACK_S) -> None:
    """Block until ``now() >= t_end``: sleep for most of the interval, then spin for the last ``slack`` s."""
    remaining = t_end - now()
    if remaining > slack:
        time.sleep(remaining - slack)
    while now() < t_end:
        pass


def precise_sleep(dt: float, slack: float = _SPIN_SLACK_S) -> None:
    """Sleep for ``dt`` seconds with sub-millisecond accuracy (see ``precise_wait``)."""
    precise_wait(now() + dt, slack)
