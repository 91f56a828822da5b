"""``SimLoopbackProcess``: a ``SimUR5`` behind an ``RTDELoopbackServer``, in its own device process.

This is how ur_rtde clients in this interpreter (``RTDEDriver``, tests) reach a simulated arm: the bindings
hold the GIL while they wait for the robot, so the server must live in another process. Every control cycle
the child also publishes the outputs it sent to RTDE clients into ``state`` (a ``SharedMemoryRingBuffer``
with ``STATE_SPEC``), so the parent can check what the clients receive against the twin itself.
"""

from __future__ import annotations

import errno
import random
import socket
import time

import numpy as np

from robot_stack.hardware.robot.config import RobotConfig
from robot_stack.hardware.robot.rtde_loopback.controller import CB3, E_SERIES, ControllerVersion, LoopbackController
from robot_stack.hardware.robot.rtde_loopback.server import DASHBOARD_PORT, RTDE_PORT, SCRIPT_PORTS, RTDELoopbackServer
from robot_stack.runtime import DeviceProcess, SharedMemoryRingBuffer

DEFAULT_PORTS = (RTDE_PORT, DASHBOARD_PORT, *SCRIPT_PORTS)

# The twin's state as sent to RTDE clients in one control cycle (RTDE output names in brackets).
STATE_SPEC = {
    "timestamp": ((), np.float64),  # controller time [timestamp]
    "actual_q": ((6,), np.float64),  # [actual_q]
    "actual_qd": ((6,), np.float64),  # [actual_qd]
    "actual_tcp_pose": ((6,), np.float64),  # [actual_TCP_pose]
    "actual_tcp_speed": ((6,), np.float64),  # [actual_TCP_speed]
    "target_tcp_pose": ((6,), np.float64),  # [target_TCP_pose]
    "safety_mode": ((), np.int32),  # [safety_mode]
    "runtime_state": ((), np.int32),  # [runtime_state]
    "published_at": ((), np.float64),  # runtime clock (time.monotonic) when the cycle ended
}
_FRAME_KEYS = {
    "timestamp": "timestamp",
    "actual_q": "actual_q",
    "actual_qd": "actual_qd",
    "actual_tcp_pose": "actual_TCP_pose",
    "actual_tcp_speed": "actual_TCP_speed",
    "target_tcp_pose": "target_TCP_pose",
    "safety_mode": "safety_mode",
    "runtime_state": "runtime_state",
}


def find_free_loopback_host(ports: tuple[int, ...] = DEFAULT_PORTS, attempts: int = 50) -> str:
    """A random ``127.x.y.z`` address on which every port in ``ports`` can be bound right now.

    Linux routes all of 127.0.0.0/8 to the loopback interface, so each simulated robot can have the real
    robot's fixed ports on an address of its own, even with other servers running on the same machine.
    """
    rng = random.Random()
    for _ in range(attempts):
        host = f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        socks = []
        try:
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
            return host
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                raise
        finally:
            for sock in socks:
                sock.close()
    raise OSError(f"no loopback address with ports {ports} free after {attempts} attempts")


class SimLoopbackProcess(DeviceProcess):
    """Serve a simulated UR5 (``SimUR5`` built from ``config``) on ``host`` from a spawned process.

    ``host`` defaults to a free random loopback address (``self.host``). The controller version follows the
    rig's frequency (500 Hz: e-series, else CB3) unless ``version`` is given.
    """

    priority_role = "control"  # it stands in for the robot's own controller and its real-time RTDE stream

    def __init__(
        self,
        config: RobotConfig,
        host: str | None = None,
        *,
        seed: int = 0,
        version: ControllerVersion | None = None,
        state_capacity: int = 1024,
        name: str = "rtde_loopback",
    ):
        super().__init__(name=name)
        self.config = config
        self.host = host or find_free_loopback_host()
        self.seed = seed
        self.version = version or (E_SERIES if float(config.frequency) == E_SERIES.frequency else CB3)
        self.state = self.own(SharedMemoryRingBuffer.create(STATE_SPEC, state_capacity))
        self._server: RTDELoopbackServer | None = None

    def setup(self) -> None:
        from robot_stack.hardware.robot.sim_ur5 import SimUR5

        arm = SimUR5(self.config, seed=self.seed)
        self._server = RTDELoopbackServer(
            arm, self.host, version=self.version, tcp_offset=self.config.tcp_offset, on_tick=self._publish
        )
        self._server.start()

    def step(self) -> None:
        time.sleep(0.05)
        if self._server is not None and self._server.error:
            raise RuntimeError(f"RTDE loopback on {self.host}: {self._server.error}")

    def teardown(self) -> None:
        if self._server is not None:
            self._server.stop()

    def _publish(self, controller: LoopbackController) -> None:
        frame = controller.frame
        record = {key: np.asarray(frame[name]) for key, name in _FRAME_KEYS.items()}
        record["published_at"] = np.float64(time.monotonic())
        self.state.put(record)
