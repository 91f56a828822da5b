import copy

import pytest
import yaml
from conftest import RIGS

from robot_stack.config import ConfigError
from robot_stack.hardware.robot.config import RobotConfig, load_robot_config


def rig(name: str) -> dict:
    return yaml.safe_load((RIGS / name).read_text())


def test_example_rigs_load():
    sim = load_robot_config(RIGS / "sim_ur5.yaml")
    assert sim.driver == "sim" and sim.period == pytest.approx(1 / 125)
    real = load_robot_config(RIGS / "ur5_cb3_example.yaml")
    assert real.driver == "rtde" and real.robot_ip == "192.168.0.10" and real.payload_mass == 0.5
    # a rig mapping and the bare section give the same config
    assert load_robot_config(rig("sim_ur5.yaml")) == load_robot_config(rig("sim_ur5.yaml")["robot"]) == sim


def with_changes(base: str, **changes) -> dict:
    data = copy.deepcopy(rig(base))
    data["robot"].update(changes)
    return data


@pytest.mark.parametrize(
    "base, changes, message",
    [
        ("ur5_cb3_example.yaml", {"frequency": 200}, r"125 \(CB3\) or 500 \(e-series\)"),
        ("ur5_cb3_example.yaml", {"robot_ip": ""}, "robot_ip is required"),
        ("ur5_cb3_example.yaml", {"robot_ip": "192.168.0.10 "}, "neither an IP address nor a host name"),
        ("sim_ur5.yaml", {"frequency": 0.0}, "frequency must be in"),
        ("sim_ur5.yaml", {"workspace": {"min": [0.2, 0.3, 0.0], "max": [0.7, 0.25, 0.3]}}, "not on y"),
        ("sim_ur5.yaml", {"workspace": {"min": [0.5, -0.25, 0.0], "max": [0.7, 0.25, 0.3]}}, "home pose's TCP"),
        ("sim_ur5.yaml", {"home_joints": [9.0, 0, 0, 0, 0, 0]}, "outside joint_limits"),
        ("sim_ur5.yaml", {"lookahead_time": 0.5}, r"lookahead_time must be in \[0.03, 0.2\]"),
        ("sim_ur5.yaml", {"gain": 50}, "gain must be in"),
        ("sim_ur5.yaml", {"max_pos_speed": 3.0}, "max_pos_speed must be in"),
        ("sim_ur5.yaml", {"command_timeout": 0.001}, "command_timeout must be in"),
        ("sim_ur5.yaml", {"tcp_offset": [0, 0, 150, 0, 0, 0]}, "is it in meters"),
        ("sim_ur5.yaml", {"payload_mass": 8.0}, "payload_mass"),
        ("sim_ur5.yaml", {"home_joints": [0, 0, 0]}, r"robot.home_joints: expected 6 values"),
        ("sim_ur5.yaml", {"max_pos_sped": 0.1}, "did you mean 'max_pos_speed'"),
        ("sim_ur5.yaml", {"driver": "ursim"}, r"must be one of \['sim', 'rtde'\]"),
        ("sim_ur5.yaml", {"sim": {"max_joint_speed": [9.0] * 6}}, "sim.max_joint_speed"),
    ],
)
def test_bad_values_raise_config_errors_naming_the_key(base, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_robot_config(with_changes(base, **changes))


def test_missing_sections_and_files(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text("name: no_robot\n")
    with pytest.raises(ConfigError, match="no 'robot:' section"):
        load_robot_config(path)
    with pytest.raises(ConfigError, match="rig file not found"):
        load_robot_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="robot.workspace: required key is missing"):
        load_robot_config({"home_joints": [0] * 6})


def test_replace_revalidates(sim_config: RobotConfig):
    assert sim_config.replace(frequency=500.0).period == pytest.approx(0.002)
    with pytest.raises(ConfigError, match="frequency"):
        sim_config.replace(driver="rtde", robot_ip="10.0.0.2", frequency=250.0)
