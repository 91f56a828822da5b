"""The controller's servo loop in-process on the simulated arm and a SimClock (faster than real time)."""

import numpy as np
import pytest

from robot_stack.hardware.robot.clock import SimClock
from robot_stack.hardware.robot.interface import ProtectiveStopError, RobotError
from robot_stack.hardware.robot.interpolator import pose_distance
from robot_stack.hardware.robot.servo_loop import ServoLoop
from robot_stack.hardware.robot.sim_ur5 import SimUR5


class SpyArm(SimUR5):
    """The simulated arm, recording what the loop sends it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent: list[np.ndarray] = []
        self.calls: list[str] = []

    def servo_l(self, pose, *args):
        self.sent.append(np.array(pose, dtype=np.float64))
        return super().servo_l(pose, *args)

    def servo_stop(self, decel):
        self.calls.append("servo_stop")
        super().servo_stop(decel)

    def stop_script(self):
        self.calls.append("stop_script")
        super().stop_script()

    def disconnect(self):
        self.calls.append("disconnect")
        super().disconnect()


def make_loop(config, **changes):
    config = config.replace(**changes) if changes else config
    clock = SimClock(1000.0)
    arm = SpyArm(config, seed=0, clock=clock)
    arm.connect()
    loop = ServoLoop(arm, config, clock)
    loop.start()
    return loop, arm, clock


def run(loop, seconds, on_cycle=None):
    """Run cycles for ``seconds`` of sim time; ``on_cycle(t)`` may send commands; returns stacked records."""
    records = []
    t_end = loop.clock.now() + seconds
    while loop.clock.now() < t_end:
        if on_cycle is not None:
            on_cycle(loop.clock.now())
        records.append(loop.cycle())
        loop.wait_next()
    return {k: np.array([r[k] for r in records]) for k in records[0]}


def offset(pose, dx=0.0, dy=0.0, dz=0.0):
    out = np.array(pose, dtype=np.float64)
    out[:3] += [dx, dy, dz]
    return out


def test_executed_trajectory_passes_through_the_waypoints_at_their_times(sim_config):
    loop, arm, clock = make_loop(sim_config)
    p0 = arm.get_actual_tcp_pose()
    t0 = clock.now()
    # a square-ish path, streamed like a policy would: each waypoint sent 0.4 s ahead of its time
    waypoints = [(t0 + 0.5 * (i + 1), offset(p0, *d)) for i, d in enumerate(
        [(0.05, 0, 0), (0.05, 0.05, 0), (0, 0.05, 0.03), (0, 0, 0), (-0.05, 0, 0), (-0.05, -0.05, 0)])]
    pending = list(waypoints)

    def send(t):
        while pending and pending[0][0] - 0.4 <= t:
            wp_time, pose = pending.pop(0)
            assert loop.schedule_waypoint(pose, wp_time)
        if not pending and t < waypoints[-1][0]:
            loop.schedule_waypoint(waypoints[-1][1], waypoints[-1][0])  # keep the stream alive

    rec = run(loop, 4.0, send)
    assert rec["n_dropped"][-1] == 0 and rec["n_stretched"][-1] == 0 and rec["n_rejected"][-1] == 0
    assert not rec["holding"].any()
    for wp_time, pose in waypoints:
        i = int(np.argmin(np.abs(rec["loop_time"] - wp_time)))
        assert abs(rec["loop_time"][i] - wp_time) <= loop.period / 2 + 1e-9
        # the command is exactly on the waypoint at its time (up to one cycle of motion at <= 0.12 m/s)
        assert np.linalg.norm(rec["commanded_pose"][i, :3] - pose[:3]) < 0.12 * loop.period + 1e-9
        # the arm lags the command by about v * tau (1.2 cm at 0.12 m/s, tau = 0.1 s), a bit more at corners
        assert np.linalg.norm(rec["actual_tcp_pose"][i, :3] - pose[:3]) < 0.02
    # everything sent was inside the workspace and finite
    sent = np.array(arm.sent)
    assert np.all(np.isfinite(sent))
    assert all(sim_config.workspace.contains(p[:3]) for p in sent)
    # it ends on the last waypoint
    np.testing.assert_allclose(rec["actual_tcp_pose"][-1, :3], waypoints[-1][1][:3], atol=2e-3)


def test_past_waypoints_are_dropped_and_counted(sim_config):
    loop, arm, clock = make_loop(sim_config)
    p0 = arm.get_actual_tcp_pose()
    run(loop, 0.2)
    assert not loop.schedule_waypoint(offset(p0, dx=0.05), clock.now() - 0.01)
    rec = run(loop, 0.5)
    assert rec["n_dropped"][-1] == 1
    np.testing.assert_allclose(rec["commanded_pose"][-1], p0)  # the dropped waypoint was never executed


def test_speed_limits_hold_for_waypoints_that_ask_for_too_much(sim_config):
    loop, arm, clock = make_loop(sim_config)
    p0 = arm.get_actual_tcp_pose()
    far = offset(p0, dx=0.2, dy=-0.15)  # 25 cm in 0.1 s = 2.5 m/s requested; limit 0.25 m/s

    def send(t):
        loop.schedule_waypoint(far, max(t + 0.01, t_request))  # keep the stream alive at the same target

    t_request = clock.now() + 0.1
    rec = run(loop, 1.6, send)
    assert rec["n_stretched"][-1] >= 1
    cmd_speed = np.linalg.norm(np.diff(rec["commanded_pose"][:, :3], axis=0), axis=1) / np.diff(rec["loop_time"])
    assert cmd_speed.max() <= sim_config.max_pos_speed * (1 + 1e-6)
    assert cmd_speed.max() >= 0.9 * sim_config.max_pos_speed  # it does move at the limit, not slower
    assert np.linalg.norm(rec["actual_tcp_speed"][:, :3], axis=1).max() <= sim_config.max_pos_speed * 1.1
    # 25 cm at 0.25 m/s takes 1 s, not 0.1 s
    reached = rec["loop_time"][np.argmax(np.linalg.norm(rec["commanded_pose"][:, :3] - far[:3], axis=1) < 1e-9)]
    assert reached - t_request == pytest.approx(0.9, abs=0.05)


@pytest.mark.parametrize(
    "bad, reason",
    [
        (lambda p: offset(p, dx=float("nan")), "not a finite 6-vector"),
        (lambda p: offset(p, dz=float("inf")), "not a finite 6-vector"),
        (lambda p: offset(p, dx=0.5), "outside the workspace"),
        (lambda p: offset(p, dz=-0.5), "outside the workspace"),
        (lambda p: p[:5], "not a finite 6-vector"),
    ],
)
def test_bad_targets_are_rejected_logged_and_never_sent(sim_config, caplog, bad, reason):
    loop, arm, clock = make_loop(sim_config)
    p0 = arm.get_actual_tcp_pose()
    assert not loop.schedule_waypoint(bad(p0), clock.now() + 0.5)
    assert not loop.servo_l(bad(p0), 0.5)
    assert reason in caplog.text
    rec = run(loop, 0.5)
    assert rec["n_rejected"][-1] == 2
    sent = np.array(arm.sent)
    assert np.all(np.isfinite(sent)) and np.abs(sent - p0).max() < 1e-12  # only the held pose was ever sent


def test_unreachable_targets_inside_the_box_are_rejected(sim_config):
    # a workspace reaching inside the shoulder singularity cylinder (x, y near 0)
    from robot_stack.hardware.robot.config import Workspace

    loop, arm, _ = make_loop(sim_config, workspace=Workspace(min=(-0.1, -0.25, 0.01), max=(0.7, 0.25, 0.3)))
    target = np.array([0.0, 0.0, 0.2, 0.0, np.pi, 0.0])
    assert not loop.servo_l(target, 1.0)
    assert loop.n_rejected == 1


def test_watchdog_holds_when_the_command_stream_goes_silent(sim_config):
    loop, arm, clock = make_loop(sim_config, command_timeout=0.3)
    p0 = arm.get_actual_tcp_pose()
    t0 = clock.now()
    far = offset(p0, dx=0.2)  # a 1 s move at 0.2 m/s...
    rec = run(loop, 0.4, lambda t: loop.schedule_waypoint(far, t0 + 1.0))
    silent_from = rec["loop_time"][-1]
    rec = run(loop, 1.5)  # ...but the commander goes silent after 0.4 s
    first_hold = rec["loop_time"][np.argmax(rec["holding"])]
    assert rec["holding"].any() and "servo_stop" in arm.calls
    assert first_hold - silent_from == pytest.approx(0.3, abs=2 * loop.period)
    n_sent = len(arm.sent)
    assert n_sent == int(round((first_hold - t0) / loop.period))  # no servoL after the hold
    assert np.linalg.norm(rec["actual_tcp_speed"][-1, :3]) < 1e-9  # the arm came to rest...
    assert rec["actual_tcp_pose"][-1, 0] < far[0] - 0.05  # ...well short of the abandoned target
    # a new command resumes from where the arm is
    here = arm.get_actual_tcp_pose()
    assert loop.servo_l(offset(here, dy=0.02), 0.3)
    rec = run(loop, 0.6, lambda t: None)
    assert not rec["holding"][-1]
    np.testing.assert_allclose(rec["actual_tcp_pose"][-1, :3], offset(here, dy=0.02)[:3], atol=2e-3)


def test_finished_trajectories_do_not_trip_the_watchdog(sim_config):
    loop, arm, clock = make_loop(sim_config, command_timeout=0.2)
    assert loop.servo_l(offset(arm.get_actual_tcp_pose(), dx=0.01), 0.1)
    rec = run(loop, 1.0)
    assert not rec["holding"].any()


def test_stop_command_and_latched_hold(sim_config):
    loop, arm, clock = make_loop(sim_config)
    p0 = arm.get_actual_tcp_pose()
    loop.servo_l(offset(p0, dx=0.1), 1.0)
    run(loop, 0.3)
    loop.hold("stop command")
    rec = run(loop, 0.5)
    assert rec["holding"].all() and np.linalg.norm(rec["actual_tcp_speed"][-1]) < 1e-9
    assert not loop.schedule_waypoint(offset(p0, dx=0.05), clock.now() - 0.1)  # stale: dropped...
    assert loop.holding and loop.n_dropped == 1  # ...and it does not end the hold
    assert loop.servo_l(offset(p0, dx=0.05), 0.5)  # a plain hold resumes on the next command
    assert not loop.holding
    loop.hold("watched process 1234 died", latch=True)
    assert not loop.servo_l(offset(p0, dx=0.05), 0.5)
    assert not loop.schedule_waypoint(offset(p0, dx=0.05), clock.now() + 0.5)
    assert loop.holding and loop.n_rejected == 2


def test_protective_stop_raises_a_clear_error(sim_config):
    loop, arm, _ = make_loop(sim_config)
    run(loop, 0.1)
    arm.trigger_protective_stop("simulated collision")
    with pytest.raises(ProtectiveStopError, match="simulated collision.*unlock the protective stop"):
        loop.cycle()


def test_overruns_are_counted_and_the_loop_re_phases(sim_config):
    loop, arm, clock = make_loop(sim_config)
    run(loop, 0.1)
    loop.cycle()
    clock.advance(5 * loop.period)  # a 5-period stall
    loop.wait_next()
    assert loop.n_overruns == 1
    t = clock.now()
    loop.cycle()
    loop.wait_next()
    assert clock.now() == pytest.approx(t + loop.period)  # no burst of catch-up cycles


def test_shutdown_stops_servo_and_script_and_disconnects_even_if_one_step_fails(sim_config):
    loop, arm, _ = make_loop(sim_config)
    run(loop, 0.1)

    def broken(_decel):
        arm.calls.append("servo_stop")
        raise RuntimeError("socket closed")

    arm.servo_stop = broken
    with pytest.raises(RobotError, match="servo_stop: socket closed"):
        loop.shutdown()
    assert arm.calls[-3:] == ["servo_stop", "stop_script", "disconnect"]


def test_rotation_waypoints_respect_the_rotation_speed_limit(sim_config):
    loop, arm, clock = make_loop(sim_config)
    p0 = arm.get_actual_tcp_pose()
    turned = p0.copy()
    turned[3:] = [0.0, np.pi, 0.3]  # about 0.3 rad of rotation about the tool axis
    t_goal = clock.now() + 0.1
    rec = run(loop, 1.0, lambda t: loop.schedule_waypoint(turned, max(t + 0.01, t_goal)))
    rot = [pose_distance(a, b)[1] for a, b in zip(rec["commanded_pose"][:-1], rec["commanded_pose"][1:])]
    assert max(rot) / loop.period <= sim_config.max_rot_speed * (1 + 1e-6)
    assert pose_distance(rec["actual_tcp_pose"][-1], turned)[1] < 0.01


@pytest.mark.parametrize("frequency", [125.0, 500.0])
def test_measured_speed_stays_within_the_limits_under_a_flood_and_late_cycles(sim_config, frequency):
    """Far waypoints that switch side, every other cycle, with some cycles late by 5-30 ms: the plan respects
    the limits, but an arm lagging behind it would race to catch up. Measured from the published state
    (pose differences over state timestamps), the TCP stays within 5 % of both limits."""
    loop, arm, clock = make_loop(sim_config, frequency=frequency)
    rng = np.random.default_rng(0)
    p0 = arm.get_actual_tcp_pose().copy()
    t0 = clock.now()
    step = [0]

    def flood(t):
        step[0] += 1
        if step[0] % 2 == 0:
            side = 1 if int((t - t0) / 0.6) % 2 == 0 else -1
            goal = p0.copy()
            goal[0] += 0.12 * side
            goal[1] += 0.08 * side * (1 if int((t - t0) / 1.3) % 2 else -1)
            goal[5] += 0.4 * side
            loop.schedule_waypoint(goal, t + 0.05)
        if rng.random() < 0.05:
            clock.wait_until(t + rng.uniform(0.005, 0.03))  # this cycle runs late

    rec = run(loop, 12.0, flood)
    dt = np.diff(rec["timestamp"])
    moves = np.array([pose_distance(a, b) for a, b in zip(rec["actual_tcp_pose"][:-1], rec["actual_tcp_pose"][1:])])
    later = dt > 1e-4  # a cycle right after an overrun can publish at the same time (nothing moved)
    speed, rot_speed = moves[later, 0] / dt[later], moves[later, 1] / dt[later]
    assert speed.max() > 0.9 * sim_config.max_pos_speed  # the flood does drive the arm at the limit
    assert speed.max() <= 1.05 * sim_config.max_pos_speed, speed.max()
    assert rot_speed.max() <= 1.05 * sim_config.max_rot_speed, rot_speed.max()
    assert loop.n_lead_limited > 0
