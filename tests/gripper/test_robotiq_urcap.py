"""The real Robotiq URCap driver against the socket twin: activation, motion, object detection, faults, errors."""

import socket

import pytest

from robot_stack.config import ConfigError, load_dataclass
from robot_stack.hardware.gripper.config import MODELS, GripperConfig
from robot_stack.hardware.gripper.interface import (
    GripperConnectionError,
    GripperFaultError,
    GripperNotActivatedError,
)
from robot_stack.hardware.gripper.robotiq import (
    RobotiqURCapGripper,
    from_register,
    position_to_width,
    to_register,
    width_to_position,
)
from robot_stack.hardware.gripper.urcap_loopback import URCapLoopback

STEP = MODELS["2f85"].stroke / 255  # one POS register step, m


def _section(**changes) -> dict:
    sim = changes.pop("sim", {"activation_time": 0.1})
    return {"driver": "robotiq", "host": "127.0.0.1", "sim": sim, **changes}


def _config(**changes) -> GripperConfig:
    return load_dataclass(GripperConfig, _section(**changes))


@pytest.fixture
def rig(twin_and_driver):
    """``rig(**section changes) -> (twin, connected driver)``."""
    return lambda **changes: twin_and_driver(URCapLoopback, RobotiqURCapGripper, _section(**changes))


def test_activate_then_move_to_a_width_and_back_open(rig, settle):
    twin, driver = rig()
    assert not driver.get_state().activated
    driver.activate(timeout=2.0)
    assert driver.get_state().activated and driver.get_state().ok

    driver.move(0.04, speed=0.15, force=50)
    state, velocities = settle(driver)
    assert abs(state.width - 0.04) <= STEP
    assert min(velocities) < -0.01  # it closed, at a measured negative velocity
    assert not state.object_detected
    assert twin.registers["GTO"] == 1 and twin.registers["POS"] == width_to_position(0.04, MODELS["2f85"])

    driver.open(speed=0.15, force=50)
    state, velocities = settle(driver)
    assert state.width == pytest.approx(MODELS["2f85"].stroke)
    assert max(velocities) > 0.01


def test_closing_onto_an_object_stops_on_it_and_reports_it(rig, settle):
    _, driver = rig(sim={"activation_time": 0.1, "object_width": 0.03})
    driver.activate(timeout=2.0)
    driver.close(speed=0.15, force=100)
    state, _ = settle(driver)
    assert state.object_detected
    assert abs(state.width - 0.03) <= STEP


def test_speed_and_force_are_clamped_to_the_rigs_limits(rig):
    twin, driver = rig(max_speed=0.05, max_force=60.0, speed=0.05)
    driver.activate(timeout=2.0)
    driver.move(0.02, speed=1.0, force=1000.0)
    spec = MODELS["2f85"]
    assert twin.registers["SPE"] == to_register(0.05, *spec.speed_range)
    assert twin.registers["FOR"] == to_register(60.0, *spec.force_range)


def test_motion_before_activation_is_refused(rig):
    _, driver = rig()
    with pytest.raises(GripperNotActivatedError, match="not activated"):
        driver.move(0.02, 0.1, 50)


def test_a_fault_is_reported_in_words_and_cleared_by_activating_again(rig, settle):
    twin, driver = rig()
    driver.activate(timeout=2.0)
    twin.inject_fault(0x0E)
    state = driver.get_state()
    assert state.fault == "overcurrent triggered" and not state.ok
    with pytest.raises(GripperFaultError, match="overcurrent"):
        driver.move(0.02, 0.1, 50)
    driver.activate(timeout=2.0)  # reset (ACT 0) clears the fault, then ACT 1
    assert driver.get_state().ok
    driver.move(0.08, 0.15, 50)
    assert abs(settle(driver)[0].width - 0.08) <= STEP


def test_an_activation_fault_fails_activate_with_the_reason(rig):
    twin, driver = rig()
    twin.model.activation_fault = 0x0D  # something obstructs the fingers
    with pytest.raises(GripperFaultError, match="activation fault"):
        driver.activate(timeout=2.0)


def test_an_unreachable_socket_is_one_clear_error():
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = RobotiqURCapGripper(GripperConfig(**{**_config().__dict__, "port": port, "connect_timeout": 0.5}))
    with pytest.raises(GripperConnectionError, match=rf"127\.0\.0\.1:{port} unreachable.*URCap"):
        driver.connect()


def test_the_twin_survives_malformed_requests(rig):
    twin, driver = rig()
    for line in ("", "SET", "SET POS", "SET POS 999", "SET XYZ 1", "GET", "GET XYZ", "SET POS -1", "\x00\xff"):
        assert twin.handle_line(line) == b"?\n"
    with socket.create_connection(("127.0.0.1", twin.port), timeout=2) as raw:
        raw.sendall(b"\xff\xfe garbage\nSET POS\nGET STA\n")
        data = b""
        while b"STA" not in data:
            data += raw.recv(1024)
    assert data.endswith(b"STA 0\n")
    assert driver.get_state().width == pytest.approx(MODELS["2f85"].stroke)  # the driver's connection still works


@pytest.mark.parametrize("model", sorted(MODELS))
def test_register_conversions(model):
    spec = MODELS[model]
    assert width_to_position(spec.stroke, spec) == 0 and width_to_position(0.0, spec) == 255
    for pos in range(256):
        assert width_to_position(position_to_width(pos, spec), spec) == pos
    lo, hi = spec.speed_range
    assert to_register(lo, lo, hi) == 0 and to_register(hi, lo, hi) == 255 and to_register(10 * hi, lo, hi) == 255
    assert from_register(to_register((lo + hi) / 2, lo, hi), lo, hi) == pytest.approx((lo + hi) / 2, abs=(hi - lo) / 255)


@pytest.mark.parametrize("section, message", [
    ({"driver": "robotiq"}, "gripper.host is required"),
    ({"max_speed": 0.5}, r"max_speed must be within the 2f85's range \[0.02, 0.15\]"),
    ({"model": "2f140", "force": 200.0}, r"gripper.force must be in \(0, 125\]"),
    ({"sim": {"object_width": 0.1}}, "does not fit"),
    ({"model": "3f"}, "model"),
    ({"rate": 500}, r"gripper.rate must be in \[1, 200\] Hz"),
])
def test_bad_gripper_sections_name_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        load_dataclass(GripperConfig, section, "gripper")
