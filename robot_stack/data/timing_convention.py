"""``TimingConvention``: how a dataset's recorded actions relate to time — data, not a constant.

Every step ``i`` of an episode has a timestamp ``t_i`` (the robot state it observed) and an action. The
convention says *when* that action is meant to be reached: at ``t_i + action_delay_steps * dt``.

- robot_stack's recorders schedule each teleop target ``ACTION_DELAY_STEPS`` (2) periods after the state it
  answers and record it with that state's step, so their datasets say ``action_delay_steps = 2``.
- The original Diffusion Policy recorder stamps each action with its own target time: delay 0. Datasets and
  checkpoints that do not say (the original's, or robot_stack's from before this was recorded) are read with
  the original's convention, and a log line says so.

A policy must execute its actions with the convention of the data it was trained on, so ``train`` carries the
dataset's convention into the checkpoint (with the camera setup the images were made with) and ``eval`` /
``serve`` read it from there.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping

from robot_stack.config import ConfigError

log = logging.getLogger(__name__)

# The original Diffusion Policy's convention: an action is stamped with the time it should be reached.
ORIGINAL_ACTION_DELAY_STEPS = 0
# Control period assumed when nothing records one (the original's and robot_stack's 10 Hz).
DEFAULT_DT = 0.1


@dataclass(frozen=True)
class TimingConvention:
    """``dt``: seconds between steps; ``action_delay_steps``: steps from an action's step to its target time.
    ``recorded``: False when this is the original's default, assumed because the source said nothing."""

    dt: float
    action_delay_steps: int
    recorded: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.dt, (int, float)) and math.isfinite(self.dt) and 0.0 < self.dt <= 10.0):
            raise ConfigError(f"timing convention: dt must be in (0, 10] s, got {self.dt!r}")
        if isinstance(self.action_delay_steps, bool) or not isinstance(self.action_delay_steps, int) \
                or not 0 <= self.action_delay_steps <= 100:
            raise ConfigError(f"timing convention: action_delay_steps must be an integer in [0, 100], "
                              f"got {self.action_delay_steps!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain form for zarr attributes and checkpoints (only recorded conventions are written)."""
        return {"dt": float(self.dt), "action_delay_steps": int(self.action_delay_steps)}

    @classmethod
    def from_dict(cls, value: Any, source: str) -> "TimingConvention":
        """Parse ``to_dict``'s form; ``ConfigError`` naming ``source`` if it is damaged."""
        if not isinstance(value, Mapping) or set(value) != {"dt", "action_delay_steps"}:
            raise ConfigError(f"{source}: timing convention must be {{dt, action_delay_steps}}, got {value!r:.120}")
        try:
            return cls(float(value["dt"]), value["action_delay_steps"])
        except (TypeError, ValueError, ConfigError) as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def original(cls, dt: float | None, source: str) -> "TimingConvention":
        """The original's convention for ``source``, which records none (logged: it is an assumption)."""
        convention = cls(DEFAULT_DT if dt is None else float(dt), ORIGINAL_ACTION_DELAY_STEPS, recorded=False)
        log.info("%s records no action-timing convention: using the original Diffusion Policy's (each action "
                 "stamped with its own target time, action_delay_steps 0; dt %.3f s)", source, convention.dt)
        return convention

    def describe(self) -> str:
        """One phrase for logs, e.g. ``dt 0.100 s, actions 2 steps after their observation (recorded)``."""
        how = "recorded" if self.recorded else "assumed: the original's"
        return f"dt {self.dt:.3f} s, actions {self.action_delay_steps} steps after their observation ({how})"
