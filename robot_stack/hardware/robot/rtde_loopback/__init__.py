"""A loopback UR controller speaking RTDE, backed by a simulated arm, for the real ur_rtde clients.

``RTDELoopbackServer`` serves RTDE (30004), the dashboard (29999) and the script ports (30002/30003) on a
loopback address; ``SimLoopbackProcess`` runs one around a ``SimUR5`` in a child process (needed when the
ur_rtde client lives in the same interpreter). What is emulated, and what is not, is described in
``controller.py`` (outputs) and ``control_script.py`` (RTDEControlInterface commands).
"""

from robot_stack.hardware.robot.rtde_loopback.arm import LoopbackArm
from robot_stack.hardware.robot.rtde_loopback.controller import CB3, E_SERIES, ControllerVersion, LoopbackController
from robot_stack.hardware.robot.rtde_loopback.protocol import RTDEProtocolError
from robot_stack.hardware.robot.rtde_loopback.server import LoopbackStats, RTDELoopbackServer
from robot_stack.hardware.robot.rtde_loopback.sim_process import (
    STATE_SPEC,
    SimLoopbackProcess,
    find_free_loopback_host,
)

__all__ = [
    "CB3",
    "E_SERIES",
    "STATE_SPEC",
    "ControllerVersion",
    "LoopbackArm",
    "LoopbackController",
    "LoopbackStats",
    "RTDELoopbackServer",
    "RTDEProtocolError",
    "SimLoopbackProcess",
    "find_free_loopback_host",
]
