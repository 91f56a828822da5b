"""Every motion and query call of ur_rtde's RTDEControlInterface that the twin emulates, made through the real
ur_rtde 1.6 clients, with the resulting motion checked against the twin's own kinematics."""

import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_stack.hardware.robot.kinematics import UR5Kinematics

pytestmark = pytest.mark.timeout(120)

JOINT_TOL = 3e-3  # rad: moveJ's completion tolerance plus sensor noise
POSE_TOL = 1e-3  # m / rad


def _rotation_error(a, b) -> float:
    return float((Rotation.from_rotvec(a[3:]).inv() * Rotation.from_rotvec(b[3:])).magnitude())


def _home(control, receive, sim_config):
    """Back to the rig's home joints (a moveJ, itself under test below)."""
    assert control.moveJ(list(sim_config.home_joints), 1.0, 2.0)
    np.testing.assert_allclose(receive.getActualQ(), sim_config.home_joints, atol=JOINT_TOL)


def test_synchronous_moves_reach_their_targets(control, receive, sim_config):
    kin = sim_config.kinematics()
    _home(control, receive, sim_config)
    q_target = np.array(sim_config.home_joints) + np.array([0.15, -0.1, 0.1, 0.05, -0.1, 0.2])
    t0 = time.monotonic()
    assert control.moveJ(list(q_target), 1.0, 2.0)
    took = time.monotonic() - t0
    np.testing.assert_allclose(receive.getActualQ(), q_target, atol=JOINT_TOL)
    assert np.max(np.abs(receive.getActualQd())) == 0.0  # returned once at rest
    assert took > 0.2  # 0.2 rad at 1 rad/s, 2 rad/s^2: ~0.3 s of motion, not a jump

    pose = kin.fk(np.array(sim_config.home_joints)) + np.array([0.03, -0.02, 0.02, 0, 0, 0])
    assert control.moveJ_IK(list(pose), 1.0, 2.0)
    actual = np.array(receive.getActualTCPPose())
    assert np.linalg.norm(actual[:3] - pose[:3]) < POSE_TOL and _rotation_error(actual, pose) < POSE_TOL

    q_fk = np.array(sim_config.home_joints) + np.array([0.0, 0.05, -0.05, 0.0, 0.0, 0.0])
    assert control.moveL_FK(list(q_fk), 0.2, 1.0)
    actual = np.array(receive.getActualTCPPose())
    assert np.linalg.norm(actual[:3] - kin.fk(q_fk)[:3]) < POSE_TOL


def test_asynchronous_moves_report_progress_and_stop_on_request(control, receive, sim_config, wait_for):
    _home(control, receive, sim_config)
    start = np.array(receive.getActualTCPPose())
    far = start + np.array([0.12, 0.0, 0.0, 0, 0, 0])
    t0 = time.monotonic()
    assert control.moveL(list(far), 0.05, 0.5, True)  # asynchronous: returns at once
    assert time.monotonic() - t0 < 2.0  # the move itself takes 2.5 s
    assert control.getAsyncOperationProgress() >= 0  # running
    assert control.getAsyncOperationProgressEx().isAsyncOperationRunning()
    time.sleep(0.6)
    control.stopL(1.0)
    assert not control.getAsyncOperationProgressEx().isAsyncOperationRunning()
    assert control.getAsyncOperationProgress() < 0
    stopped = np.array(receive.getActualTCPPose())
    travelled = stopped[0] - start[0]
    assert 0.005 < travelled < 0.1  # moved towards the target, stopped well short of it
    assert np.max(np.abs(receive.getActualQd())) == 0.0

    q_far = np.array(receive.getActualQ()) + np.array([0.5, 0, 0, 0, 0, 0])
    assert control.moveJ(list(q_far), 0.3, 1.0, True)
    assert wait_for(lambda: abs(receive.getActualQd()[0]) > 0.05, 2.0)
    control.stopJ(2.0, True)  # asynchronous stop: progress runs until the arm is at rest
    assert wait_for(lambda: not control.getAsyncOperationProgressEx().isAsyncOperationRunning(), 3.0)
    assert np.max(np.abs(receive.getActualQd())) == 0.0
    assert receive.getActualQ()[0] < q_far[0] - 0.1


