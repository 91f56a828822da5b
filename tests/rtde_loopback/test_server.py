"""The loopback server's sockets, exercised with raw RTDE / dashboard / script clients (no ur_rtde)."""

import socket
import struct
import time

import numpy as np
import pytest
from rtde_loopback_helpers import CONTROL_SCRIPT, RawRTDEClient

from robot_stack.hardware.robot.rtde_loopback import CB3, RTDELoopbackServer
from robot_stack.hardware.robot.rtde_loopback.protocol import MessageType, Recipe
from robot_stack.hardware.robot.rtde_loopback.server import MAX_BACKLOG, _RTDESession
from robot_stack.hardware.robot.sim_ur5 import SimUR5

V = MessageType


@pytest.fixture
def server(sim_config):
    srv = RTDELoopbackServer(
        SimUR5(sim_config), "127.0.0.1", tcp_offset=sim_config.tcp_offset,
        rtde_port=0, dashboard_port=0, script_ports=(0,),  # ephemeral ports: tests run side by side
    )
    with srv:
        yield srv
    assert srv.error is None


@pytest.fixture
def client(server):
    c = RawRTDEClient(server.host, server.ports["rtde"])
    yield c
    c.close()


def test_refuses_to_serve_beyond_loopback(sim_config):
    arm = SimUR5(sim_config)
    for host in ("0.0.0.0", "192.168.1.5"):
        with pytest.raises(ValueError, match="not a loopback address"):
            RTDELoopbackServer(arm, host)
    with pytest.raises(ValueError, match="must be an IP address"):
        RTDELoopbackServer(arm, "localhost")
    RTDELoopbackServer(arm, "0.0.0.0", allow_non_loopback=True)  # explicit opt-in (not started)


def test_a_taken_port_is_named(sim_config):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = RTDELoopbackServer(SimUR5(sim_config), "127.0.0.1", rtde_port=0, dashboard_port=port, script_ports=())
        with pytest.raises(OSError, match=f"dashboard port 127.0.0.1:{port}"):
            srv.start()
        srv.stop()


def test_handshake_setup_and_synchronisation(client, sim_config):
    assert client.request(V.REQUEST_PROTOCOL_VERSION, struct.pack(">H", 1)) == b"\x00"
    assert client.request(V.REQUEST_PROTOCOL_VERSION, struct.pack(">H", 2)) == b"\x01"
    version = struct.unpack(">IIII", client.request(V.GET_URCONTROL_VERSION))
    assert version == (CB3.major, CB3.minor, CB3.bugfix, CB3.build)

    recipe_id, types = client.setup_outputs(["timestamp", "bogus_variable"], 125)
    assert (recipe_id, types) == (0, ["DOUBLE", "NOT_FOUND"])
    recipe_id, _ = client.setup_outputs(["timestamp"], 250)  # a CB3 streams at most 125 Hz
    assert recipe_id == 0

    names = ["timestamp", "actual_q", "runtime_state", "input_int_register_5", "output_int_register_0"]
    recipe_id, types = client.setup_outputs(names, 125)
    assert (recipe_id, types) == (1, ["DOUBLE", "VECTOR6D", "UINT32", "INT32", "INT32"])
    assert client.setup_inputs(["input_int_register_5"]) == (1, ["INT32"])
    assert client.setup_inputs(["input_double_register_5", "standard_digital_output"]) == (2, ["DOUBLE", "UINT8"])
    assert client.setup_inputs(["actual_q"]) == (0, ["NOT_FOUND"])  # outputs are not writable

    assert client.request(V.CONTROL_PACKAGE_START) == b"\x01"
    out = Recipe(1, names, types)
    client.send(V.DATA_PACKAGE, Recipe(1, ["input_int_register_5"], ["INT32"]).pack([42]))
    start = time.monotonic()
    packages = []
    while time.monotonic() - start < 0.5:
        mtype, payload = client.receive(skip_data=False)
        assert mtype == V.DATA_PACKAGE
        packages.append(out.unpack(payload))
    # ~62 packages at 125 Hz; generous bounds for a loaded machine
    assert 20 <= len(packages) <= 75
    stamps = np.array([p[0] for p in packages])
    steps = np.diff(stamps) / (1 / 125)
    assert np.all(steps > 0.5) and np.allclose(steps, np.round(steps))  # whole control cycles, increasing
    np.testing.assert_array_equal(packages[-1][1], sim_config.home_joints)
    assert packages[-1][2] == 1  # STOPPED: no program uploaded
    assert packages[-1][3] == 42  # the input register written above, read back as an output
    assert packages[-1][4] == 0

    assert client.request(V.CONTROL_PACKAGE_PAUSE) == b"\x01"
    client.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        client.receive(skip_data=False)


def test_output_frequency_divides_the_control_rate(client):
    assert client.setup_outputs(["timestamp"], 25)[0] == 1
    assert client.request(V.CONTROL_PACKAGE_START) == b"\x01"
    recipe = Recipe(1, ["timestamp"], ["DOUBLE"])
    stamps = [recipe.unpack(client.receive(skip_data=False)[1])[0] for _ in range(6)]
    assert np.allclose(np.diff(stamps), 5 / 125)  # every 5th cycle; nothing late on this path


