from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from robot_stack.config import ConfigError, load_dataclass, read_yaml


@dataclass
class Box:
    min: tuple[float, float, float]
    max: tuple[float, float, float]

    def __post_init__(self):
        if any(a >= b for a, b in zip(self.min, self.max)):
            raise ConfigError(f"min {self.min} must be below max {self.max} on every axis")


@dataclass
class Robot:
    ip: str
    frequency: Literal[125, 500] = 125
    gain: float = 300.0
    workspace: Box = field(default_factory=lambda: Box((-1, -1, 0), (1, 1, 1)))
    serials: list[str] = field(default_factory=list)
    payload: Optional[float] = None


def test_loads_nested_values_and_defaults():
    cfg = load_dataclass(Robot, {"ip": "10.0.0.2", "gain": 200, "workspace": {"min": [0, 0, 0], "max": [1, 1, 1]}})
    assert cfg.gain == 200.0 and isinstance(cfg.gain, float)
    assert cfg.workspace.min == (0.0, 0.0, 0.0)
    assert cfg.frequency == 125 and cfg.payload is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"ip": "x", "gian": 1.0}, r"robot.gian: unknown key \(did you mean 'gain'\?\)"),
        ({}, "robot.ip: required key is missing"),
        ({"ip": "x", "frequency": 250}, r"robot.frequency: must be one of \[125, 500\], got 250"),
        ({"ip": "x", "gain": "high"}, "robot.gain: expected a number, got 'high'"),
        ({"ip": "x", "gain": True}, "robot.gain: expected a number"),
        ({"ip": "x", "workspace": {"min": [0, 0], "max": [1, 1, 1]}}, r"robot.workspace.min: expected 3 values, got 2"),
        ({"ip": "x", "workspace": {"min": [2, 0, 0], "max": [1, 1, 1]}}, "robot.workspace: min .* must be below max"),
        ({"ip": "x", "serials": [123]}, r"robot.serials\[0\]: expected a string"),
        ("not a mapping", "robot: expected a mapping"),
    ],
)
def test_errors_name_the_key_to_fix(data, message):
    with pytest.raises(ConfigError, match=message):
        load_dataclass(Robot, data, "robot")


def test_read_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("robot: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        read_yaml(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="must contain a mapping"):
        read_yaml(scalar)
    good = tmp_path / "good.yaml"
    good.write_text("name: rig\nrobot: {ip: 1.2.3.4}\n")
    assert read_yaml(good) == {"name": "rig", "robot": {"ip": "1.2.3.4"}}
