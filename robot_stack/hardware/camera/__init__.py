"""Cameras: Intel RealSense (live, recording playback, software device) and a simulated twin.

- ``CameraConfig``: one entry of a rig YAML's ``cameras:`` list.
- ``Camera`` / ``Frame``: the small interface both ``RealSenseCamera`` and ``SimCamera`` implement.
- ``CameraProcess``: a device process per camera writing frames into a ring buffer (``camera_spec``).
- ``list_cameras``: connected RealSense devices; ``SyntheticRealSense``: a software-emulated one.
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
from robot_stack.hardware.camera.realsense import CameraInfo, RealSenseCamera, list_cameras
from robot_stack.hardware.camera.sim import SimCamera, TestPatternRenderer
from robot_stack.hardware.camera.synthetic import SyntheticRealSense

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
    "SimCamera",
    "SyntheticRealSense",
    "TestPatternRenderer",
    "UnsupportedStreamError",
    "camera_spec",
    "list_cameras",
    "load_calibration",
    "load_rig_calibration",
    "make_camera",
]
