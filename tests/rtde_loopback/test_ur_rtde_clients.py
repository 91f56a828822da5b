"""The real ur_rtde 1.6 clients (receive, control, I/O, dashboard) against the simulated UR5 over loopback."""

import time
from pathlib import Path

import dashboard_client
import numpy as np
import pytest
import rtde_control
import rtde_io
import rtde_receive
from rtde_loopback_helpers import start_sim_loopback, twin_record_for

from robot_stack.hardware.robot.rtde_driver import RTDEDriver
from robot_stack.hardware.robot.rtde_loopback.controller import RUNTIME_PLAYING, RUNTIME_STOPPED

pytestmark = pytest.mark.timeout(120)

UP_2CM = np.array([0.0, 0.0, 0.02, 0.0, 0.0, 0.0])


def servo_for(control, target, seconds, lookahead=0.1, gain=300.0):
    """Stream servoL at 125 Hz like a real-time loop; every call must be accepted."""
    for _ in range(int(seconds * 125)):
        t = control.initPeriod()
        assert control.servoL(list(target), 0.5, 0.5, 1 / 125, lookahead, gain)
        control.waitPeriod(t)


def test_receive_interface_reports_the_twins_state(loopback, receive, sim_config):
    for getter, key in [
        (receive.getActualQ, "actual_q"),
        (receive.getActualTCPPose, "actual_tcp_pose"),
        (receive.getTargetTCPPose, "target_tcp_pose"),
        (receive.getActualQd, "actual_qd"),
        (receive.getActualTCPSpeed, "actual_tcp_speed"),
    ]:
        record, value = twin_record_for(loopback, receive, getter)
        np.testing.assert_array_equal(value, record[key])  # bit for bit, same control cycle
    np.testing.assert_array_equal(receive.getActualQ(), sim_config.home_joints)  # the twin starts at home
    assert receive.getRobotMode() == 7  # RUNNING
    assert receive.getSafetyMode() == 1  # NORMAL
    assert not receive.isProtectiveStopped() and not receive.isEmergencyStopped()
    assert receive.getRobotStatus() & 1  # powered on
    t0, w0 = receive.getTimestamp(), time.monotonic()
    time.sleep(0.5)
    dt, wall = receive.getTimestamp() - t0, time.monotonic() - w0
    assert 0.5 * wall < dt <= wall + 0.05  # controller time runs with the wall clock (late cycles aside)


def test_control_interface_drives_the_twin(loopback, receive, control, sim_config, wait_for):
    assert control.isProgramRunning()
    assert wait_for(lambda: loopback.state.get()["runtime_state"] == RUNTIME_PLAYING)
    start = np.array(receive.getActualTCPPose())

    target = start + UP_2CM
    servo_for(control, target, 1.0)
    np.testing.assert_allclose(receive.getActualTCPPose(), target, atol=1e-3)
    np.testing.assert_array_equal(loopback.state.get()["target_tcp_pose"], target)  # the twin got exactly that
    assert control.servoStop(2.0)
    assert not np.any(loopback.state.get()["actual_qd"])  # servoStop returns once the arm is at rest

    target = target + [0.03, -0.02, 0.0, 0.0, 0.0, 0.0]
    assert control.moveL(list(target), 0.25, 1.2)
    np.testing.assert_allclose(receive.getActualTCPPose(), target, atol=1e-3)

    np.testing.assert_allclose(control.getTCPOffset(), sim_config.tcp_offset)
    assert control.isSteady()
    control.stopL(2.0)
    assert control.isProgramRunning()

    control.stopScript()
    assert wait_for(lambda: not control.isProgramRunning(), 1.0)
    assert wait_for(lambda: loopback.state.get()["runtime_state"] == RUNTIME_STOPPED)


def test_a_command_the_loopback_cannot_execute_fails_instead_of_faking_success(loopback, receive, control, wait_for):
    assert control.isProgramRunning()
    assert not control.teachMode()  # teach mode is not emulated (the twin has no hand-guiding)
    # it ended the program, like a URScript runtime error
    assert wait_for(lambda: not control.isProgramRunning(), 1.0)
    assert control.reuploadScript()
    assert wait_for(control.isProgramRunning)
    pose = np.array(receive.getActualTCPPose())
    servo_for(control, pose, 0.1)
    control.stopScript()


