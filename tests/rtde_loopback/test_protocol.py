"""RTDE wire format: framing, recipes, variable names and types."""

import struct

import pytest

from robot_stack.hardware.robot.rtde_loopback.protocol import (
    MAX_NAMES_BYTES,
    MessageLevel,
    MessageReader,
    MessageType,
    Recipe,
    RTDEProtocolError,
    pack_message,
    pack_text_message,
    parse_names,
)
from robot_stack.hardware.robot.rtde_loopback.variables import input_type, output_type, parse_register


def test_reader_splits_concatenated_and_fragmented_messages():
    stream = pack_message(MessageType.GET_URCONTROL_VERSION) + pack_message(MessageType.DATA_PACKAGE, b"\x01abc")
    reader = MessageReader()
    assert reader.feed(stream[:2]) == []
    assert reader.feed(stream[2:5]) == [(MessageType.GET_URCONTROL_VERSION, b"")]
    assert reader.feed(stream[5:-1]) == []
    assert reader.pending == 6
    assert reader.feed(stream[-1:]) == [(MessageType.DATA_PACKAGE, b"\x01abc")]
    assert reader.pending == 0


def test_header_is_big_endian_size_then_type():
    assert pack_message(MessageType.CONTROL_PACKAGE_START) == b"\x00\x03S"
    assert pack_message(MessageType.REQUEST_PROTOCOL_VERSION, b"\x00\x02") == b"\x00\x05V\x00\x02"


def test_size_smaller_than_header_is_a_protocol_error():
    with pytest.raises(RTDEProtocolError, match="smaller than the 3-byte header"):
        MessageReader().feed(b"\x00\x01U")


def test_text_message_layout():
    msg = pack_text_message("boom", MessageLevel.ERROR, source="src")
    size, mtype = struct.unpack(">HB", msg[:3])
    assert (size, mtype) == (len(msg), MessageType.TEXT_MESSAGE)
    assert msg[3:] == b"\x04boom\x03src\x01"


def test_recipe_roundtrip_every_type():
    types = ["BOOL", "UINT8", "UINT32", "UINT64", "INT32", "DOUBLE", "VECTOR3D", "VECTOR6D", "VECTOR6INT32",
             "VECTOR6UINT32"]
    values = [True, 200, 4_000_000_000, 2**60, -7, 1.25, (1.0, 2.0, 3.0), tuple(float(i) for i in range(6)),
              (-1, 2, -3, 4, -5, 6), (1, 2, 3, 4, 5, 6)]
    recipe = Recipe(3, [f"v{i}" for i in range(len(types))], types)
    payload = recipe.pack(values)
    assert payload[0] == 3
    assert len(payload) == recipe.size == 1 + 1 + 1 + 4 + 8 + 4 + 8 + 24 + 48 + 24 + 24
    assert recipe.unpack(payload) == values


def test_recipe_rejects_wrong_payload_length_and_unknown_types():
    recipe = Recipe(1, ["a"], ["DOUBLE"])
    with pytest.raises(RTDEProtocolError, match="expected 9"):
        recipe.unpack(b"\x01" + b"\x00" * 4)
    with pytest.raises(ValueError, match="not RTDE types"):
        Recipe(1, ["a"], ["FLOAT"])


def test_parse_names():
    assert parse_names(b"timestamp,actual_q,", "setup") == ["timestamp", "actual_q"]
    with pytest.raises(RTDEProtocolError, match="empty variable name"):
        parse_names(b"a,,b", "setup")
    with pytest.raises(RTDEProtocolError, match="empty variable name"):
        parse_names(b"", "setup")
    with pytest.raises(RTDEProtocolError, match="not ASCII"):
        parse_names("actual_q,\u00e9".encode(), "setup")
    with pytest.raises(RTDEProtocolError, match="exceeds"):
        parse_names(b"a," * (MAX_NAMES_BYTES // 2 + 1), "setup")


def test_variable_types_and_register_ranges():
    assert output_type("actual_TCP_pose") == "VECTOR6D"
    assert output_type("runtime_state") == "UINT32"
    assert output_type("output_int_register_47") == "INT32"
    assert output_type("input_double_register_0") == "DOUBLE"  # input registers are readable too
    assert output_type("output_int_register_48") is None
    assert output_type("output_bit_register_63") is None  # bits 0..63 only come as UINT32 words
    assert output_type("output_bit_register_64") == "BOOL"
    assert output_type("no_such_variable") is None
    assert input_type("input_int_register_0") == "INT32"
    assert input_type("output_int_register_0") is None  # the robot program owns output registers
    assert input_type("actual_q") is None
    assert input_type("standard_digital_output_mask") == "UINT8"
    assert parse_register("input_bit_register_127").index == 127
    assert parse_register("input_bit_register_128") is None
