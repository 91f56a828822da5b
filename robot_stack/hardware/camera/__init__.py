"""Cameras: Intel RealSense (live, recording playback, software device) and a simulated twin.

- ``CameraConfig``: one entry of a rig YAML's ``cameras:`` list.
- ``Camera`` / ``Frame``: the small interface both ``RealSenseCamera`` and ``SimCamera`` implement.
- ``CameraProcess``: a device process per camera writing frames into a ring buffer (``camera_spec``).
- ``list_cameras``: connected RealSense devices; ``SyntheticRealSense``: a software-emulated one.
  These and ``RealSenseCamera``/``CameraInfo`` load ``pyrealsense2`` on first use (see ``library``), so
  rigs without a RealSense run on machines where it cannot load.
- ``load_calibration`` / ``load_rig_calibration``: intrinsics and base-frame pose from ``calibration/<rig>/``.
"""

from robot_stack.hardware.camera.calibration import (
    CameraCalibration,
    Intrinsics,
    load_calibration,
    load_rig_calibration,
)
from robot_stack.hardware.camera.config import CameraConfig
from robot_stack.hardware.camera.interface import (
    Camera,
    CameraError,
    CameraNotFoundError,
    CameraTimeout,
    EndOfStream,
    Frame,
    UnsupportedStreamError,
)
from robot_stack.hardware.camera.process import CameraProcess, camera_spec, make_camera
from robot_stack.hardware.camera.library import RealSenseUnavailable, load_realsense_driver
from robot_stack.hardware.camera.sim import SimCamera, TestPatternRenderer

# Names whose modules import pyrealsense2: resolved on first access (PEP 562), not at package import.
_REALSENSE_NAMES = {"CameraInfo": "realsense", "RealSenseCamera": "realsense", "list_cameras": "realsense",
                    "SyntheticRealSense": "synthetic"}


def __getattr__(name: str):
    if name in _REALSENSE_NAMES:
        return getattr(load_realsense_driver(_REALSENSE_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Camera",
    "CameraCalibration",
    "CameraConfig",
    "CameraError",
    "CameraInfo",
    "CameraNotFoundError",
    "CameraProcess",
    "CameraTimeout",
    "EndOfStream",
    "Frame",
    "Intrinsics",
    "RealSenseCamera",
    "RealSenseUnavailable",
    "SimCamera",
    "SyntheticRealSense",
    "TestPatternRenderer",
    "UnsupportedStreamError",
    "camera_spec",
    "list_cameras",
    "load_realsense_driver",
    "load_calibration",
    "load_rig_calibration",
    "make_camera",
]
