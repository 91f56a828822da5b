"""``RTDEDriver``: the real UR arm over ur_rtde (``RTDEReceiveInterface`` + ``RTDEControlInterface``).

ur_rtde reports problems as bare ``RuntimeError("read: End of file")``-style messages from deep inside the
C++ library, and its constructors hold the GIL and can block forever when something at the address accepts
the connection but does not speak RTDE. So ``connect`` first probes the controller in Python, with
timeouts: the dashboard server (29999) must greet us, and the RTDE server (30004) must answer a protocol
version request. Only then are the ur_rtde interfaces opened; every failure becomes a ``RobotError`` subclass
that names the IP/port and what to check on the robot.
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any, Sequence

import numpy as np

from robot_stack.hardware.robot.config import RobotConfig
from robot_stack.hardware.robot.interface import (
    ProtectiveStopError,
    RemoteControlError,
    RobotConnectionError,
    RobotDriver,
    RobotError,
)

log = logging.getLogger(__name__)

DASHBOARD_PORT = 29999
RTDE_PORT = 30004  # fixed by the UR controller; ur_rtde cannot use another

_CHECKLIST = (
    "check that the robot controller is powered on and booted, that robot_ip in the rig file matches the "
    "pendant (Settings > System > Network), and that this PC is on the same subnet (try `ping {ip}`)"
)


_RTDE_REQUEST_PROTOCOL_VERSION = 86  # 'V'
_RTDE_PROTOCOL_VERSION = 2
# A new state package arrives every servo period; two in one pose read means the reading thread stalled.
_SNAPSHOT_TRIES = 3


def _open(ip: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``ip:port``, or a ``RobotConnectionError`` saying why not."""
    try:
        sock = socket.create_connection((ip, port), timeout=timeout)
    except socket.timeout:
        why = f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        why = "connection refused (the host is up but nothing listens on that port)"
    except OSError as exc:
        why = exc.strerror or str(exc)
    else:
        sock.settimeout(timeout)
        return sock
    raise RobotConnectionError(f"cannot reach the UR controller at {ip}:{port}: {why}; " + _CHECKLIST.format(ip=ip))


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the connection was closed by the other side")
        data += chunk
    return data


def probe_controller(ip: str, timeout: float) -> None:
    """Check, with timeouts, that ``ip`` runs a UR dashboard server and an RTDE server that answer.

    Raises ``RobotConnectionError`` naming the port and the problem (unreachable, refused, silent, not a UR).
    """
    where = f"{ip}:{DASHBOARD_PORT}"
    with _open(ip, DASHBOARD_PORT, timeout) as sock:
        try:
            greeting = sock.recv(256).decode(errors="replace").strip()
        except socket.timeout:
            greeting = None
        except OSError as exc:
            greeting = f"<{exc}>"
    if greeting is None or "Dashboard" not in greeting:
        got = "nothing" if greeting is None else repr(greeting or "<connection closed>")
        raise RobotConnectionError(
            f"{where} accepted the connection but did not greet like a UR dashboard server (got {got} within "
            f"{timeout:g} s): is robot_ip really the robot controller? " + _CHECKLIST.format(ip=ip)
        )
    where = f"{ip}:{RTDE_PORT}"
    with _open(ip, RTDE_PORT, timeout) as sock:
        try:
            sock.sendall(struct.pack(">HBH", 5, _RTDE_REQUEST_PROTOCOL_VERSION, _RTDE_PROTOCOL_VERSION))
            size, kind = struct.unpack(">HB", _recv_exactly(sock, 3))
            payload = _recv_exactly(sock, max(0, size - 3))
        except (OSError, ConnectionError) as exc:
            why = f"no reply within {timeout:g} s" if isinstance(exc, socket.timeout) else str(exc)
            raise RobotConnectionError(
                f"{where} accepted the connection but did not answer an RTDE protocol request ({why}): is robot_ip "
                "really the robot controller, and is the controller fully booted? " + _CHECKLIST.format(ip=ip)
            ) from None
    if kind != _RTDE_REQUEST_PROTOCOL_VERSION or not payload or payload[0] != 1:
        raise RobotConnectionError(
            f"{where} did not accept RTDE protocol version {_RTDE_PROTOCOL_VERSION} (reply type {kind}, payload "
            f"{payload!r}): the controller software is too old for ur_rtde (CB3 needs software >= 3.4)"
        )


