"""``robot-stack ursim``: the twin under injected network latency, jitter and loss, and scheduled faults
(protective stop, program stop from the pendant, emergency stop and powering back on)."""

import struct
import time

import numpy as np
import pytest
from rtde_loopback_helpers import RawRTDEClient

from robot_stack.hardware.robot.rtde_loopback.conditions import Fault, NetworkConditions
from robot_stack.hardware.robot.rtde_loopback.protocol import MessageType
from robot_stack.hardware.robot.rtde_loopback.server import RTDELoopbackServer
from robot_stack.hardware.robot.sim_ur5 import SimUR5

pytestmark = pytest.mark.timeout(120)


def _server(sim_config, network=None, faults=()):
    return RTDELoopbackServer(SimUR5(sim_config), "127.0.0.1", tcp_offset=sim_config.tcp_offset, rtde_port=0,
                              dashboard_port=0, script_ports=(0,), network=network, faults=faults)


def _stream(client: RawRTDEClient, seconds: float) -> list[tuple[float, float]]:
    """(robot timestamp, arrival time) of every data package received for ``seconds``."""
    recipe, _ = client.setup_outputs(["timestamp"], 125)
    client.request(MessageType.CONTROL_PACKAGE_START)
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        mtype, payload = client.receive(skip_data=False)
        if mtype == MessageType.DATA_PACKAGE and payload[0] == recipe:
            got.append((struct.unpack(">d", payload[1:9])[0], time.monotonic()))
    return got


def test_latency_holds_every_package_back_and_keeps_their_order(sim_config):
    with _server(sim_config, NetworkConditions(latency=0.15, jitter=0.05)) as server:
        client = RawRTDEClient(server.host, server.ports["rtde"])
        started = time.monotonic()
        got = _stream(client, 1.0)
        client.close()
    stamps = np.array([t for t, _ in got])
    assert len(got) > 20 and np.all(np.diff(stamps) > 0)  # in order, none lost
    assert got[0][1] - started >= 0.15  # nothing arrives before the latency has passed
    # each package arrives at least the latency after the robot's clock made it (the clocks' offset is the
    # smallest arrival - stamp difference, which includes the latency at least)
    offsets = np.array([arrival for _, arrival in got]) - stamps
    assert np.max(offsets) - np.min(offsets) <= 0.05 + 0.45  # jitter bound plus scheduling slack


def test_dropped_packages_are_lost_and_counted(sim_config):
    with _server(sim_config, NetworkConditions(drop=0.3, seed=3)) as server:
        client = RawRTDEClient(server.host, server.ports["rtde"])
        got = _stream(client, 1.0)
        client.close()
        dropped = server.stats.injected_drops
    period = 1 / 125
    ticks = np.round((np.array([t for t, _ in got]) - got[0][0]) / period).astype(int)
    gaps = int(np.sum(np.diff(ticks) - 1))
    assert gaps > 10  # about 30 % of the packages never arrived
    assert dropped >= gaps  # every gap is a counted drop (the count may include packages still in flight)
    assert 0.15 < gaps / (ticks[-1] + 1) < 0.45


def test_inputs_arrive_late_too(sim_config, wait_for):
    with _server(sim_config, NetworkConditions(latency=0.2)) as server:
        client = RawRTDEClient(server.host, server.ports["rtde"])
        recipe, _ = client.setup_inputs(["input_int_register_5"])
        client.request(MessageType.CONTROL_PACKAGE_START)
        sent = time.monotonic()
        client.send(MessageType.DATA_PACKAGE, bytes([recipe]) + struct.pack(">i", 42))
        assert wait_for(lambda: server.controller.registers.input_int[5] == 42, 3.0)
        assert time.monotonic() - sent >= 0.2
        client.close()


def test_bad_fault_specs_are_refused():
    assert Fault.parse("emergency_stop@5+2") == Fault("emergency_stop", 5.0, 2.0)
    for bad in ("meltdown@1", "protective_stop", "protective_stop@1+2", "program_stop@x"):
        with pytest.raises(Exception, match="--fault"):
            Fault.parse(bad)


def test_scheduled_faults_reach_real_ur_rtde_clients(ursim, wait_for):
    import dashboard_client
    import rtde_control
    import rtde_receive

    host = ursim("--fault", "protective_stop@1.5", "--fault", "emergency_stop@4+1.5")
    receive = rtde_receive.RTDEReceiveInterface(host)
    control = rtde_control.RTDEControlInterface(host)
    dashboard = dashboard_client.DashboardClient(host)
    dashboard.connect()
    try:
        assert control.isProgramRunning()
        assert wait_for(receive.isProtectiveStopped, 3.0)
        # a protective stop ends the program, as on the robot; the control client reads its own data
        # stream, which may see the package a cycle after the receive client does
        assert wait_for(lambda: not control.isProgramRunning(), 1.0)
        dashboard.unlockProtectiveStop()
        assert wait_for(lambda: not receive.isProtectiveStopped())
        assert control.reuploadScript() and wait_for(control.isProgramRunning)

        assert wait_for(receive.isEmergencyStopped, 4.0)
        assert wait_for(lambda: not control.isProgramRunning(), 1.0)
        assert "POWER_OFF" in dashboard.robotmode() and receive.getRobotMode() == 3
        assert "ROBOT_EMERGENCY_STOP" in dashboard.safetymode()
        assert wait_for(lambda: not receive.isEmergencyStopped(), 4.0)  # released after 1.5 s
        assert receive.getRobotMode() == 3  # still powered off: somebody has to power it on
        dashboard.powerOn()
        assert wait_for(lambda: receive.getRobotMode() == 5)  # IDLE
        dashboard.brakeRelease()
        assert wait_for(lambda: receive.getRobotMode() == 7)  # RUNNING
        assert control.reuploadScript() and wait_for(control.isProgramRunning)
    finally:
        dashboard.disconnect()
        control.disconnect()
        receive.disconnect()


def test_a_program_stopped_from_the_pendant_stops_the_client(ursim, wait_for):
    import rtde_control

    host = ursim("--controller", "e-series", "--fault", "program_stop@1.5")
    control = rtde_control.RTDEControlInterface(host)
    try:
        assert control.getStepTime() == pytest.approx(0.002) or wait_for(lambda: control.getStepTime() == 0.002)
        assert control.isProgramRunning()
        assert wait_for(lambda: not control.isProgramRunning(), 4.0)
    finally:
        control.disconnect()
