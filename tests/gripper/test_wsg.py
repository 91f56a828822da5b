"""The real WSG 50 driver against its protocol twin: framing and checksum, homing, motion, objects, stops,
faults in words, unreachable sockets, malformed packets."""

import socket
import struct

import pytest

from robot_stack.config import ConfigError, load_dataclass
from robot_stack.hardware.gripper.config import MODELS, GripperConfig
from robot_stack.hardware.gripper.interface import (
    GripperConnectionError,
    GripperFaultError,
    GripperNotActivatedError,
)
from robot_stack.hardware.gripper.wsg import (
    E_CHECKSUM_ERROR,
    E_CMD_FORMAT_ERROR,
    E_CMD_UNKNOWN,
    SF_FAST_STOP,
    PacketReader,
    WSGGripper,
    crc16,
    encode_packet,
)
from robot_stack.hardware.gripper.wsg_loopback import WSGLoopback

STROKE = MODELS["wsg50"].stroke


def _section(**changes) -> dict:
    sim = changes.pop("sim", {"activation_time": 0.1})
    return {"driver": "wsg", "host": "127.0.0.1", "sim": sim, **changes}


def _config(**changes) -> GripperConfig:
    return load_dataclass(GripperConfig, _section(**changes))


@pytest.fixture
def wsg(twin_and_driver):
    """``wsg(**section changes) -> (twin, connected driver)``."""
    return lambda **changes: twin_and_driver(WSGLoopback, WSGGripper, _section(**changes))


def _status(packet: bytes) -> int:
    (command, body, ok), = PacketReader().feed(packet)
    assert ok
    return struct.unpack_from("<H", body)[0]


def test_packets_carry_the_reference_manuals_checksum_and_resynchronise_after_garbage():
    # the command set reference's examples: a loop request, and a homing acknowledgement
    assert encode_packet(0x01) == bytes.fromhex("AAAAAA010000E810")
    assert encode_packet(0x01, b"\x12\x34") == bytes.fromhex("AAAAAA0102001234 6D66".replace(" ", ""))
    assert encode_packet(0x20, b"\x00\x00").hex() == "aaaaaa2002000000b3fd"
    assert crc16(encode_packet(0x21, b"xyz")) == 0  # a frame with its checksum checks to 0
    reader = PacketReader()
    stream = b"\x00\xaa junk" + encode_packet(0x43, b"\x00\x00\x00") + encode_packet(0x40)
    assert reader.feed(stream[:9]) == []  # split anywhere: nothing until a packet is whole
    assert reader.feed(stream[9:]) == [(0x43, b"\x00\x00\x00", True), (0x40, b"", True)]
    corrupt = bytearray(encode_packet(0x22))
    corrupt[-1] ^= 0xFF
    assert reader.feed(bytes(corrupt)) == [(0x22, b"", False)]


def test_homing_then_moving_to_a_width_and_back_open(wsg, settle):
    twin, driver = wsg()
    assert not driver.get_state().activated
    with pytest.raises(GripperNotActivatedError, match="not homed"):
        driver.move(0.04, 0.1, 20)
    driver.activate(timeout=2.0)
    assert driver.get_state().ok and twin.force_limit == pytest.approx(50.0)  # the rig's default force
    driver.move(0.04, speed=0.2, force=30)
    state, velocities = settle(driver)
    assert state.width == pytest.approx(0.04, abs=1e-6) and not state.object_detected
    assert min(velocities) < -0.05 and twin.force_limit == pytest.approx(30.0)
    driver.open(speed=0.2, force=30)
    state, velocities = settle(driver)
    assert state.width == pytest.approx(STROKE, abs=1e-6) and max(velocities) > 0.05


def test_closing_onto_an_object_stops_on_it_and_reports_it(wsg, settle):
    _, driver = wsg(sim={"activation_time": 0.1, "object_width": 0.035})
    driver.activate(timeout=2.0)
    driver.close(speed=0.2, force=40)
    state, _ = settle(driver)
    assert state.width == pytest.approx(0.035, abs=1e-6) and state.object_detected  # E_AXIS_BLOCKED
    driver.open(speed=0.2, force=40)
    assert not settle(driver)[0].object_detected