def test_speed_commands_hold_the_velocity_until_speed_stop(control, receive, sim_config):
    _home(control, receive, sim_config)
    start = np.array(receive.getActualTCPPose())
    assert control.speedL([0.04, 0.0, 0.0, 0.0, 0.0, 0.0], 0.5, 0.0)
    time.sleep(0.5)
    speed = np.array(receive.getActualTCPSpeed())
    assert speed[0] == pytest.approx(0.04, abs=0.004) and np.all(np.abs(speed[1:3]) < 0.002)
    assert control.speedStop(1.0)
    assert np.max(np.abs(receive.getActualQd())) == 0.0
    moved = np.array(receive.getActualTCPPose()) - start
    # 0.5 s (plus however late this process wakes up) at 0.04 m/s, along a straight line in x
    assert 0.015 < moved[0] < 0.06 and np.all(np.abs(moved[1:3]) < 0.001)
    assert _rotation_error(np.array(receive.getActualTCPPose()), start) < 0.002

    q0 = np.array(receive.getActualQ())
    assert control.speedJ([0.2, 0, 0, 0, 0, 0], 1.0, 0.0)
    time.sleep(0.5)
    assert receive.getActualQd()[0] == pytest.approx(0.2, abs=1e-6)
    assert receive.getTargetQd()[0] == pytest.approx(0.2, abs=1e-6)  # the commanded velocity
    assert control.speedStop(2.0)
    moved = np.array(receive.getActualQ()) - q0
    assert 0.05 < moved[0] < 0.3 and np.all(np.abs(moved[1:]) < JOINT_TOL)


def test_servo_j_tracks_joint_setpoints_and_target_q_is_the_command(control, receive, sim_config, wait_for):
    _home(control, receive, sim_config)
    q0 = np.array(receive.getActualQ())
    target = q0 + np.array([0.05, 0, 0, 0, 0, -0.05])
    for k in range(1, 126):  # a 1 s ramp at 125 Hz
        t = control.initPeriod()
        q = q0 + (target - q0) * min(1.0, k / 100)
        assert control.servoJ(list(q), 0.5, 0.5, 1 / 125, 0.1, 300)
        control.waitPeriod(t)
    np.testing.assert_allclose(receive.getTargetQ(), target, atol=1e-12)  # commanded, not measured
    assert wait_for(lambda: np.max(np.abs(np.array(receive.getActualQ()) - target)) < JOINT_TOL, 2.0)
    control.servoStop(2.0)


