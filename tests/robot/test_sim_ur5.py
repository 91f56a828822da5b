import numpy as np
import pytest

from robot_stack.hardware.robot.clock import SimClock
from robot_stack.hardware.robot.interface import RobotDriver
from robot_stack.hardware.robot.sim_ur5 import SimUR5

DT = 0.008  # 125 Hz
LOOKAHEAD, GAIN = 0.1, 300.0


def servo(arm: SimUR5, pose) -> bool:
    return arm.servo_l(pose, 0.0, 0.0, DT, LOOKAHEAD, GAIN)


def run_ramp(arm: SimUR5, velocity, seconds: float, start=None):
    """Stream servoL targets moving at ``velocity`` (m/s, xyz) with manual stepping; return targets/actuals."""
    start = arm.get_actual_tcp_pose() if start is None else start
    targets, actuals = [], []
    for k in range(int(round(seconds / DT))):
        target = start.copy()
        target[:3] += np.asarray(velocity) * k * DT
        assert servo(arm, target)
        arm.step(DT)
        targets.append(target)
        actuals.append(arm.get_actual_tcp_pose())
    return np.array(targets), np.array(actuals)


def test_is_a_robot_driver(sim_config):
    arm = SimUR5(sim_config, seed=0)
    assert isinstance(arm, RobotDriver)
    arm.connect()
    np.testing.assert_allclose(arm.get_actual_q(), sim_config.home_joints)
    np.testing.assert_allclose(arm.get_actual_tcp_pose()[:3], [0.45, 0.0, 0.1], atol=1e-4)
    assert not arm.is_protective_stopped() and arm.get_timestamp() == 0.0


def test_actual_lags_a_moving_command_then_converges(sim_config):
    arm = SimUR5(sim_config, seed=0)
    arm.connect()
    targets, actuals = run_ramp(arm, [0.1, 0.0, 0.0], 1.0)
    lag = targets[-1, 0] - actuals[-1, 0]
    # first-order tracking with tau = lookahead_time at gain 300: steady lag ~ v * tau = 1 cm
    assert 0.006 < lag < 0.015, lag
    speed = arm.get_actual_tcp_speed()
    assert speed[0] == pytest.approx(0.1, rel=0.1)
    for _ in range(int(1.0 / DT)):  # hold the last target: the arm settles on it
        servo(arm, targets[-1])
        arm.step(DT)
    np.testing.assert_allclose(arm.get_actual_tcp_pose()[:3], targets[-1, :3], atol=2e-4)


def test_higher_gain_tracks_tighter(sim_config):
    lags = []
    for gain in (300.0, 1200.0):
        arm = SimUR5(sim_config, seed=0)
        arm.connect()
        start = arm.get_actual_tcp_pose()
        for k in range(int(0.8 / DT)):
            target = start.copy()
            target[0] += 0.1 * k * DT
            assert arm.servo_l(target, 0, 0, DT, LOOKAHEAD, gain)
            arm.step(DT)
        lags.append(target[0] - arm.get_actual_tcp_pose()[0])
    assert lags[1] < 0.5 * lags[0]


def test_joint_speed_and_acceleration_limits_hold_on_a_step(sim_config):
    config = sim_config.replace(sim=sim_config.sim.__class__(max_joint_speed=(1.0,) * 6, max_joint_accel=(5.0,) * 6))
    arm = SimUR5(config, seed=0)
    arm.connect()
    target = arm.get_actual_tcp_pose()
    target[1] += 0.06  # a step the arm must ramp to
    qds = []
    for _ in range(int(1.0 / arm.config.sim.physics_dt)):
        assert servo(arm, target)
        arm.step(arm.config.sim.physics_dt)
        qds.append(arm.get_actual_qd())
    qds = np.array(qds)
    assert np.abs(qds).max() <= 1.0 + 1e-9
    assert np.abs(np.diff(qds, axis=0)).max() / arm.config.sim.physics_dt <= 5.0 + 1e-6
    np.testing.assert_allclose(arm.get_actual_tcp_pose()[:3], target[:3], atol=1e-4)


