"""``RigConfig``: the validated contents of one rig YAML (``hardware_configs/<rig>.yaml``).

Sections::

    name: sim_pusht
    robot:   {...}        # RobotConfig (required)
    cameras: [{...}, ...] # CameraConfig list, in policy order: camera index i is observation key camera_i
    teleop:  {...}        # TeleopConfig (default: SpaceMouse, 6-DoF; planar when the rig has a scene)
    scene:   {...}        # SceneConfig: a simulated Push-T scene (sim rigs only)
    gripper: {...}        # GripperConfig (optional): robotiq (the URCap socket on robot_ip) | sim
    cpus:    {control: [1], policy: [1], device: [0], background: [0]}   # optional CPU affinity per role
                          # (robot_stack.runtime.scheduling); roles not listed run on any core
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from robot_stack.config import ConfigError, load_dataclass, read_yaml
from robot_stack.hardware.camera.config import CameraConfig
from robot_stack.hardware.gripper.config import GripperConfig
from robot_stack.hardware.robot.config import RobotConfig
from robot_stack.hardware.teleop import TeleopConfig
from robot_stack.resources import rig_path
from robot_stack.runtime.scheduling import PRIORITIES, check_cpus
from robot_stack.sim.pusht import VIEWS, SceneConfig

_SECTIONS = ("name", "robot", "cameras", "teleop", "scene", "gripper", "cpus")


@dataclass(frozen=True)
class RigConfig:
    """Everything needed to start a rig; ``cameras[i]`` feeds the policy's ``camera_i``."""

    name: str
    robot: RobotConfig
    cameras: tuple[CameraConfig, ...]
    teleop: TeleopConfig
    scene: Optional[SceneConfig] = None
    gripper: Optional[GripperConfig] = None
    cpus: Optional[Mapping[str, tuple[int, ...]]] = None  # role -> cores (``runtime.scheduling.use_cpus``)

    @property
    def planar_z(self) -> float | None:
        """TCP height for planar (Push-T style) control: teleop ``planar_z``, else the scene's push height;
        ``None`` for 6-DoF rigs or when neither is set (then the TCP height at start is kept)."""
        if self.teleop.mode != "planar":
            return None
        if self.teleop.planar_z is not None:
            return self.teleop.planar_z
        return self.scene.push_z if self.scene is not None else None


def load_rig(source: str | Path | Mapping[str, Any]) -> RigConfig:
    """Load and validate a rig from a YAML path, a shipped rig's name (``sim_pusht``) or an already parsed
    mapping; errors name the key to fix."""
    if not isinstance(source, Mapping):
        source = rig_path(source)
    where = str(source) if not isinstance(source, Mapping) else "rig"
    data = dict(source) if isinstance(source, Mapping) else read_yaml(Path(source))
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; a rig has {', '.join(_SECTIONS)}")
    if "robot" not in data:
        raise ConfigError(f"{where}: the rig has no robot: section (see hardware_configs/sim_ur5.yaml)")
    cameras_data = data.get("cameras") or []
    if not isinstance(cameras_data, list):
        raise ConfigError(f"{where}: cameras: must be a list of camera entries")
    scene = load_dataclass(SceneConfig, data["scene"], f"{where}: scene") if data.get("scene") is not None else None
    teleop_data = data.get("teleop")
    if teleop_data is None:
        # A Push-T scene is pushed in the plane; a bare arm gets full 6-DoF teleop.
        teleop_data = {"profile": "spacemouse", "mode": "planar" if scene is not None else "6dof"}
    cameras = tuple(load_dataclass(CameraConfig, c, f"{where}: cameras[{i}]") for i, c in enumerate(cameras_data))
    names = [c.name for c in cameras]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: camera names must be unique; repeated: {duplicates}")
    serials = [c.serial for c in cameras if c.serial is not None]
    if len(set(serials)) != len(serials):
        raise ConfigError(f"{where}: two cameras have the same serial; each RealSense can be opened once")
    for cam in cameras:
        if cam.driver == "sim" and scene is not None and cam.name not in VIEWS:
            # A simulated camera renders the scene view it is named after.
            raise ConfigError(f"{where}: simulated camera '{cam.name}' must be named after a scene view: "
                              f"{', '.join(VIEWS)}")
    name = data.get("name") or (Path(source).stem if not isinstance(source, Mapping) else "rig")
    cpus = data.get("cpus")
    if cpus is not None:
        if not isinstance(cpus, Mapping):
            raise ConfigError(f"{where}: cpus: must map roles ({', '.join(PRIORITIES)}) to lists of cores")
        try:
            cpus = check_cpus(cpus)
        except ValueError as exc:
            raise ConfigError(f"{where}: cpus.{exc}") from None
    robot = load_dataclass(RobotConfig, data["robot"], f"{where}: robot")
    gripper = None
    if data.get("gripper") is not None:
        section = data["gripper"]
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where}: gripper: must be a mapping (see hardware_configs/sim_ur5_gripper.yaml)")
        if section.get("driver") == "robotiq" and not section.get("host") and robot.robot_ip:
            section = {**section, "host": robot.robot_ip}  # the URCap serves the gripper on the robot itself
        gripper = load_dataclass(GripperConfig, section, f"{where}: gripper")
    return RigConfig(
        name=str(name),
        robot=robot,
        cameras=cameras,
        teleop=load_dataclass(TeleopConfig, teleop_data, f"{where}: teleop"),
        scene=scene,
        gripper=gripper,
        cpus=cpus or None,
    )
