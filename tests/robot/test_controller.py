"""The RobotController process end to end, in real time on the simulated arm."""

import os
import signal
import time

import numpy as np
import pytest
from fake_ur import free_loopback_ip
from robot_procs import Commander, faulty_arm

from robot_stack.hardware.robot.controller import STATE_SPEC, RobotController
from robot_stack.runtime import ProcessFailed, Supervisor, now


def segments(*buffers) -> list[str]:
    return [b.name for b in buffers]


def assert_released(names):
    left = [n for n in names if os.path.exists(f"/dev/shm/{n}")]
    assert not left, f"shared memory not released: {left}"


def test_state_is_published_at_loop_rate_and_waypoints_are_executed(sim_config):
    config = sim_config.replace(command_timeout=2.0)
    with RobotController(config) as robot:
        names = segments(robot.state, robot.commands)
        state = robot.get_state()
        assert set(state) == set(STATE_SPEC)
        p0 = state["actual_tcp_pose"]
        t0 = now()
        assert abs(state["timestamp"] - t0) < 0.5  # runtime clock
        waypoints = [(t0 + 0.4, p0 + [0.03, 0, 0, 0, 0, 0]), (t0 + 0.8, p0 + [0.03, 0.03, 0, 0, 0, 0])]
        for t, pose in waypoints:
            robot.schedule_waypoint(pose, t)
        robot.schedule_waypoint(p0, t0 - 1.0)  # in the past: dropped
        robot.schedule_waypoint(p0 + [float("nan"), 0, 0, 0, 0, 0], t0 + 1.0)  # rejected
        time.sleep(1.3)
        rec = robot.get_all_state()
    assert_released(names)
    assert rec["n_dropped"][-1] == 1 and rec["n_rejected"][-1] == 1
    assert np.all(np.diff(rec["timestamp"]) > 0)
    period = np.median(np.diff(rec["loop_time"]))
    assert period == pytest.approx(config.period, rel=0.05)
    for t, pose in waypoints:
        i = int(np.argmin(np.abs(rec["loop_time"] - t)))
        # generous: a busy 2-core machine may delay a cycle by a few ms
        assert np.linalg.norm(rec["commanded_pose"][i, :3] - pose[:3]) < 0.004
        assert np.linalg.norm(rec["actual_tcp_pose"][i, :3] - pose[:3]) < 0.015
    np.testing.assert_allclose(rec["actual_tcp_pose"][-1, :3], waypoints[-1][1][:3], atol=2e-3)
    assert np.all(np.isfinite(rec["commanded_pose"]))


def test_killing_the_commander_makes_the_arm_hold_within_the_command_timeout(sim_config, wait_for):
    config = sim_config.replace(command_timeout=0.3)
    with RobotController(config) as robot:
        p0 = robot.get_state()["actual_tcp_pose"]
        commander = Commander(robot.client, p0, velocity=[0.05, 0.0, 0.0], lead=0.5)
        with commander:
            time.sleep(0.8)
            assert np.linalg.norm(robot.get_state()["actual_tcp_speed"][:3]) > 0.03  # moving
            os.kill(commander.pid, signal.SIGKILL)
            t_kill = now()
            commander.join(5)
        assert wait_for(lambda: robot.get_state()["holding"], timeout=1.0)
        t_hold = robot.get_state()["timestamp"]
        assert wait_for(lambda: np.linalg.norm(robot.get_state()["actual_tcp_speed"]) < 1e-6, timeout=1.0)
        t_rest = now()
        time.sleep(0.3)
        state = robot.get_state()
    assert t_hold - t_kill < 0.3 + 0.25  # the timeout plus slack for a loaded machine
    assert t_rest - t_kill < 1.2
    assert state["holding"] and np.linalg.norm(state["actual_tcp_speed"]) < 1e-6


def test_a_watched_process_dying_latches_the_hold(sim_config, wait_for):
    config = sim_config.replace(command_timeout=5.0)  # the command watchdog alone would wait 5 s
    with RobotController(config) as robot:
        p0 = robot.get_state()["actual_tcp_pose"]
        with Commander(robot.client, p0, velocity=[0.0, 0.04, 0.0], lead=0.5) as commander:
            robot.add_watch(commander)
            time.sleep(0.6)
            os.kill(commander.pid, signal.SIGKILL)
            t_kill = now()
            assert wait_for(lambda: robot.get_state()["holding"], timeout=1.0)
            assert now() - t_kill < 0.5
        n_rejected = robot.get_state()["n_rejected"]
        robot.servo_l(p0, 0.5)  # nobody may resume motion after a watched peer died
        time.sleep(0.2)
        state = robot.get_state()
    assert state["holding"] and state["n_rejected"] == n_rejected + 1


def test_killing_the_controller_makes_the_supervisor_stop_everything(sim_config, wait_for):
    robot = RobotController(sim_config)
    commander = Commander(robot.client, [0.45, 0.0, 0.1, 0.0, np.pi, 0.0], velocity=[0.0, 0.0, 0.0])
    names = segments(robot.state, robot.commands)
    with Supervisor([robot, commander]) as sup:
        time.sleep(0.3)
        os.kill(robot.pid, signal.SIGKILL)
        assert wait_for(lambda: not sup.running, timeout=10)
        with pytest.raises(ProcessFailed, match="process 'robot': "):
            sup.check()
        commander.join(5)
        assert not commander.is_alive()
    assert_released(names)


def test_unreachable_robot_fails_setup_with_a_clear_error(sim_config):
    ip = free_loopback_ip()  # nothing listens there
    config = sim_config.replace(driver="rtde", robot_ip=ip, frequency=125.0, connect_timeout=0.3)
    robot = RobotController(config)
    names = segments(robot.state, robot.commands)
    with pytest.raises(ProcessFailed, match=f"cannot reach the UR controller at {ip}:29999"):
        robot.start(timeout=20)
    assert_released(names)


def test_protective_stop_fails_the_process_with_the_reason(sim_config, wait_for):
    robot = RobotController(sim_config, driver_factory=faulty_arm)
    with Supervisor([robot]) as sup:
        assert wait_for(lambda: not sup.running, timeout=10)
        with pytest.raises(ProcessFailed, match="protective stop \\(simulated collision\\)"):
            sup.check()