@pytest.mark.parametrize(
    "bad, reason",
    [
        (b"\x00\x01U", "smaller than the 3-byte header"),
        (struct.pack(">HB", 4, ord("U")) + b"\x09", "never set up"),
        (struct.pack(">HB", 3, ord("Z")), "unknown RTDE message type"),
        (struct.pack(">HB", 4, ord("V")) + b"\x02", "expected 2"),
    ],
)
def test_malformed_input_closes_that_connection_only(server, client, bad, reason, caplog):
    client.sock.sendall(bad)
    assert client.closed_by_server()
    assert server.stats.protocol_errors == 1
    assert any(reason in r.getMessage() for r in caplog.records)
    other = RawRTDEClient(server.host, server.ports["rtde"])
    try:
        assert other.request(V.REQUEST_PROTOCOL_VERSION, struct.pack(">H", 2)) == b"\x01"
    finally:
        other.close()


def test_an_input_is_writable_by_one_client_at_a_time(server, client, wait_for):
    assert client.setup_inputs(["input_int_register_0"]) == (1, ["INT32"])
    other = RawRTDEClient(server.host, server.ports["rtde"])
    try:
        assert other.setup_inputs(["input_int_register_0"]) == (0, ["IN_USE"])
        client.close()
        assert wait_for(lambda: other.setup_inputs(["input_int_register_0"])[0] != 0)
    finally:
        other.close()


def dashboard_lines(server):
    sock = socket.create_connection((server.host, server.ports["dashboard"]), timeout=3)
    lines = sock.makefile("r", encoding="utf-8", newline="\n")
    return sock, lines


def test_dashboard(server):
    sock, lines = dashboard_lines(server)
    with sock:
        assert lines.readline().startswith("Connected: Universal Robots Dashboard Server")
        for request, reply in [
            ("PolyscopeVersion", "URSoftware 3.15.7.106331"),
            ("programState", "STOPPED <unnamed>"),
            ("safetystatus", "Safetystatus: NORMAL"),
            ("fly to the moon", "could not understand: 'fly to the moon'"),
            ("play", "Failed to execute: play"),
            ("quit", "Disconnected"),
        ]:
            sock.sendall(request.encode() + b"\n")
            assert lines.readline().startswith(reply)
        assert lines.readline() == ""  # closed after quit


def test_dashboard_closes_on_an_endless_line(server):
    sock, lines = dashboard_lines(server)
    with sock:
        lines.readline()
        sock.sendall(b"x" * 10_000)
        assert lines.readline() == ""
    assert server.stats.protocol_errors == 1


def test_script_port_runs_only_the_control_script(server, wait_for):
    with socket.create_connection((server.host, server.ports["script0"]), timeout=3) as sock:
        sock.sendall(b"def my_program():\n  movej([0, 0, 0, 0, 0, 0])\nend\n")
        assert wait_for(lambda: server.stats.rejected_programs == 1)
        assert not server.controller.program_running
        script = CONTROL_SCRIPT.format(offset=0).encode()
        sock.sendall(script[:40])  # a program may arrive in pieces
        time.sleep(0.05)
        assert not server.controller.program_running
        sock.sendall(script[40:])
        assert wait_for(lambda: server.controller.program_running)
    assert server.stats.rejected_programs == 1


def test_a_lagging_client_loses_its_oldest_data_packages_never_replies(server):
    session = _RTDESession(server, conn=None, who="test client")  # no writer thread: nothing is sent
    session.handle(V.CONTROL_PACKAGE_SETUP_OUTPUTS, struct.pack(">d", 125) + b"timestamp")
    session.handle(V.CONTROL_PACKAGE_START, b"")
    published = MAX_BACKLOG + 40
    with server.controller.lock:
        for tick in range(published):
            session.publish(tick)
    kinds = [is_data for is_data, _, _ in session._outbox]
    assert len(kinds) == MAX_BACKLOG
    assert kinds[:2] == [False, False]  # the setup and start replies are kept
    assert server.stats.dropped_packages == published + 2 - MAX_BACKLOG


class _FailingArm(SimUR5):
    """A twin whose physics breaks after a few cycles."""

    def __init__(self, config, fail_after):
        super().__init__(config)
        self.steps_left = fail_after

    def step(self, dt):
        self.steps_left -= 1
        if self.steps_left < 0:
            raise FloatingPointError("simulated physics blew up")
        super().step(dt)


def test_a_failing_arm_stops_the_control_loop_and_is_reported(sim_config, caplog, wait_for):
    srv = RTDELoopbackServer(_FailingArm(sim_config, fail_after=5), "127.0.0.1",
                             rtde_port=0, dashboard_port=0, script_ports=())
    with srv:
        assert wait_for(lambda: srv.error is not None)
        ticks = srv.controller.ticks
        time.sleep(0.05)
        assert srv.controller.ticks == ticks == 5  # no more cycles after the failure
    assert "simulated physics blew up" in srv.error
    assert any("control loop failed" in r.getMessage() for r in caplog.records)


def test_connections_beyond_the_limit_are_refused(sim_config):
    srv = RTDELoopbackServer(SimUR5(sim_config), "127.0.0.1", rtde_port=0, dashboard_port=0, script_ports=(),
                             max_connections=1)
    with srv:
        first = RawRTDEClient(srv.host, srv.ports["rtde"])
        second = RawRTDEClient(srv.host, srv.ports["rtde"])
        try:
            assert second.closed_by_server()
            assert first.request(V.REQUEST_PROTOCOL_VERSION, struct.pack(">H", 2)) == b"\x01"
            assert srv.stats.refused_connections == 1
        finally:
            first.close()
            second.close()
