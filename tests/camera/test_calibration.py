"""Calibration files: format, loading errors, and the sim rig's calibration against its renderer."""

from pathlib import Path

import numpy as np
import pytest

from robot_stack.config import ConfigError, load_dataclass, read_yaml
from robot_stack.hardware.camera.calibration import (
    CameraCalibration,
    Intrinsics,
    load_calibration,
    load_rig_calibration,
    save_calibration,
    sim_pusht_calibration,
)
from robot_stack.sim.pusht import PushTPhysics, SceneConfig, render
from robot_stack.sim.pusht.render import PUSHER

ROOT = Path(__file__).resolve().parents[2]


def rig_scene() -> SceneConfig:
    return load_dataclass(SceneConfig, read_yaml(ROOT / "hardware_configs/sim_pusht.yaml")["scene"], "scene")


def test_pinhole_projection_round_trip(tmp_path):
    # A camera 1 m above the base origin looking straight down (camera z = -base z).
    calibration = CameraCalibration("overhead", Intrinsics(640, 480, 600.0, 600.0, 320.0, 240.0),
                                    (0.0, 0.0, 1.0, np.pi, 0.0, 0.0))
    path = tmp_path / "overhead.yaml"
    save_calibration(calibration, path)
    loaded = load_calibration(path)
    assert loaded == calibration
    uv = loaded.project(np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.5]]))
    # Rotating pi about x: camera x = base x, camera y = -base y; depth 1 m (0.5 m for the raised point).
    np.testing.assert_allclose(uv, [[320, 240], [380, 240], [320, 120]], atol=1e-9)
    with pytest.raises(ValueError, match="behind"):
        loaded.project(np.array([[0.0, 0.0, 2.0]]))


def test_loading_errors_name_the_file(tmp_path):
    folder = tmp_path / "rig_a"
    folder.mkdir()
    (folder / "wrist.yaml").write_text("camera: top\nintrinsics: {width: 640, height: 480, fx: 1, fy: 1, cx: 0, "
                                       "cy: 0}\nbase_from_camera: [0, 0, 0, 0, 0, 0]\n")
    with pytest.raises(ConfigError, match="does not match the file name"):
        load_rig_calibration("rig_a", tmp_path)
    (folder / "wrist.yaml").write_text("camera: wrist\nintrinsics: {width: 640, height: 480, fx: 1, fy: 1, "
                                       "cx: 0, cy: 0, model: fisheye}\nbase_from_camera: [0, 0, 0, 0, 0, 0]\n")
    with pytest.raises(ConfigError, match=r"wrist.yaml.intrinsics.model: must be one of"):
        load_rig_calibration("rig_a", tmp_path)
    with pytest.raises(ConfigError, match="no calibration for rig 'rig_b'"):
        load_rig_calibration("rig_b", tmp_path)


def test_committed_sim_calibration_is_current():
    loaded = load_rig_calibration("sim_pusht", ROOT / "calibration")
    assert set(loaded) == {"top", "oblique"}
    for view, calibration in loaded.items():
        fresh = sim_pusht_calibration(rig_scene(), view)
        assert calibration.intrinsics == fresh.intrinsics
        np.testing.assert_allclose(calibration.base_from_camera, fresh.base_from_camera, atol=1e-8)


@pytest.mark.parametrize("view", ["top", "oblique"])
def test_sim_calibration_projects_onto_the_rendered_pusher(view):
    scene = SceneConfig(table_center=(0.5, 0.1), table_yaw=0.4, table_z=0.02)  # not the identity placement
    calibration = sim_pusht_calibration(scene, view)
    physics = PushTPhysics(scene)
    for tip in ([0.15, 0.15], [-0.1, 0.2], [0.2, -0.18], [-0.2, -0.2]):
        physics.set_pose(np.array([0.0, 0.0, 0.0]), np.array(tip))
        state = physics.state()
        state["pusher_down"] = np.bool_(True)
        image = render(scene, state, view, (640, 480))
        # The top face of the pusher (the oblique view sees it; the top view sees every height alike).
        top = [*scene.table_to_base(np.array(tip)), scene.table_z + scene.contact_height]
        u, v = np.round(calibration.project(np.array([top]))[0]).astype(int)
        assert tuple(image[v, u]) == PUSHER, (view, tip)
