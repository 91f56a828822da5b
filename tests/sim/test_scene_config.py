"""SceneConfig: loading from the rig YAML, validation errors, frames and block geometry."""

from pathlib import Path

import numpy as np
import pytest

from robot_stack.config import ConfigError, load_dataclass, read_yaml
from robot_stack.sim.pusht import SceneConfig
from robot_stack.sim.pusht.geometry import polygon_area

RIG = Path(__file__).resolve().parents[2] / "hardware_configs" / "sim_pusht.yaml"


def test_rig_yaml_scene_section_loads():
    data = read_yaml(RIG)
    assert data["name"] == "sim_pusht"
    cfg = load_dataclass(SceneConfig, data["scene"], "scene")
    assert cfg.table_size == (0.5, 0.5)
    assert cfg.goal_pose[2] == pytest.approx(np.pi / 4)
    assert cfg.robot_pose_key == "actual_tcp_pose"


@pytest.mark.parametrize(
    "section, message",
    [
        ({"pusher_radius": -0.01}, "pusher_radius must be a positive number"),
        ({"success_threshold": 1.5}, "success_threshold is an IoU"),
        ({"goal_pose": [0.3, 0.0, 0.0]}, "outside the 0.5 x 0.5 m table"),
        ({"bar_thickness": 0.2}, "bar_thickness (0.2) must be smaller than bar_length"),
        ({"reset_margin": 0.3}, "leaves no room for random block positions"),
        ({"table_size": [0.5]}, "scene.table_size: expected 2 values"),
        ({"goal_pos": [0, 0, 0]}, "did you mean 'goal_pose'"),
    ],
)
def test_bad_scene_config_names_the_problem(section, message):
    with pytest.raises(ConfigError) as err:
        load_dataclass(SceneConfig, section, "scene")
    assert message in str(err.value)
    assert str(err.value).startswith("scene")


def test_table_base_mapping_roundtrip_with_yaw():
    cfg = SceneConfig(table_center=(0.4, -0.1), table_yaw=np.pi / 2)
    assert np.allclose(cfg.table_to_base(np.zeros(2)), [0.4, -0.1])
    # Table +x points along base +y when the table is turned by 90 degrees.
    assert np.allclose(cfg.table_to_base(np.array([0.1, 0.0])), [0.4, 0.0])
    xy = np.random.default_rng(0).uniform(-1, 1, (5, 2))
    assert np.allclose(cfg.base_to_table(cfg.table_to_base(xy)), xy)


def test_block_geometry_is_a_t_centred_on_its_centroid():
    cfg = SceneConfig()
    bar, stem = cfg.block_parts
    area = abs(polygon_area(bar)) + abs(polygon_area(stem))
    assert area == pytest.approx(0.12 * 0.03 + 0.03 * 0.09)
    outline = cfg.block_outline
    assert polygon_area(outline) == pytest.approx(area)  # counter-clockwise, same area as the parts
    centroid = (bar.mean(0) * abs(polygon_area(bar)) + stem.mean(0) * abs(polygon_area(stem))) / area
    assert np.allclose(centroid, 0.0, atol=1e-12)
    assert outline[:, 0].max() - outline[:, 0].min() == pytest.approx(0.12)
    assert outline[:, 1].max() - outline[:, 1].min() == pytest.approx(0.12)


def test_contact_height_decides_tip_down():
    cfg = SceneConfig(table_z=0.1, contact_height=0.03)
    assert cfg.pusher_in_contact(cfg.push_z)
    assert not cfg.pusher_in_contact(0.1 + 0.031)