class RTDEDriver(RobotDriver):
    """UR arm over RTDE. Construct with the rig's ``RobotConfig`` (driver: rtde), then ``connect()``."""

    def __init__(self, config: RobotConfig):
        self.config = config
        self.ip = config.robot_ip
        self._receive: Any = None
        self._control: Any = None

    # -- connection ----------------------------------------------------------------------------------------
    def connect(self) -> None:
        import rtde_control
        import rtde_receive

        ip, freq = self.ip, float(self.config.frequency)
        probe_controller(ip, self.config.connect_timeout)
        try:
            self._receive = rtde_receive.RTDEReceiveInterface(ip, freq)
        except (RuntimeError, ValueError) as exc:
            raise RobotConnectionError(
                f"RTDE receive interface could not connect to {ip}:{RTDE_PORT} ({exc}); " + _CHECKLIST.format(ip=ip)
            ) from None
        self._check_not_stopped("before connecting the control interface")
        try:
            self._control = rtde_control.RTDEControlInterface(ip, freq)
        except (RuntimeError, ValueError) as exc:
            self.disconnect()
            raise _control_error(ip, exc) from None
        try:
            self._control.setTcp(list(self.config.tcp_offset))
            if self.config.payload_mass is not None:
                self._control.setPayload(self.config.payload_mass, list(self.config.payload_cog))
        except (RuntimeError, ValueError) as exc:
            self.disconnect()
            raise RobotError(f"robot at {ip} rejected the TCP offset / payload from the rig file: {exc}") from None
        # Arm-side safety: if this process dies (SIGKILL, crash, frozen), the robot stops its program itself.
        timeout = self.config.arm_watchdog_timeout
        if not self._control.setWatchdog(1.0 / timeout):
            self.disconnect()
            raise RobotError(f"robot at {ip} refused the RTDE watchdog (setWatchdog {1.0 / timeout:g} Hz): check "
                             "the pendant for a stopped program")
        log.info("connected to UR at %s (RTDE %g Hz, arm watchdog %.3f s)", ip, freq, timeout)

    def _check_not_stopped(self, when: str) -> None:
        if self._receive.isEmergencyStopped():
            self.disconnect()
            raise ProtectiveStopError(
                f"robot at {self.ip} is emergency-stopped ({when}): release the e-stop button, then re-enable the "
                "arm on the pendant"
            )
        if self._receive.isProtectiveStopped():
            self.disconnect()
            raise ProtectiveStopError(
                f"robot at {self.ip} is in protective stop ({when}): find the cause on the pendant's log, move the "
                "arm clear, and press 'Unlock protective stop'"
            )

    def disconnect(self) -> None:
        for iface in (self._control, self._receive):
            if iface is not None:
                try:
                    iface.disconnect()
                except RuntimeError as exc:  # already gone; nothing left to release
                    log.debug("disconnect: %s", exc)
        self._control = self._receive = None

    def _ctrl(self) -> Any:
        if self._control is None:
            raise RobotError(f"not connected to the robot at {self.ip}: call connect() first")
        return self._control

    def _recv(self) -> Any:
        if self._receive is None:
            raise RobotError(f"not connected to the robot at {self.ip}: call connect() first")
        return self._receive

    # -- commands ------------------------------------------------------------------------------------------
    def servo_l(
        self, pose: Sequence[float], speed: float, accel: float, dt: float, lookahead_time: float, gain: float
    ) -> bool:
        return bool(self._ctrl().servoL(list(map(float, pose)), speed, accel, dt, lookahead_time, gain))

    def servo_stop(self, decel: float) -> None:
        self._ctrl().servoStop(decel)

    def stop_l(self, decel: float) -> None:
        self._ctrl().stopL(decel)

    def stop_script(self) -> None:
        self._ctrl().stopScript()

    def kick_watchdog(self) -> None:
        self._ctrl().kickWatchdog()

    # -- state ---------------------------------------------------------------------------------------------
    def get_actual_tcp_pose(self) -> np.ndarray:
        return np.asarray(self._recv().getActualTCPPose(), dtype=np.float64)

    def get_actual_q(self) -> np.ndarray:
        return np.asarray(self._recv().getActualQ(), dtype=np.float64)

    def get_actual_qd(self) -> np.ndarray:
        return np.asarray(self._recv().getActualQd(), dtype=np.float64)

    def get_actual_tcp_speed(self) -> np.ndarray:
        return np.asarray(self._recv().getActualTCPSpeed(), dtype=np.float64)

    def get_target_tcp_pose(self) -> np.ndarray:
        return np.asarray(self._recv().getTargetTCPPose(), dtype=np.float64)

    def get_timestamp(self) -> float:
        return float(self._recv().getTimestamp())

    def get_measured_pose(self) -> tuple[np.ndarray, float]:
        # ur_rtde's receive thread may swap in the next package between two getters: read the timestamp on
        # both sides of the pose and retry when it moved, so pose and time belong to one package.
        recv = self._recv()
        for _ in range(_SNAPSHOT_TRIES):
            before = float(recv.getTimestamp())
            pose = np.asarray(recv.getActualTCPPose(), dtype=np.float64)
            if float(recv.getTimestamp()) == before:
                break
        return pose, before

    def is_protective_stopped(self) -> bool:
        recv = self._recv()
        return bool(recv.isProtectiveStopped() or recv.isEmergencyStopped())


def _control_error(ip: str, exc: Exception) -> RobotError:
    """Translate an ``RTDEControlInterface`` constructor failure into an actionable error."""
    text = str(exc)
    if "remote control" in text.lower():
        return RemoteControlError(
            f"robot at {ip} is in local mode: enable Remote Control (pendant: Settings > System > Remote Control) "
            f"and switch the pendant to 'Remote' (top-right icon) ({text})"
        )
    if "control script" in text.lower() or "program" in text.lower():
        return RobotError(
            f"robot at {ip} did not start the ur_rtde control script ({text}): power the arm on and release the "
            "brakes on the pendant, clear any protective stop, and make sure no other program holds the arm"
        )
    return RobotConnectionError(
        f"RTDE control interface could not connect to {ip} (dashboard {DASHBOARD_PORT}, RTDE {RTDE_PORT}, "
        f"script port 30002/30003) ({text}); " + _CHECKLIST.format(ip=ip)
    )
