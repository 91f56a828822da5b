"""Timestamped gripper waypoints: interpolation in time, stale and invalid ones dropped, faults, the process."""

import math
import time

import pytest

from robot_stack.config import load_dataclass
from robot_stack.hardware.gripper.config import GripperConfig
from robot_stack.hardware.gripper.controller import GripperController, GripperLoop
from robot_stack.hardware.gripper.interface import GripperFaultError
from robot_stack.hardware.gripper.sim import SimGripper
from robot_stack.hardware.robot.clock import SimClock
from robot_stack.runtime import now


def _loop(**section):
    config = load_dataclass(GripperConfig, {"speed": 0.15, "sim": {"activation_time": 0.0}, **section})
    clock = SimClock()
    loop = GripperLoop(SimGripper(config, clock), config, clock)
    loop.start()
    return loop, clock


def _run(loop, clock, until, dt=0.02):
    records = []
    while clock.now() < until - 1e-9:
        clock.advance(dt)
        records.append(loop.cycle())
    return records


def test_widths_are_interpolated_in_time_between_waypoints():
    loop, clock = _loop()
    loop.schedule_waypoint(0.045, 1.0)  # from open (0.085) to 0.045 over 1 s: 4 cm/s
    loop.schedule_waypoint(0.065, 1.5)
    records = _run(loop, clock, 2.0)
    at = {round(r["timestamp"], 2): r for r in records}
    assert at[0.5]["commanded_width"] == pytest.approx(0.065)
    assert at[1.0]["commanded_width"] == pytest.approx(0.045)
    assert at[1.26]["commanded_width"] == pytest.approx(0.055, abs=1e-3)
    assert at[2.0]["commanded_width"] == pytest.approx(0.065)
    # The fingers follow within a cycle and a register step of the plan.
    assert max(abs(r["width"] - r["commanded_width"]) for r in records) < 0.15 * 0.02 + 0.085 / 255 + 1e-9
    assert at[2.0]["width"] == pytest.approx(0.065, abs=0.085 / 255)


def test_a_waypoint_whose_time_has_passed_is_dropped_never_executed_late():
    loop, clock = _loop()
    clock.advance(1.0)
    loop.schedule_waypoint(0.0, 0.9)
    records = _run(loop, clock, 1.5)
    assert records[-1]["n_dropped"] == 1 and records[-1]["width"] == pytest.approx(0.085)


@pytest.mark.parametrize("width", [math.nan, math.inf, -0.01, 0.2])
def test_invalid_widths_are_rejected(width):
    loop, clock = _loop()
    loop.schedule_waypoint(width, 0.5)
    records = _run(loop, clock, 1.0)
    assert records[-1]["n_rejected"] == 1 and records[-1]["width"] == pytest.approx(0.085)


def test_a_new_waypoint_replaces_the_plan_after_its_time():
    loop, clock = _loop()
    loop.schedule_waypoint(0.0, 2.0)
    loop.schedule_waypoint(0.075, 0.5)  # earlier: the close at 2 s is dropped
    records = _run(loop, clock, 2.5)
    assert records[-1]["commanded_width"] == pytest.approx(0.075)


def test_stop_holds_the_fingers_and_drops_the_plan():
    loop, clock = _loop()
    loop.schedule_waypoint(0.0, 1.0)
    _run(loop, clock, 0.5)
    loop.stop()
    held = _run(loop, clock, 1.5)[-1]
    assert held["width"] == pytest.approx(0.0425, abs=0.005) and held["velocity"] == 0.0


def test_closing_on_an_object_is_reported_and_a_fault_stops_the_loop():
    loop, clock = _loop(sim={"activation_time": 0.0, "object_width": 0.03})
    loop.schedule_waypoint(0.0, 0.5)
    last = _run(loop, clock, 1.0)[-1]
    assert last["object_detected"] and last["width"] == pytest.approx(0.03)
    loop.gripper.model.fault = 0x0E
    clock.advance(0.02)
    with pytest.raises(GripperFaultError, match="overcurrent"):
        loop.cycle()


def test_the_gripper_process_follows_waypoints_and_drops_stale_ones():
    config = load_dataclass(GripperConfig, {"speed": 0.15, "sim": {"activation_time": 0.1}})
    with GripperController(config) as proc:
        first = proc.client.get_state()
        assert first["activated"] and first["width"] == pytest.approx(0.085)
        proc.client.schedule_waypoint(0.02, now() - 0.1)  # already in the past
        proc.client.schedule_waypoint(0.04, now() + 0.3)
        deadline = time.monotonic() + 10
        state = proc.client.get_state()
        while time.monotonic() < deadline and not (state["width"] == pytest.approx(0.04, abs=0.001)):
            time.sleep(0.05)
            state = proc.client.get_state()
        assert state["width"] == pytest.approx(0.04, abs=0.001)
        assert state["n_dropped"] == 1 and state["n_rejected"] == 0
        assert proc.is_alive()


def test_the_gripper_process_drives_a_wsg_through_its_protocol():
    from robot_stack.hardware.gripper.wsg_loopback import WSGLoopback

    config = load_dataclass(GripperConfig, {"driver": "wsg", "host": "127.0.0.1", "speed": 0.2,
                                            "sim": {"activation_time": 0.1}})
    with WSGLoopback(config) as twin, GripperController(GripperConfig(**{**config.__dict__, "port": twin.port})) as proc:
        assert proc.client.get_state()["activated"]  # homed at start
        proc.client.schedule_waypoint(0.05, now() + 0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and abs(proc.client.get_state()["width"] - 0.05) > 1e-4:
            time.sleep(0.05)
        assert proc.client.get_state()["width"] == pytest.approx(0.05, abs=1e-4)
        assert twin.model.width == pytest.approx(0.05, abs=1e-4) and proc.is_alive()
