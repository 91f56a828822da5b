"""``preflight``: what can be checked about a rig in the parent process, in seconds, before any device
process starts (and so before anything moves). Each problem is a ``ConfigError`` naming what to fix.

Checked: a RealSense camera's library loads (libusb), its serial is connected (the error lists what is) or
its playback file exists; an RTDE robot's dashboard (29999) and RTDE (30004) servers answer within a short
timeout; a Robotiq gripper's URCap socket answers. Simulated devices need nothing.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from robot_stack.config import ConfigError
from robot_stack.hardware.camera.config import CameraConfig
from robot_stack.hardware.camera.library import load_realsense_driver
from robot_stack.hardware.gripper.config import GripperConfig
from robot_stack.hardware.robot.config import RobotConfig
from robot_stack.rig.config import RigConfig

# The reachability probe is a quick look, not the real connection (the driver retries with connect_timeout).
_PROBE_TIMEOUT_S = 2.0


def preflight(rig: RigConfig, realsense_devices: Optional[Callable[[], Sequence]] = None) -> None:
    """Check the rig's cameras and robot as far as possible without starting them (see the module doc).

    ``realsense_devices`` replaces the USB device query (tests pass software devices)."""
    check_cameras(rig.cameras, realsense_devices)
    check_robot(rig.robot)
    if rig.gripper is not None:
        check_gripper(rig.gripper)


def check_cameras(cameras: Sequence[CameraConfig], devices: Optional[Callable[[], Sequence]] = None) -> None:
    """RealSense library loadable, serials connected, playback files present."""
    realsense_cams = [c for c in cameras if c.driver == "realsense"]
    if not realsense_cams:
        return
    names = ", ".join(f"'{c.name}'" for c in realsense_cams)
    realsense = load_realsense_driver(needed_by=f"camera {names} (driver: realsense)")
    for cam in realsense_cams:
        if cam.playback_file is not None:
            if not cam.playback_file.is_file():
                raise ConfigError(f"camera '{cam.name}': playback_file {cam.playback_file} not found")
        elif cam.serial is not None:
            try:
                realsense.find_device(cam.serial, devices)
            except ConfigError as exc:
                raise ConfigError(f"camera '{cam.name}': {exc}") from None


def check_robot(robot: RobotConfig) -> None:
    """An RTDE robot's controller answers on the dashboard and RTDE ports."""
    if robot.driver != "rtde":
        return
    from robot_stack.hardware.robot.interface import RobotConnectionError
    from robot_stack.hardware.robot.rtde_driver import probe_controller

    try:
        probe_controller(robot.robot_ip, min(robot.connect_timeout, _PROBE_TIMEOUT_S))
    except RobotConnectionError as exc:
        raise ConfigError(f"robot: {exc}") from None


def check_gripper(gripper: GripperConfig) -> None:
    """A real gripper answers: the Robotiq URCap socket or the WSG's command interface (connect, one status
    query, disconnect)."""
    if gripper.driver == "sim":
        return
    from dataclasses import replace

    from robot_stack.hardware.gripper.controller import make_gripper
    from robot_stack.hardware.gripper.interface import GripperError
    from robot_stack.hardware.robot.clock import RuntimeClock

    probe = make_gripper(replace(gripper, connect_timeout=min(gripper.connect_timeout, _PROBE_TIMEOUT_S)),
                         RuntimeClock())
    try:
        probe.connect()
    except GripperError as exc:
        raise ConfigError(f"gripper: {exc}") from None
    finally:
        probe.disconnect()
