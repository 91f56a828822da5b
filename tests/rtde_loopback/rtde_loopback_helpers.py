"""Helpers shared by the RTDE loopback tests (importable by name: conftest puts this folder on sys.path)."""

import socket
import struct
import time

import numpy as np

from robot_stack.hardware.robot.config import RobotConfig
from robot_stack.hardware.robot.rtde_loopback import SimLoopbackProcess
from robot_stack.hardware.robot.rtde_loopback.protocol import MessageReader, MessageType, pack_message
from robot_stack.runtime import ProcessFailed

# What ur_rtde's script client sends looks like this around the register offset (its injection puts the
# value on the line after the comment); the loopback only needs the program's name and the offset.
CONTROL_SCRIPT = (
    "def rtde_control():\n"
    "    global reg_offset_float = # float register offset\n{offset}"
    "    global reg_offset_int = # int register offset\n{offset}"
    '    textmsg("body not interpreted")\n'
    "end\n"
)


def start_sim_loopback(config: RobotConfig, **kwargs) -> SimLoopbackProcess:
    """Start a ``SimLoopbackProcess`` on a free loopback address, retrying if another test took it meanwhile."""
    for attempt in range(3):
        proc = SimLoopbackProcess(config, **kwargs)
        try:
            proc.start(timeout=30)
            return proc
        except ProcessFailed as exc:
            if "cannot bind" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


class RawRTDEClient:
    """A minimal RTDE client on a plain socket, to drive the server message by message."""

    def __init__(self, host: str, port: int, timeout: float = 3.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = MessageReader()
        self.pending: list[tuple[int, bytes]] = []

    def send(self, mtype: int, payload: bytes = b"") -> None:
        self.sock.sendall(pack_message(mtype, payload))

    def receive(self, skip_data: bool = True) -> tuple[int, bytes]:
        """The next message (DATA_PACKAGEs skipped unless ``skip_data`` is False)."""
        while True:
            while not self.pending:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                self.pending.extend(self.reader.feed(data))
            mtype, payload = self.pending.pop(0)
            if not (skip_data and mtype == MessageType.DATA_PACKAGE):
                return mtype, payload

    def request(self, mtype: int, payload: bytes = b"") -> bytes:
        self.send(mtype, payload)
        rtype, reply = self.receive()
        assert rtype == mtype, f"expected a reply of type {mtype}, got {rtype}"
        return reply

    def setup_outputs(self, names: list[str], frequency: float) -> tuple[int, list[str]]:
        reply = self.request(MessageType.CONTROL_PACKAGE_SETUP_OUTPUTS,
                             struct.pack(">d", frequency) + ",".join(names).encode())
        return reply[0], reply[1:].decode().split(",")

    def setup_inputs(self, names: list[str]) -> tuple[int, list[str]]:
        reply = self.request(MessageType.CONTROL_PACKAGE_SETUP_INPUTS, ",".join(names).encode())
        return reply[0], reply[1:].decode().split(",")

    def closed_by_server(self, within: float = 3.0) -> bool:
        """True if the server closes the connection within ``within`` s (messages before that are read)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                self.receive(skip_data=False)
            except ConnectionError:
                return True
            except socket.timeout:
                continue
        return False

    def close(self) -> None:
        self.sock.close()


def twin_record_for(proc: SimLoopbackProcess, receive, getter, attempts: int = 50):
    """``(record, value)``: ``getter()`` read from an ur_rtde receive interface, and the twin's state record
    of the same control cycle (matched on the RTDE timestamp, which both sides carry bit for bit)."""
    for _ in range(attempts):
        before = receive.getTimestamp()
        value = getter()
        if receive.getTimestamp() != before:
            continue  # a new package arrived in between: read again
        records = proc.state.get_last_k(min(proc.state.count, 256))
        hits = np.flatnonzero(records["timestamp"] == before)
        if hits.size:
            return {key: field[hits[0]] for key, field in records.items()}, value
        time.sleep(0.01)
    raise AssertionError("no twin record matches the timestamp the receive interface reports")
