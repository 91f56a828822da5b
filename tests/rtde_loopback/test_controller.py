"""The loopback controller and its emulation of ur_rtde's control script, driven register by register."""

import time

import numpy as np
import pytest
from rtde_loopback_helpers import CONTROL_SCRIPT

from robot_stack.hardware.robot.rtde_loopback import CB3, LoopbackController
from robot_stack.hardware.robot.rtde_loopback.controller import RUNTIME_PLAYING, RUNTIME_STOPPED
from robot_stack.hardware.robot.sim_ur5 import SimUR5

READY, DONE = 1, 2
SERVOL, SERVO_STOP, STOPL, MOVEL, FORCE_MODE, SET_WATCHDOG, SET_TCP, IS_STEADY = 24, 16, 33, 3, 6, 35, 29, 47


@pytest.fixture
def ctl(sim_config):
    return LoopbackController(SimUR5(sim_config), CB3, sim_config.tcp_offset)


def send(ctl, cmd, doubles=(), ints=(), offset=0):
    """Write a command the way ur_rtde does: command id, int arguments from register 1, doubles from 0."""
    names = [f"input_int_register_{offset}"] + [f"input_int_register_{offset + 1 + i}" for i in range(len(ints))]
    names += [f"input_double_register_{offset + i}" for i in range(len(doubles))]
    ctl.apply_inputs(names, [cmd, *ints, *doubles])


def state(ctl, offset=0):
    return ctl.registers.output_int[offset]


def run_until(ctl, predicate, max_ticks):
    for n in range(max_ticks):
        ctl.tick()
        if predicate():
            return n + 1
    raise AssertionError(f"condition not met within {max_ticks} control cycles")


def servo_args(pose, lookahead=0.1, gain=300.0):
    return [*pose, 0.5, 0.5, 0.008, lookahead, gain]


def test_no_program_until_the_control_script_is_uploaded(ctl):
    send(ctl, SERVOL, servo_args(ctl.frame["actual_TCP_pose"]))
    ctl.tick()
    assert ctl.frame["runtime_state"] == RUNTIME_STOPPED
    assert ctl.frame["robot_status_bits"] & 2 == 0
    assert state(ctl) == 0  # nobody answers
    assert not ctl.load_program("def my_program():\n  movej([0,0,0,0,0,0])\nend\n")
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=0))
    ctl.tick()
    assert ctl.frame["runtime_state"] == RUNTIME_PLAYING
    assert ctl.frame["robot_status_bits"] & 2


@pytest.mark.parametrize("offset", [0, 24])
def test_servo_l_moves_the_arm_and_the_script_stays_ready(ctl, offset):
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=offset))
    assert ctl.script.offset == offset and state(ctl, offset) == READY
    start = np.array(ctl.frame["actual_TCP_pose"])
    target = start + [0.0, 0.0, 0.02, 0.0, 0.0, 0.0]
    send(ctl, SERVOL, servo_args(target), offset=offset)
    for _ in range(int(1.0 / ctl.period)):
        ctl.tick()
        assert state(ctl, offset) == READY  # real-time command: never "done", always ready for the next
    np.testing.assert_allclose(ctl.frame["target_TCP_pose"], target)
    np.testing.assert_allclose(ctl.frame["actual_TCP_pose"], target, atol=1e-4)


def test_stop_l_signals_done_at_rest_then_ready_after_clear(ctl):
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=0))
    target = np.array(ctl.frame["actual_TCP_pose"]) + [0.05, 0, 0, 0, 0, 0]
    send(ctl, SERVOL, servo_args(target, lookahead=0.03, gain=1000))
    for _ in range(10):
        ctl.tick()
    assert np.any(ctl.frame["actual_qd"])
    send(ctl, STOPL, [2.0], ints=[0])
    ticks = run_until(ctl, lambda: state(ctl) == DONE, 200)
    assert ticks > 1  # it took the deceleration, not an immediate acknowledgement
    assert not np.any(ctl.frame["actual_qd"])
    ctl.tick()
    assert state(ctl) == DONE  # stays done until the client clears the command
    send(ctl, 0)
    ctl.tick()
    assert state(ctl) == READY


def test_move_l_reaches_the_target_along_a_line(ctl):
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=0))
    start = np.array(ctl.frame["actual_TCP_pose"])
    target = start + [0.06, -0.04, 0.03, 0, 0, 0]
    send(ctl, MOVEL, [*target, 0.25, 1.2], ints=[0])
    direction = (target[:3] - start[:3]) / np.linalg.norm(target[:3] - start[:3])
    off_line = {"target_TCP_pose": 0.0, "actual_TCP_pose": 0.0}

    def done():
        for key in off_line:
            rel = np.array(ctl.frame[key][:3]) - start[:3]
            off_line[key] = max(off_line[key], float(np.linalg.norm(rel - (rel @ direction) * direction)))
        return state(ctl) == DONE

    ticks = run_until(ctl, done, 5 * 125)
    np.testing.assert_allclose(ctl.frame["actual_TCP_pose"], target, atol=5e-4)
    assert off_line["target_TCP_pose"] < 5e-4  # setpoints on the line (at the end the target is the actual pose)
    assert off_line["actual_TCP_pose"] < 5e-3  # the twin tracks them in joint space, with some lag
    # 8 cm at 0.25 m/s with 1.2 m/s^2 takes ~0.5 s: not instantaneous, not dawdling
    assert 0.3 < ticks * ctl.period < 2.0


