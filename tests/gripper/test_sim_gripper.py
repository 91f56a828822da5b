"""The in-process simulated gripper on a simulated clock: the width model's motion, exactly."""

import pytest

from robot_stack.config import load_dataclass
from robot_stack.hardware.gripper.config import GripperConfig
from robot_stack.hardware.gripper.interface import GripperConnectionError, GripperFaultError, GripperNotActivatedError
from robot_stack.hardware.gripper.sim import SimGripper
from robot_stack.hardware.robot.clock import SimClock


def _gripper(**sim):
    clock = SimClock()
    gripper = SimGripper(load_dataclass(GripperConfig, {"sim": {"activation_time": 0.5, **sim}}), clock)
    gripper.connect()
    return gripper, clock


def test_activation_waits_on_the_clock_and_motion_follows_the_commanded_speed():
    gripper, clock = _gripper()
    with pytest.raises(GripperNotActivatedError):
        gripper.close(0.1, 50)
    gripper.activate()
    assert clock.now() == pytest.approx(0.5) and gripper.get_state().activated
    gripper.move(0.045, speed=0.1, force=50)  # 4 cm to go at 0.1 m/s
    clock.advance(0.2)
    state = gripper.get_state()
    assert state.width == pytest.approx(0.085 - 0.02) and state.velocity == pytest.approx(-0.1)
    clock.advance(0.3)
    state = gripper.get_state()
    assert state.width == pytest.approx(0.045) and not state.object_detected
    clock.advance(0.1)
    assert gripper.get_state().velocity == 0.0


def test_speed_is_capped_by_the_model_and_an_object_stops_the_fingers():
    gripper, clock = _gripper(object_width=0.05)
    gripper.activate()
    gripper.close(speed=5.0, force=50)  # the 2F-85 closes at 0.15 m/s at most
    clock.advance(0.1)
    assert gripper.get_state().width == pytest.approx(0.085 - 0.015)
    clock.advance(1.0)
    state = gripper.get_state()
    assert state.object_detected and state.width == pytest.approx(0.05)


def test_faults_stop_the_fingers_and_refuse_motion():
    gripper, clock = _gripper()
    gripper.activate()
    gripper.close(0.1, 50)
    clock.advance(0.1)
    assert gripper.get_state().width == pytest.approx(0.075)
    gripper.model.fault = 0x08
    clock.advance(0.1)
    state = gripper.get_state()
    assert state.width == pytest.approx(0.075) and "temperature" in state.fault
    with pytest.raises(GripperFaultError, match="temperature"):
        gripper.open(0.1, 50)


def test_a_disconnected_sim_gripper_says_so():
    gripper, _ = _gripper()
    gripper.disconnect()
    with pytest.raises(GripperConnectionError, match="not connected"):
        gripper.get_state()