def test_kinematic_queries_answer_from_the_twins_kinematics(control, receive, sim_config, wait_for):
    kin = sim_config.kinematics()
    _home(control, receive, sim_config)
    q = np.array(receive.getActualQ())
    pose = np.array(receive.getActualTCPPose())
    np.testing.assert_allclose(control.getForwardKinematics(), kin.fk(q), atol=1e-9)
    q_other = q + np.array([0.1, -0.2, 0.1, 0.0, 0.3, 0.0])
    tcp = [0.0, 0.0, 0.1, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(control.getForwardKinematics(list(q_other), tcp), UR5Kinematics(tcp).fk(q_other),
                               atol=1e-9)
    # A real-time getter returns the registers as they are when it is sent (ur_rtde does not wait for the
    # script's answer, on a real robot either), so the answer shows from the next call on.
    flange = UR5Kinematics().fk(q)
    assert wait_for(lambda: np.allclose(control.getActualToolFlangePose(), flange, atol=1e-9), 1.0)

    reachable = pose + np.array([0.05, 0.02, -0.03, 0, 0, 0])
    q_ik = np.array(control.getInverseKinematics(list(reachable)))
    np.testing.assert_allclose(kin.fk(q_ik), reachable, atol=1e-9)
    np.testing.assert_allclose(q_ik, kin.ik(reachable, q), atol=1e-12)  # the solution nearest the arm
    q_near = np.array(control.getInverseKinematics(list(reachable), list(q_ik), 1e-10, 1e-10))
    np.testing.assert_allclose(q_near, q_ik, atol=1e-12)
    assert control.getInverseKinematicsHasSolution(list(reachable))
    unreachable = [3.0, 0.0, 0.5, 0.0, 3.14, 0.0]  # 3 m away: beyond a UR5's reach
    assert not control.getInverseKinematicsHasSolution(unreachable)
    assert control.isPoseWithinSafetyLimits(list(pose))  # the pose the arm is at
    assert not control.isPoseWithinSafetyLimits(unreachable)
    assert control.isJointsWithinSafetyLimits(list(q))
    assert not control.isJointsWithinSafetyLimits([10.0, 0, 0, 0, 0, 0])

    a, b = [0.1, 0.2, 0.3, 0.1, 0.0, 0.0], [0.0, 0.05, 0.0, 0.0, 0.2, 0.0]
    expected = np.eye(4)
    for p in (a, b):
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = Rotation.from_rotvec(p[3:]).as_matrix(), p[:3]
        expected = expected @ m
    got = np.array(control.poseTrans(a, b))
    np.testing.assert_allclose(got[:3], expected[:3, 3], atol=1e-9)
    np.testing.assert_allclose(Rotation.from_rotvec(got[3:]).as_matrix(), expected[:3, :3], atol=1e-9)

    np.testing.assert_allclose(control.getTargetWaypoint(), receive.getTargetTCPPose(), atol=1e-9)
    assert control.zeroFtSensor()
    assert control.isProgramRunning()  # none of the queries above disturbed the program


def test_an_impossible_request_is_a_runtime_error_not_a_made_up_answer(control, receive, sim_config, wait_for):
    assert control.isProgramRunning()
    control.getInverseKinematics([3.0, 0.0, 0.5, 0.0, 3.14, 0.0])  # no solution: URScript raises
    assert wait_for(lambda: not control.isProgramRunning(), 1.0)
    assert control.reuploadScript()
    assert wait_for(control.isProgramRunning)
    assert not control.moveJ([10.0, 0, 0, 0, 0, 0], 1.0, 1.0)  # outside the joint limits
    assert wait_for(lambda: not control.isProgramRunning(), 1.0)
    assert control.reuploadScript()
    assert wait_for(control.isProgramRunning)
    assert control.speedL([0.01, 0, 0, 0, 0, 0], 0.5, 0.0)
    assert not control.moveL(list(receive.getActualTCPPose()), 0.1, 0.5)  # speedL still drives the arm
    assert wait_for(lambda: not control.isProgramRunning(), 1.0)
    assert wait_for(lambda: np.max(np.abs(receive.getActualQd())) == 0.0, 3.0)  # and the arm stopped


def test_get_jacobian_on_an_e_series_twin(ursim, sim_config, wait_for):
    """ur_rtde asks for the Jacobian from controller 5.23 on (the e-series twin reports 5.23)."""
    import rtde_control
    import rtde_receive

    host = ursim("--controller", "e-series")
    receive = rtde_receive.RTDEReceiveInterface(host)
    control = rtde_control.RTDEControlInterface(host)
    try:
        expected = sim_config.kinematics().jacobian(receive.getActualQ())
        # a real-time getter: the answer shows from the next call on (see the flange pose above)
        assert wait_for(lambda: np.allclose(np.reshape(control.getJacobian(), (6, 6)).T, expected, atol=1e-9), 1.0)
        assert control.isProgramRunning()
    finally:
        control.disconnect()
        receive.disconnect()
