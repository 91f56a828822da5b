"""Camera calibration files: intrinsics and the camera's pose in the robot base frame.

One YAML per camera at ``calibration/<rig>/<camera name>.yaml`` (format: ``calibration/README.md``), loaded
with ``load_calibration(path)`` or ``load_rig_calibration(rig)``. Camera axes follow OpenCV: x right, y down,
z forward (viewing direction); ``base_from_camera`` is the camera pose in the robot base frame in UR
convention ``[x, y, z, rx, ry, rz]`` (meters, rotation vector), so ``p_base = R @ p_camera + t``.

``sim_pusht_calibration`` computes the exact calibration of the simulated Push-T cameras from the
renderer's geometry (the top view is an orthographic camera, the oblique one a distortion-free pinhole).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from robot_stack.config import ConfigError, load_dataclass, read_yaml
from robot_stack.resources import shipped_dir

if TYPE_CHECKING:
    from robot_stack.sim.pusht import SceneConfig

@dataclass(frozen=True)
class Intrinsics:
    """Image size and projection. ``pinhole``: fx, fy, cx, cy in pixels and OpenCV distortion
    ``[k1, k2, p1, p2, k3]``; ``orthographic``: fx, fy in pixels per meter (no distortion)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: Literal["pinhole", "orthographic"] = "pinhole"
    distortion: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fx <= 0 or self.fy <= 0:
            raise ConfigError(f"intrinsics: width, height, fx and fy must be positive, got {self}")
        if self.model == "orthographic" and any(self.distortion):
            raise ConfigError("intrinsics: an orthographic camera has no distortion coefficients")

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class CameraCalibration:
    """A calibrated camera: ``camera`` is its ``name`` in the rig YAML; ``source`` says how it was obtained."""

    camera: str
    intrinsics: Intrinsics
    base_from_camera: tuple[float, float, float, float, float, float]
    source: str = ""

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in self.base_from_camera):
            raise ConfigError(f"base_from_camera must be finite numbers, got {list(self.base_from_camera)}")

    @property
    def rotation(self) -> np.ndarray:
        """3x3 rotation of camera axes into the base frame."""
        return Rotation.from_rotvec(self.base_from_camera[3:]).as_matrix()

    @property
    def position(self) -> np.ndarray:
        return np.asarray(self.base_from_camera[:3], dtype=np.float64)

    def project(self, points_base: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) [u, v] of base-frame points (N, 3) (pinhole: points must be in front)."""
        points_base = np.asarray(points_base, dtype=np.float64).reshape(-1, 3)
        camera = (points_base - self.position) @ self.rotation  # = R^T (p - t), row-wise
        intr = self.intrinsics
        if intr.model == "orthographic":
            return np.stack([intr.cx + intr.fx * camera[:, 0], intr.cy + intr.fy * camera[:, 1]], axis=1)
        if np.any(camera[:, 2] <= 0):
            raise ValueError("cannot project points behind a pinhole camera")
        pixels, _ = cv2.projectPoints(camera, np.zeros(3), np.zeros(3), intr.matrix, np.asarray(intr.distortion))
        return pixels.reshape(-1, 2)


def load_calibration(path: str | Path) -> CameraCalibration:
    """Read one calibration YAML (``ConfigError`` naming the file and key on any problem)."""
    path = Path(path)
    calibration = load_dataclass(CameraCalibration, read_yaml(path), str(path))
    if calibration.camera != path.stem:
        raise ConfigError(f"{path}: camera {calibration.camera!r} does not match the file name "
                          f"(expected {path.stem!r}: files are named after the camera)")
    return calibration


def load_rig_calibration(rig: str, root: str | Path | None = None) -> dict[str, CameraCalibration]:
    """All calibrations of ``rig`` (``<root>/<rig>/*.yaml``, default root: the shipped ``calibration/``)."""
    root = shipped_dir("calibration") if root is None else Path(root)
    folder = root / rig
    # latency.yaml beside them is the rig's latency calibration (robot_stack.rig.latency), not a camera's
    files = sorted(f for f in folder.glob("*.yaml") if f.name != "latency.yaml")
    if not files:
        raise ConfigError(f"no calibration for rig {rig!r}: expected {folder}/<camera name>.yaml files "
                          f"(see {Path(root) / 'README.md'})")
    return {f.stem: load_calibration(f) for f in files}


def save_calibration(calibration: CameraCalibration, path: str | Path) -> None:
    """Write a calibration YAML (plain lists and floats, readable by ``load_calibration``)."""
    data = asdict(calibration)
    data["intrinsics"]["distortion"] = [float(v) for v in calibration.intrinsics.distortion]
    data["base_from_camera"] = [float(v) for v in calibration.base_from_camera]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def sim_pusht_calibration(scene: "SceneConfig", view: str, resolution: tuple[int, int] = (640, 480),
                          camera: str | None = None) -> CameraCalibration:
    """Exact calibration of the simulated Push-T camera ``view`` ("top" or "oblique")."""
    # The renderer's painter holds the view geometry; reading it keeps this exact if the scene changes.
    from robot_stack.sim.pusht.render import _Painter

    painter = _Painter(scene, view, resolution)
    width, height = int(resolution[0]), int(resolution[1])
    yaw = Rotation.from_euler("z", scene.table_yaw)
    if view == "top":
        # Image right = table -y, image down = table -x, looking down; origin 1 m above the table centre.
        axes = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]).T  # columns: camera x, y, z
        eye = np.array([0.0, 0.0, 1.0])
        scale = float(painter._px_per_m)
        intrinsics = Intrinsics(width, height, scale, scale, width / 2, height / 2, model="orthographic")
    else:
        axes = painter._rotation.T  # painter rows are the camera axes (right, down, forward) in the table frame
        eye = painter._eye
        focal = float(painter._focal)
        intrinsics = Intrinsics(width, height, focal, focal, width / 2, height / 2)
    rotation = yaw * Rotation.from_matrix(axes)
    position = np.array([*scene.table_to_base(eye[:2]), scene.table_z + eye[2]])
    pose = (*[float(v) for v in position], *[float(v) for v in rotation.as_rotvec()])
    return CameraCalibration(camera or view, intrinsics, pose,  # type: ignore[arg-type]
                             source=f"computed from the Push-T {view} renderer geometry "
                                    "(robot_stack.hardware.camera.calibration.sim_pusht_calibration)")
