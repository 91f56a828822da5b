import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for rtde_loopback_helpers

from rtde_loopback_helpers import start_sim_loopback  # noqa: E402

from robot_stack.hardware.robot.rtde_loopback import find_free_loopback_host  # noqa: E402

from robot_stack.hardware.robot.config import RobotConfig, load_robot_config  # noqa: E402

RIG = Path(__file__).resolve().parents[2] / "hardware_configs" / "sim_ur5.yaml"


@pytest.fixture
def sim_config() -> RobotConfig:
    """The simulated UR5 rig's robot section (TCP 15 cm below the flange, 10 cm above the table)."""
    return load_robot_config(RIG)


@pytest.fixture(scope="module")
def loopback():
    """A simulated UR5 served over RTDE by a child process (shared by the tests of one module)."""
    proc = start_sim_loopback(load_robot_config(RIG))
    yield proc
    proc.stop()
    assert proc.exitcode == 0, proc.error


@pytest.fixture
def receive(loopback):
    """A real ur_rtde receive interface on the module's twin."""
    import rtde_receive

    r = rtde_receive.RTDEReceiveInterface(loopback.host)
    yield r
    r.disconnect()


@pytest.fixture
def control(loopback):
    """A real ur_rtde control interface on the module's twin (it uploads ur_rtde's control script)."""
    import rtde_control

    c = rtde_control.RTDEControlInterface(loopback.host)
    yield c
    c.disconnect()


@pytest.fixture
def ursim():
    """``robot-stack ursim`` in a subprocess; yields a function starting it with extra arguments."""
    procs = []

    def start(*extra: str) -> str:
        host = find_free_loopback_host()
        proc = subprocess.Popen([sys.executable, "-m", "robot_stack", "ursim", "--rig", "sim_ur5", "--host", host,
                                 *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        assert "Ctrl-C to stop" in proc.stdout.readline()
        return host

    yield start
    for proc in procs:
        proc.terminate()
        proc.communicate(timeout=10)
        assert proc.returncode == 0
