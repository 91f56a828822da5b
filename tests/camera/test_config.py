"""CameraConfig validation: every bad value is a ConfigError naming the camera and the key."""

import pytest

from robot_stack.config import ConfigError, load_dataclass
from robot_stack.hardware.camera import CameraConfig


def load(**entry):
    return load_dataclass(CameraConfig, {"name": "wrist", **entry}, "cameras[0]")


def test_defaults_and_image_size():
    cfg = load(resolution=[1280, 720], crop=[160, 0, 960, 720], output_resolution=[320, 240])
    assert cfg.driver == "sim" and cfg.fps == 30
    assert cfg.image_size == (320, 240)
    assert load(crop=[0, 0, 480, 480]).image_size == (480, 480)
    assert load().image_size == (640, 480)
    assert load(fps=15, buffer_seconds=2).buffer_capacity == 30


@pytest.mark.parametrize("entry, message", [
    ({"driver": "realsense"}, "needs 'serial'"),
    ({"serial": "123"}, "'serial' is only for driver: realsense"),
    ({"driver": "realsense", "serial": 123456}, "cameras[0].serial: expected a string"),
    ({"driver": "realsense", "playback_file": "session.bag"}, "must be a librealsense .db3 file"),
    ({"crop": [600, 0, 100, 100]}, "must lie inside the 640x480 capture"),
    ({"output_resolution": [225, 225]}, "must be positive and even"),
    ({"exposure": -5}, "exposure must be 'auto' or a positive number"),
    ({"exposure": "manual"}, "cameras[0].exposure"),
    ({"gain": 16}, "gain is only used with a fixed exposure"),
    ({"fps": 0}, "fps must be in [1, 300]"),
    ({"resolution": [640]}, "expected 2 values"),
    ({"fsp": 30}, "did you mean 'fps'"),
])
def test_bad_entries_name_what_to_fix(entry, message):
    with pytest.raises(ConfigError) as err:
        load(**entry)
    assert message in str(err.value)
    assert str(err.value).startswith("cameras[0]")
