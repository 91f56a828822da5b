"""``start_rig``: run a rig's device processes (teleop device, arm, gripper, simulated scene, cameras) under one
``Supervisor``, so that any of them dying stops all of them, and everything is released on exit."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from robot_stack.hardware.camera.process import CameraProcess
from robot_stack.hardware.gripper.controller import GripperController
from robot_stack.hardware.robot.controller import RobotController
from robot_stack.hardware.teleop import SpaceMouseDevice, TeleopProcess
from robot_stack.rig.config import RigConfig
from robot_stack.runtime import DeviceProcess, Supervisor
from robot_stack.runtime.scheduling import CPUS_ENV, rig_cpus, use_cpus
from robot_stack.sim.pusht import SceneProcess


@dataclass
class Rig:
    """A running rig. ``cameras[i]`` is the policy's ``camera_i``; ``scene`` only on simulated rigs."""

    config: RigConfig
    robot: RobotController
    cameras: list[CameraProcess]
    scene: Optional[SceneProcess]
    teleop: Optional[TeleopProcess]
    supervisor: Supervisor
    gripper: Optional[GripperController] = None


@contextlib.contextmanager
def start_rig(config: RigConfig, spacemouse: bool = False, extra: Sequence[DeviceProcess] = ()) -> Iterator[Rig]:
    """Start the rig (with a SpaceMouse process when ``spacemouse``); stop everything on exit.

    ``extra`` processes (e.g. the policy) start first, before the arm connects, and are supervised with
    the rig: one of them dying stops the rig too. Raises ``ProcessFailed`` naming the device that could not
    start; the ones already started are stopped.
    """
    robot = RobotController(config.robot)
    scene = SceneProcess(config.scene, robot.state) if config.scene is not None else None
    cameras = []
    for cam in config.cameras:
        # load_rig checked that a simulated camera on a scene rig is named after one of the scene's views.
        renderer = scene.renderer(cam.name, tuple(cam.resolution)) if cam.driver == "sim" and scene else None
        cameras.append(CameraProcess(cam, renderer=renderer))
    teleop = TeleopProcess(SpaceMouseDevice) if spacemouse else None
    gripper = GripperController(config.gripper) if config.gripper is not None else None
    # The teleop device first: a missing SpaceMouse fails before the arm is connected.
    processes = [*extra] + ([teleop] if teleop else []) + [robot] + ([gripper] if gripper else []) + ([scene] if scene else []) + cameras
    pinned = os.environ.get(CPUS_ENV)
    use_cpus(rig_cpus(config.cpus))  # the processes started below (and this one's encoder threads) take their cores
    try:
        with Supervisor(processes) as supervisor:
            yield Rig(config, robot, cameras, scene, teleop, supervisor, gripper)
    finally:  # this process may go on (tests, scripts): later rigs must not inherit this one's pinning
        os.environ.pop(CPUS_ENV, None)
        if pinned is not None:
            os.environ[CPUS_ENV] = pinned