def test_protective_stop_and_recovery(sim_config, wait_for):
    proc = start_sim_loopback(sim_config)
    receive = rtde_receive.RTDEReceiveInterface(proc.host)
    control = rtde_control.RTDEControlInterface(proc.host)
    dashboard = dashboard_client.DashboardClient(proc.host)
    try:
        dashboard.connect()
        pose = np.array(receive.getActualTCPPose())
        control.servoL(list(pose + [0.3, 0, 0, 0, 0, 0]), 0.5, 0.5, 1 / 125, 0.1, 300)  # a 30 cm jump
        assert wait_for(receive.isProtectiveStopped)
        assert receive.getSafetyMode() == 3
        assert not control.servoL(list(pose), 0.5, 0.5, 1 / 125, 0.1, 300)
        assert "PROTECTIVE_STOP" in dashboard.safetymode()

        dashboard.unlockProtectiveStop()
        assert wait_for(lambda: not receive.isProtectiveStopped())
        assert control.reuploadScript()
        assert wait_for(control.isProgramRunning)
        servo_for(control, pose + UP_2CM, 0.5)
        assert receive.getActualTCPPose()[2] > pose[2] + 0.01
        control.stopScript()
    finally:
        dashboard.disconnect()
        control.disconnect()
        receive.disconnect()
        proc.stop()
    assert proc.exitcode == 0, proc.error


def test_io_interface_sets_outputs_the_receive_interface_reads(loopback, receive, wait_for):
    io = rtde_io.RTDEIOInterface(loopback.host)
    try:
        assert io.setStandardDigitalOut(3, True)
        assert io.setToolDigitalOut(1, True)
        assert io.setAnalogOutputVoltage(0, 0.5)
        assert wait_for(lambda: receive.getDigitalOutState(3) and receive.getDigitalOutState(17))
        assert not receive.getDigitalOutState(2)
        assert receive.getStandardAnalogOutput0() == 0.5
    finally:
        io.disconnect()


def test_dashboard_client(loopback):
    dashboard = dashboard_client.DashboardClient(loopback.host)
    dashboard.connect()
    try:
        assert dashboard.polyscopeVersion() == loopback.version.text
        assert dashboard.robotmode() == "Robotmode: RUNNING"
        assert dashboard.getRobotModel() == "UR5"
        assert dashboard.programState().startswith("STOPPED")
        assert not dashboard.running()
    finally:
        dashboard.disconnect()


def test_the_stacks_rtde_driver_runs_against_the_twin(loopback, sim_config, wait_for):
    """``RTDEDriver`` (the real-robot driver) end to end: connect, setTcp, servoL, state, stop, disconnect."""
    driver = RTDEDriver(sim_config.replace(driver="rtde", robot_ip=loopback.host))
    driver.connect()
    try:
        start = driver.get_actual_tcp_pose()
        target = start + [0.0, 0.02, 0.0, 0.0, 0.0, 0.0]
        for _ in range(80):
            t = time.monotonic()
            assert driver.servo_l(target, 0.5, 0.5, 1 / 125, 0.1, 300)
            time.sleep(max(0.0, 1 / 125 - (time.monotonic() - t)))
        np.testing.assert_allclose(driver.get_actual_tcp_pose(), target, atol=2e-3)
        np.testing.assert_array_equal(driver.get_target_tcp_pose(), target)
        assert not driver.is_protective_stopped()
        driver.servo_stop(2.0)
        driver.stop_script()
    finally:
        driver.disconnect()
    assert wait_for(lambda: loopback.state.get()["runtime_state"] == RUNTIME_STOPPED)


def test_e_series_controller_at_500_hz(sim_config, wait_for):
    proc = start_sim_loopback(sim_config.replace(frequency=500.0))
    try:
        assert proc.version.major == 5
        receive = rtde_receive.RTDEReceiveInterface(proc.host)  # picks 500 Hz from the controller version
        try:
            t0 = receive.getTimestamp()
            assert wait_for(lambda: receive.getTimestamp() > t0 + 0.05)
            cycles = (receive.getTimestamp() - t0) / (1 / 500)
            assert abs(cycles - round(cycles)) < 1e-6  # the client sees 2 ms control cycles
            assert wait_for(lambda: proc.state.count >= 50)
            np.testing.assert_allclose(np.diff(proc.state.get_last_k(50)["timestamp"]), 1 / 500)
        finally:
            receive.disconnect()
    finally:
        segment = Path("/dev/shm") / proc.state.name
        proc.stop()
    assert proc.exitcode == 0, proc.error
    assert not segment.exists()  # the state ring buffer is released with the process