def test_a_new_target_while_moving_stops_the_motion_and_starts_the_next(wsg, settle):
    twin, driver = wsg()
    driver.activate(timeout=2.0)
    driver.move(0.0, speed=0.01, force=20)  # 11 s to close: still moving at the next command
    assert twin.model.moving
    driver.move(0.09, speed=0.3, force=20)
    assert settle(driver)[0].width == pytest.approx(0.09, abs=1e-6)


def test_speed_and_force_are_clamped_to_the_rigs_limits(wsg):
    twin, driver = wsg(max_speed=0.1, max_force=40.0, speed=0.1, force=30.0)
    driver.activate(timeout=2.0)
    driver.move(0.02, speed=5.0, force=500.0)
    assert twin.model.speed == pytest.approx(0.1) and twin.force_limit == pytest.approx(40.0)


def test_faults_are_reported_in_words_and_a_fast_stop_is_acknowledged_by_activate(wsg):
    twin, driver = wsg()
    driver.activate(timeout=2.0)
    twin.handle_packet(0x23, b"")  # fast stop, as from the gripper's own panel
    assert "fast stop" in driver.get_state().fault
    with pytest.raises(GripperFaultError, match="fast stop"):
        driver.move(0.05, 0.1, 20)
    driver.activate(timeout=2.0)
    assert driver.get_state().ok and not twin.fault_flags & SF_FAST_STOP
    twin.inject_fault(1 << 16)
    assert driver.get_state().fault == "overcurrent fault" and not driver.get_state().ok
    with pytest.raises(GripperFaultError, match="overcurrent"):
        driver.activate(timeout=2.0)


def test_an_unreachable_gripper_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = WSGGripper(GripperConfig(**{**_config().__dict__, "port": port, "connect_timeout": 0.5}))
    with pytest.raises(GripperConnectionError, match=rf"127\.0\.0\.1:{port} unreachable.*Command Interface"):
        driver.connect()


def test_the_twin_survives_malformed_packets(wsg):
    twin, driver = wsg()
    assert _status(twin.handle_packet(0x7F, b"")) == E_CMD_UNKNOWN
    assert _status(twin.handle_packet(0x21, b"\x00")) == E_CMD_FORMAT_ERROR
    assert _status(twin.handle_packet(0x40, b"")) == E_CMD_FORMAT_ERROR
    assert _status(twin.handle_packet(0x40, b"\x00\x00\x00", checksum_ok=False)) == E_CHECKSUM_ERROR
    with socket.create_connection(("127.0.0.1", twin.port), timeout=2) as raw:
        raw.sendall(b"\xff\x00garbage\xaa\xaa" + encode_packet(0x43, b"\x00\x00\x00"))
        reader, packets = PacketReader(), []
        while not packets:
            packets = reader.feed(raw.recv(1024))
    assert packets[0][0] == 0x43 and packets[0][2]
    assert driver.get_state().width == pytest.approx(STROKE)  # the driver's own connection still works


@pytest.mark.parametrize("section, message", [
    ({"driver": "wsg"}, "gripper.host is required for driver 'wsg'"),
    ({"driver": "wsg", "host": "10.0.0.2", "model": "2f85"}, "not driven by driver 'wsg'"),
    ({"driver": "robotiq", "host": "10.0.0.2", "model": "wsg50"}, "not driven by driver 'robotiq'"),
])
def test_bad_wsg_sections_name_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        load_dataclass(GripperConfig, section, "gripper")


def test_driver_defaults_model_and_port():
    config = load_dataclass(GripperConfig, {"driver": "wsg", "host": "10.0.0.2"}, "gripper")
    assert (config.model, config.port) == ("wsg50", 1000)
    robotiq = load_dataclass(GripperConfig, {"driver": "robotiq", "host": "10.0.0.2"}, "gripper")
    assert (robotiq.model, robotiq.port) == ("2f85", 63352)
