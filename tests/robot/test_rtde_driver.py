import multiprocessing as mp
import time

import pytest
from fake_ur import free_loopback_ip, run_fake_ur, serve_fake_ur

from robot_stack.hardware.robot.interface import RemoteControlError, RobotConnectionError, RobotDriver, RobotError
from robot_stack.hardware.robot.rtde_driver import RTDEDriver, _control_error, probe_controller


@pytest.fixture
def rtde_config(sim_config):
    return sim_config.replace(driver="rtde", robot_ip=free_loopback_ip(), connect_timeout=0.3)


def connect_error(config) -> tuple[str, float]:
    driver = RTDEDriver(config)
    assert isinstance(driver, RobotDriver)
    t0 = time.monotonic()
    with pytest.raises(RobotConnectionError) as info:
        driver.connect()
    return str(info.value), time.monotonic() - t0


def test_nothing_listening_gives_a_clear_error_naming_ip_and_port(rtde_config):
    message, elapsed = connect_error(rtde_config)
    assert f"{rtde_config.robot_ip}:29999" in message and "connection refused" in message
    assert "robot_ip in the rig file" in message
    assert elapsed < 2.0


@pytest.mark.parametrize(
    "greet, rtde, port, expected",
    [
        (False, "accept", 29999, "did not greet like a UR dashboard server"),
        (True, "close", 30004, "did not answer an RTDE protocol request"),
        (True, "reject", 30004, "did not accept RTDE protocol version 2"),
    ],
)
def test_something_that_is_not_a_ur_controller_is_detected_within_the_timeout(rtde_config, greet, rtde, port, expected):
    socks = serve_fake_ur(rtde_config.robot_ip, greet=greet, rtde=rtde)
    try:
        message, elapsed = connect_error(rtde_config)
    finally:
        for s in socks:
            s.close()
    assert f"{rtde_config.robot_ip}:{port}" in message and expected in message
    assert elapsed < 2.0


def test_ur_rtde_failures_after_the_probe_are_translated(rtde_config):
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=run_fake_ur, args=(rtde_config.robot_ip, ready), daemon=True)
    server.start()
    try:
        assert ready.wait(10)
        probe_controller(rtde_config.robot_ip, 1.0)  # the fake passes the probe...
        message, _ = connect_error(rtde_config)  # ...then hangs up on ur_rtde, whose RuntimeError we translate
    finally:
        server.kill()
        server.join(5)
    assert f"RTDE receive interface could not connect to {rtde_config.robot_ip}:30004" in message


def test_control_interface_errors_say_what_to_do_on_the_pendant():
    remote = _control_error("10.0.0.2", RuntimeError("ur_rtde: Please enable remote control on the robot!"))
    assert isinstance(remote, RemoteControlError) and "Settings > System > Remote Control" in str(remote)
    failed = RuntimeError("ur_rtde: Failed to start control script, before timeout of 5 seconds")
    script = _control_error("10.0.0.2", failed)
    assert "release the brakes" in str(script) and "10.0.0.2" in str(script)
    other = _control_error("10.0.0.2", RuntimeError("read: End of file"))
    assert isinstance(other, RobotConnectionError) and "10.0.0.2" in str(other)


def test_commands_before_connect_raise_robot_error(rtde_config):
    driver = RTDEDriver(rtde_config)
    with pytest.raises(RobotError, match="call connect"):
        driver.get_actual_tcp_pose()
    with pytest.raises(RobotError, match="call connect"):
        driver.servo_l([0.0] * 6, 0, 0, 0.008, 0.1, 300)
    driver.disconnect()  # idempotent, no error when never connected
