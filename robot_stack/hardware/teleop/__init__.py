"""Teleoperation: input devices (SpaceMouse, keyboard, scripted), their profiles, and the pose mapping."""

from robot_stack.hardware.teleop.device import (
    N_AXES,
    N_BUTTONS,
    TELEOP_STATE_SPEC,
    TeleopDevice,
    TeleopDeviceError,
    TeleopState,
)
from robot_stack.hardware.teleop.keyboard import KeyboardTeleop
from robot_stack.hardware.teleop.mapping import TeleopCommand, TeleopMapper
from robot_stack.hardware.teleop.process import TeleopProcess
from robot_stack.hardware.teleop.profile import TeleopConfig, TeleopProfile, load_profile, profile_path
from robot_stack.hardware.teleop.scripted import ScriptedTeleop
from robot_stack.hardware.teleop.spacemouse import SpaceMouseDevice

__all__ = [
    "N_AXES",
    "N_BUTTONS",
    "TELEOP_STATE_SPEC",
    "KeyboardTeleop",
    "ScriptedTeleop",
    "SpaceMouseDevice",
    "TeleopCommand",
    "TeleopConfig",
    "TeleopDevice",
    "TeleopDeviceError",
    "TeleopMapper",
    "TeleopProcess",
    "TeleopProfile",
    "TeleopState",
    "load_profile",
    "profile_path",
]