@pytest.mark.parametrize(
    "make_target, reason",
    [
        (lambda p: p + [2.0, 0, 0, 0, 0, 0], "no IK solution"),
        (lambda p: p + [0.0, 0.0, 0.15, 0, 0, 0], "rad from the actual joints"),
        (lambda p: p + [float("nan"), 0, 0, 0, 0, 0], "not a finite 6-vector"),
    ],
)
def test_bad_servo_targets_trip_a_protective_stop(sim_config, make_target, reason):
    arm = SimUR5(sim_config, seed=0)
    arm.connect()
    start = arm.get_actual_tcp_pose()
    run_ramp(arm, [0.0, 0.1, 0.0], 0.3)  # moving when the bad target arrives
    assert not servo(arm, make_target(start))
    assert arm.is_protective_stopped() and reason in arm.protective_stop_reason
    for _ in range(100):
        arm.step(DT)
    assert not np.any(arm.get_actual_qd())  # came to rest
    assert not servo(arm, arm.get_actual_tcp_pose())  # commands ignored until unlocked
    arm.unlock_protective_stop()
    assert servo(arm, arm.get_actual_tcp_pose())


def test_leaving_the_joint_limits_trips_a_protective_stop(sim_config):
    home = np.asarray(sim_config.home_joints)
    limits = sim_config.joint_limits.__class__(min=tuple(home - 1.0), max=tuple(home + 1.0))
    arm = SimUR5(sim_config.replace(joint_limits=limits), seed=0)
    arm.connect()
    arm.q = home.copy()
    arm.qd = np.array([5.0, 0, 0, 0, 0, 0])  # coasting into the base joint's limit
    arm.step(1.0)
    assert arm.is_protective_stopped() and "joint 0" in arm.protective_stop_reason
    assert arm.get_actual_q()[0] <= home[0] + 1.0 + 1e-12  # 5 rad/s at 10 rad/s^2 would coast 1.25 rad


def test_servo_stop_decelerates_along_the_path_and_holds(sim_config):
    arm = SimUR5(sim_config, seed=0)
    arm.connect()
    run_ramp(arm, [0.1, 0.0, 0.0], 0.6)
    v = np.linalg.norm(arm.get_actual_tcp_speed()[:3])
    arm.servo_stop(1.0)
    steps = 0
    while np.any(arm.get_actual_qd()):
        arm.step(0.002)
        steps += 1
        assert steps < 1000
    assert steps * 0.002 == pytest.approx(v / 1.0, abs=0.02)  # stops in |v| / decel
    resting = arm.get_actual_tcp_pose()
    arm.step(0.5)
    np.testing.assert_allclose(arm.get_actual_tcp_pose(), resting)
    arm.stop_script()
    assert not servo(arm, resting)  # no script, no servo


def test_deterministic_given_the_seed(sim_config):
    noisy = sim_config.replace(sim=sim_config.sim.__class__(sensor_noise_std=1e-4))

    def trace(seed):
        arm = SimUR5(noisy, seed=seed)
        arm.connect()
        return run_ramp(arm, [0.0, 0.05, 0.02], 0.4, start=np.array([0.45, 0.0, 0.1, 0.0, np.pi, 0.0]))[1]

    np.testing.assert_array_equal(trace(3), trace(3))
    assert not np.array_equal(trace(3), trace(4))


def test_follows_a_sim_clock_faster_than_real_time(sim_config):
    clock = SimClock(50.0)
    arm = SimUR5(sim_config, seed=0, clock=clock)
    arm.connect()
    target = arm.get_actual_tcp_pose()
    target[0] += 0.02
    assert servo(arm, target)
    clock.advance(2.0)  # two simulated seconds, no real waiting
    assert arm.get_timestamp() == pytest.approx(2.0)
    np.testing.assert_allclose(arm.get_actual_tcp_pose()[:3], target[:3], atol=1e-4)
