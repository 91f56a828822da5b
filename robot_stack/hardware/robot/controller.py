"""``RobotController``: the device process that owns the arm, and ``RobotClient``, the handle others use.

The controller runs ``ServoLoop`` at ``config.frequency`` in its own process. It builds its driver in the
child from the config (``make_driver``: ``SimUR5`` for ``driver: sim`` — the simulated arm then lives in
the controller process — or ``RTDEDriver`` for ``driver: rtde``), so the process, buffers and loop are
identical for the real and the simulated arm. Other processes (teleop, policy, the Push-T scene, sim
cameras) see the arm only through the state ring buffer and command it only through the command queue.

State ring buffer (``STATE_SPEC``; one record per servo cycle, float64 unless noted):

==================  =======  ===================================================================
field               shape    meaning
==================  =======  ===================================================================
actual_tcp_pose     (6,)     measured TCP pose [x, y, z, rx, ry, rz] (m, rotation vector)
actual_tcp_speed    (6,)     measured TCP twist [vx, vy, vz, wx, wy, wz] (m/s, rad/s)
actual_q            (6,)     measured joint positions (rad)
actual_qd           (6,)     measured joint velocities (rad/s)
target_tcp_pose     (6,)     the robot controller's own target TCP pose
commanded_pose      (6,)     pose sent with servoL this cycle (the actual pose while holding)
robot_timestamp     ()       robot controller clock (s since controller start)
loop_time           ()       runtime clock at the start of the cycle (the trajectory was sampled here)
timestamp           ()       runtime clock when the robot measured this state (its timestamp, mapped; +1 us if re-read)
holding             () bool  True while decelerating/holding (watchdog, stop command, dead peer)
n_rejected          () i8    cumulative count of rejected commands (NaN/inf, outside workspace, no IK...)
n_dropped           () i8    cumulative count of waypoints dropped because their time had passed
n_stretched         () i8    cumulative count of waypoints slowed down to respect the speed limits
n_overruns          () i8    cumulative count of cycles that overran a full period
==================  =======  ===================================================================
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from robot_stack.hardware.robot.clock import Clock, RuntimeClock
from robot_stack.hardware.robot.config import RobotConfig
from robot_stack.hardware.robot.interface import RobotDriver
from robot_stack.hardware.robot.servo_loop import ServoLoop
from robot_stack.runtime import DeviceProcess, SharedMemoryQueue, SharedMemoryRingBuffer

log = logging.getLogger(__name__)

_F8, _I8 = np.float64, np.int64
STATE_SPEC: dict[str, tuple[tuple[int, ...], Any]] = {
    "actual_tcp_pose": ((6,), _F8),
    "actual_tcp_speed": ((6,), _F8),
    "actual_q": ((6,), _F8),
    "actual_qd": ((6,), _F8),
    "target_tcp_pose": ((6,), _F8),
    "commanded_pose": ((6,), _F8),
    "robot_timestamp": ((), _F8),
    "loop_time": ((), _F8),
    "timestamp": ((), _F8),
    "holding": ((), np.bool_),
    "n_rejected": ((), _I8),
    "n_dropped": ((), _I8),
    "n_stretched": ((), _I8),
    "n_overruns": ((), _I8),
}

# Command queue records. ``time`` is the target time (SCHEDULE_WAYPOINT) or the duration (SERVO_L).
CMD_SCHEDULE_WAYPOINT, CMD_SERVO_L, CMD_STOP, CMD_WATCH = 1, 2, 3, 4
COMMAND_SPEC = {"kind": ((), _I8), "pose": ((6,), _F8), "time": ((), _F8), "pid": ((), _I8)}

_PEER_CHECK_INTERVAL = 0.02  # s; /proc reads are cheap, but not free at 500 Hz

DriverFactory = Callable[[RobotConfig, Clock, int], RobotDriver]


def make_driver(config: RobotConfig, clock: Clock, seed: int = 0) -> RobotDriver:
    """The driver a config asks for: ``SimUR5`` on ``clock`` for ``sim``, ``RTDEDriver`` for ``rtde``."""
    if config.driver == "sim":
        from robot_stack.hardware.robot.sim_ur5 import SimUR5

        return SimUR5(config, seed=seed, clock=clock)
    from robot_stack.hardware.robot.rtde_driver import RTDEDriver

    return RTDEDriver(config)


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie (a killed child not yet reaped counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs (not Linux): existence is the best we can check
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    state = stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3]  # the field after "(comm)"
    return state not in (b"Z", b"X")


def _pid_of(proc: int | Any) -> int:
    pid = proc if isinstance(proc, int) else getattr(proc, "pid", None)
    if not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"cannot watch {proc!r}: not a pid and not a started process")
    return pid


class RobotClient:
    """Handle to a ``RobotController``'s command queue and state buffer; picklable, usable from any process.

    Commands are validated by the controller (rejections are logged there and counted in the state's
    ``n_rejected``); a full command queue raises ``QueueFull`` rather than dropping the command.
    """

    def __init__(self, commands: SharedMemoryQueue, state: SharedMemoryRingBuffer):
        self.commands = commands
        self.state = state

    def _send(self, kind: int, pose: Sequence[float] | None = None, time: float = 0.0, pid: int = 0) -> None:
        pose_arr = np.zeros(6) if pose is None else np.asarray(pose, dtype=np.float64)
        if pose_arr.shape != (6,):
            raise ValueError(f"pose must have 6 values [x, y, z, rx, ry, rz], got shape {pose_arr.shape}")
        self.commands.put({"kind": kind, "pose": pose_arr, "time": float(time), "pid": int(pid)})

    def schedule_waypoint(self, pose: Sequence[float], target_time: float) -> None:
        """Reach ``pose`` at runtime-clock time ``target_time`` (see ``interpolator.py`` for the rule)."""
        self._send(CMD_SCHEDULE_WAYPOINT, pose, target_time)

    def servo_l(self, pose: Sequence[float], duration: float) -> None:
        """Replace the plan: move to ``pose`` over ``duration`` s from when the controller receives it."""
        self._send(CMD_SERVO_L, pose, duration)

    def stop_motion(self) -> None:
        """Decelerate and hold (servoStop); the next motion command resumes."""
        self._send(CMD_STOP)

    def add_watch(self, proc: int | Any) -> None:
        """Hold the arm for good if this process (pid or started ``Process``) dies."""
        self._send(CMD_WATCH, pid=_pid_of(proc))

    def get_state(self) -> dict[str, np.ndarray]:
        """Latest state record; raises ``StaleDataError`` before the first cycle."""
        return self.state.get()

    def get_state_last_k(self, k: int) -> dict[str, np.ndarray]:
        """The last ``k`` state records, oldest first, each field shaped (k, ...)."""
        return self.state.get_last_k(k)

    def get_all_state(self) -> dict[str, np.ndarray]:
        """Every record still held by the ring buffer, oldest first."""
        return self.state.get_last_k(min(self.state.count, self.state.capacity - 1))


class RobotController(DeviceProcess):
    """Process owning the arm: a fixed-rate servoL loop toward a timestamped pose trajectory.

    ``watch``: pids or processes whose death makes the arm decelerate and hold for good (more can be added
    later with ``add_watch``). ``state_capacity`` defaults to 2 s of records. ``driver_factory`` must be a
    picklable top-level callable ``(config, clock, seed) -> RobotDriver``; the default follows
    ``config.driver``.
    """

    priority_role = "control"  # the servo loop: first on the CPU when the machine is busy

    def __init__(
        self,
        config: RobotConfig,
        name: str = "robot",
        watch: Iterable[int | Any] = (),
        state_capacity: int | None = None,
        command_capacity: int = 256,
        seed: int = 0,
        driver_factory: DriverFactory = make_driver,
    ):
        super().__init__(name=name)
        self.config = config
        self.seed = seed
        self.driver_factory = driver_factory
        capacity = state_capacity or max(64, int(round(2.0 * config.frequency)))
        self.state = self.own(SharedMemoryRingBuffer.create(STATE_SPEC, capacity))
        self.commands = self.own(SharedMemoryQueue.create(COMMAND_SPEC, command_capacity))
        self.client = RobotClient(self.commands, self.state)
        self._watch_items = list(watch)
        self._watch_pids: list[int] = []
        self._loop: ServoLoop | None = None
        self._driver: RobotDriver | None = None

    # -- parent side -----------------------------------------------------------------------------------------
    def start(self, wait: bool = True, timeout: float = 30.0) -> None:  # type: ignore[override]
        # Resolve processes to pids now: Process objects cannot travel to the child.
        self._watch_pids = [_pid_of(p) for p in self._watch_items]
        self._watch_items = []
        super().start(wait=wait, timeout=timeout)

    def schedule_waypoint(self, pose: Sequence[float], target_time: float) -> None:
        """See ``RobotClient.schedule_waypoint``."""
        self.client.schedule_waypoint(pose, target_time)

    def servo_l(self, pose: Sequence[float], duration: float) -> None:
        """See ``RobotClient.servo_l``."""
        self.client.servo_l(pose, duration)

    def stop_motion(self) -> None:
        """See ``RobotClient.stop_motion``."""
        self.client.stop_motion()

    def add_watch(self, proc: int | Any) -> None:
        """See ``RobotClient.add_watch``."""
        self.client.add_watch(proc)

    def get_state(self) -> dict[str, np.ndarray]:
        """See ``RobotClient.get_state``."""
        return self.client.get_state()

    def get_state_last_k(self, k: int) -> dict[str, np.ndarray]:
        """See ``RobotClient.get_state_last_k``."""
        return self.client.get_state_last_k(k)

    def get_all_state(self) -> dict[str, np.ndarray]:
        """See ``RobotClient.get_all_state``."""
        return self.client.get_all_state()

    # -- child side --------------------------------------------------------------------------------------------
    def setup(self) -> None:
        clock = RuntimeClock()
        self._driver = self.driver_factory(self.config, clock, self.seed)
        self._driver.connect()
        self._loop = ServoLoop(self._driver, self.config, clock)
        self._loop.start()
        self._next_peer_check = 0.0
        self.state.put(self._loop.cycle())  # publish a state before reporting ready

    def step(self) -> None:
        loop = self._loop
        assert loop is not None
        batch = self.commands.get_all()
        for kind, pose, t, pid in zip(batch["kind"], batch["pose"], batch["time"], batch["pid"]):
            if kind == CMD_SCHEDULE_WAYPOINT:
                loop.schedule_waypoint(pose, float(t))
            elif kind == CMD_SERVO_L:
                loop.servo_l(pose, float(t))
            elif kind == CMD_STOP:
                loop.hold("stop command")
            elif kind == CMD_WATCH:
                self._watch_pids.append(int(pid))
            else:
                loop.reject(f"unknown command kind {int(kind)}")
        self._check_peers(loop)
        self.state.put(loop.cycle())
        loop.wait_next()

    def _check_peers(self, loop: ServoLoop) -> None:
        t = loop.clock.now()
        if t < self._next_peer_check:
            return
        self._next_peer_check = t + _PEER_CHECK_INTERVAL
        for pid in self._watch_pids:
            if not pid_alive(pid):
                loop.hold(f"watched process {pid} died", latch=True)
                self._watch_pids.remove(pid)
                return

    def teardown(self) -> None:
        if self._loop is not None:
            self._loop.shutdown()
        elif self._driver is not None:
            self._driver.disconnect()