def test_unsupported_command_stops_the_program_instead_of_acknowledging(ctl):
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=0))
    send(ctl, FORCE_MODE, [0.0] * 18)
    ctl.tick()
    assert not ctl.program_running
    assert ctl.frame["runtime_state"] == RUNTIME_STOPPED
    assert ctl.script.failed_commands == 1
    assert "forceMode" in ctl.script.stop_reason


@pytest.mark.parametrize("lookahead, gain", [(0.1, 0.0), (0.5, 300.0), (float("nan"), 300.0)])
def test_servo_l_with_out_of_range_parameters_is_a_runtime_error(ctl, lookahead, gain):
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=0))
    send(ctl, SERVOL, servo_args(ctl.frame["actual_TCP_pose"], lookahead, gain))
    ctl.tick()  # must not raise: a raw RTDE client can write anything
    assert not ctl.program_running
    assert "lookahead_time" in ctl.script.stop_reason


def test_set_tcp_must_match_the_arms_tcp(ctl, sim_config):
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=0))
    send(ctl, SET_TCP, list(sim_config.tcp_offset))
    ctl.tick()
    assert state(ctl) == DONE and ctl.program_running
    send(ctl, 0)
    ctl.tick()
    send(ctl, SET_TCP, [0, 0, 0.3, 0, 0, 0])
    ctl.tick()
    assert not ctl.program_running
    assert "tcp_offset" in ctl.script.stop_reason


def test_is_steady_reports_rest(ctl):
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=0))
    send(ctl, IS_STEADY)
    ctl.tick()
    assert state(ctl) == DONE and ctl.registers.output_int[1] == 1


def test_protective_stop_ends_the_program_until_unlocked(ctl):
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=0))
    jump = np.array(ctl.frame["actual_TCP_pose"]) + [0.3, 0, 0, 0, 0, 0]  # far beyond one servo step
    send(ctl, SERVOL, servo_args(jump))
    ctl.tick()
    assert ctl.frame["safety_status_bits"] & (1 << 2)
    assert ctl.frame["safety_mode"] == 3
    assert not ctl.program_running
    assert not ctl.load_program(CONTROL_SCRIPT.format(offset=0))  # PolyScope refuses too
    ctl.unlock_protective_stop()
    ctl.tick()
    assert ctl.frame["safety_status_bits"] == 1
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=0))


def test_watchdog_stops_the_program_when_the_client_goes_silent(ctl):
    assert ctl.load_program(CONTROL_SCRIPT.format(offset=0))
    send(ctl, SET_WATCHDOG, [20.0])  # client promises >= 20 Hz
    ctl.tick()
    assert state(ctl) == DONE
    send(ctl, 0)
    ctl.tick()
    assert ctl.program_running
    time.sleep(0.12)  # > 1/20 s without a write to input_int_register_0
    ctl.tick()
    assert not ctl.program_running
    assert "watchdog" in ctl.script.stop_reason


def test_io_inputs_drive_the_output_image(ctl):
    ctl.apply_inputs(["standard_digital_output_mask", "standard_digital_output"], [0b101, 0b001])
    ctl.apply_inputs(["tool_digital_output_mask", "tool_digital_output"], [0b10, 0b10])
    ctl.apply_inputs(["standard_analog_output_mask", "standard_analog_output_type", "standard_analog_output_0",
                      "standard_analog_output_1"], [0b10, 0, 0.7, 0.3])
    ctl.apply_inputs(["speed_slider_mask", "speed_slider_fraction"], [1, 0.4])
    ctl.apply_inputs(["input_bit_registers0_to_31", "input_bit_register_65"], [0xF0, True])
    ctl.tick()
    frame = ctl.frame
    assert frame["actual_digital_output_bits"] == 0b001 | (0b10 << 16)
    assert (frame["standard_analog_output0"], frame["standard_analog_output1"]) == (0.0, 0.3)
    assert frame["target_speed_fraction"] == 0.4
    assert frame["input_bit_registers0_to_31"] == 0xF0
    assert ctl.output_getter("input_bit_register_65")() is True
    assert ctl.output_getter("no_such_variable") is None


def test_an_input_belongs_to_one_client_at_a_time(ctl):
    a, b = object(), object()
    assert ctl.claim_inputs(a, ["input_int_register_0", "input_double_register_0"]) == ["INT32", "DOUBLE"]
    assert ctl.claim_inputs(b, ["input_int_register_1", "input_int_register_0"]) == ["INT32", "IN_USE"]
    assert ctl.claim_inputs(b, ["input_int_register_1"]) == ["INT32"]  # the failed claim reserved nothing
    assert ctl.claim_inputs(b, ["actual_q"]) == ["NOT_FOUND"]
    ctl.release_inputs(a)
    assert ctl.claim_inputs(b, ["input_int_register_0"]) == ["INT32"]


def test_rejects_an_object_that_is_not_an_arm():
    with pytest.raises(TypeError, match="LoopbackArm"):
        LoopbackController(object())
