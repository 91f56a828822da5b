"""``ScriptedTeleop``: a program as the teleoperator (tests, the simulated Push-T expert).

A callable policy computes where the TCP should go; the scripted "hand" deflects the virtual stick by
exactly what moves the mapper's target there in one control step (``TeleopMapper.axes_toward``), within the
profile's speeds. Scripted demonstrations therefore take the same mapping path — deadzone, axis mapping,
speed limits, workspace clamp, planar mode — as a human's.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from robot_stack.hardware.teleop.device import N_AXES, TeleopDevice, TeleopState
from robot_stack.hardware.teleop.mapping import TeleopMapper
from robot_stack.runtime import now

# policy() -> goal: xy (2,), position (3,) or pose (6,) in the robot base frame; None = stay put.
ScriptedPolicy = Callable[[], "np.ndarray | None"]


class ScriptedTeleop(TeleopDevice):
    """Axes that steer ``mapper``'s target toward ``policy()``'s goal; ``buttons`` (optional) scripts presses."""

    def __init__(self, policy: ScriptedPolicy, mapper: TeleopMapper,
                 buttons: Callable[[], np.ndarray] | None = None):
        self.policy = policy
        self.mapper = mapper
        self.buttons = buttons

    def read(self) -> TeleopState:
        goal = self.policy()
        axes = np.zeros(N_AXES) if goal is None else self.mapper.axes_toward(goal)
        buttons = self.buttons() if self.buttons is not None else ()
        return TeleopState(axes, buttons, now())
