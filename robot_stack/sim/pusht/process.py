"""``SceneProcess``: the Push-T scene as a runtime device, driven by the robot's actual TCP.

The child steps the physics at ``physics_hz``. Each tick it reads the latest actual TCP pose from the robot
controller's state ring buffer (field ``SceneConfig.robot_pose_key``), lets the tip follow it (``TcpTip``:
xy into the table frame as the tip's target, z to "tip down / lifted", non-finite poses ignored), steps, and
publishes a ``SCENE_STATE_SPEC`` record (runtime clock timestamp) into its own ring buffer, which cameras
render from and recorders log. Resets arrive through a shared-memory command queue.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from robot_stack.runtime import (
    DeviceProcess,
    SharedMemoryQueue,
    SharedMemoryRingBuffer,
    StaleDataError,
    now,
    precise_wait,
)
from robot_stack.sim.pusht.config import SceneConfig
from robot_stack.sim.pusht.physics import SCENE_STATE_SPEC, PushTPhysics
from robot_stack.sim.pusht.render import SceneRenderer, View
from robot_stack.sim.pusht.tip import TcpTip

log = logging.getLogger(__name__)

# Scene commands: a reset to the random start of ``seed``.
COMMAND_SPEC: dict[str, tuple[tuple[int, ...], Any]] = {"seed": ((), np.int64)}


class SceneProcess(DeviceProcess):
    """Runs ``PushTPhysics`` in its own process, its tip following the robot TCP from ``robot_state``.

    Parent side: ``reset(seed)``, ``get_state()``, ``renderer(view, resolution)``; ``state`` is the scene-state
    ring buffer (``SCENE_STATE_SPEC``).
    """

    def __init__(self, config: SceneConfig, robot_state: SharedMemoryRingBuffer, seed: int = 0,
                 name: str = "scene", capacity: int = 256):
        super().__init__(name=name)
        key = config.robot_pose_key
        if key not in robot_state.spec:
            raise KeyError(
                f"the robot state buffer has no field {key!r} (fields: {sorted(robot_state.spec)}); "
                "set scene.robot_pose_key to the actual TCP pose field"
            )
        if tuple(robot_state.spec[key][0]) != (6,):
            raise ValueError(
                f"robot state field {key!r} must be a 6-vector TCP pose, has shape {robot_state.spec[key][0]}"
            )
        self.config = config
        self.robot_state = robot_state
        self.seed = int(seed)
        self.state = self.own(SharedMemoryRingBuffer.create(SCENE_STATE_SPEC, capacity))
        self.commands = self.own(SharedMemoryQueue.create(COMMAND_SPEC, capacity=16))

    # -- parent side -------------------------------------------------------------------------------------
    def reset(self, seed: int, timeout: float | None = 2.0) -> dict[str, np.ndarray] | None:
        """Start a new episode from the random start of ``seed``.

        With a ``timeout``, wait until the reset shows in the published state and return that state
        (``TimeoutError`` if it does not within ``timeout`` s); with ``None``, return at once.
        """
        episode = int(self.get_state()["episode"]) if self.state.count else 0
        self.commands.put({"seed": int(seed)})
        if timeout is None:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state.count:
                state = self.state.get()
                if int(state["episode"]) > episode:
                    return state
            if not self.is_alive():
                raise RuntimeError(f"scene process '{self.name}' is not running ({self.error or 'not started'})")
            time.sleep(0.005)
        raise TimeoutError(f"scene process '{self.name}' did not apply reset(seed={seed}) within {timeout} s")

    def get_state(self) -> dict[str, np.ndarray]:
        """Latest scene state (``SCENE_STATE_SPEC`` fields); ``StaleDataError`` before the first tick."""
        return self.state.get()

    def renderer(self, view: View = "top", resolution: tuple[int, int] = (640, 480)) -> SceneRenderer:
        """A picklable renderer of this scene's latest state, for a simulated camera."""
        return SceneRenderer(self.config, self.state, view, resolution)

    # -- child side --------------------------------------------------------------------------------------
    def setup(self) -> None:
        self._physics = PushTPhysics(self.config)
        self._tip = TcpTip(self.config, self._physics, self.name)
        self._late_ticks = 0
        self._tip.start(self._robot_pose(), self.seed)
        self._period = 1.0 / self.config.physics_hz
        self._next_tick = now()
        self._publish()

    def step(self) -> None:
        commands = self.commands.get_all()
        self._publish(self._tip.tick(self._robot_pose(), [int(s) for s in commands["seed"]]))
        self._next_tick += self._period
        late = now() - self._next_tick
        if late > self._period:
            # Fell more than a tick behind (CPU contention): resynchronise instead of bursting to catch up.
            self._late_ticks += 1
            self._next_tick = now()
        precise_wait(self._next_tick, slack=0.0)

    def teardown(self) -> None:
        tip = getattr(self, "_tip", None)  # None if setup failed early
        if tip is not None and (self._late_ticks or tip.bad_poses):
            log.warning("%s: %d late physics ticks, %d non-finite robot poses ignored",
                        self.name, self._late_ticks, tip.bad_poses)

    def _robot_pose(self) -> np.ndarray | None:
        """The robot's latest actual TCP pose (None before its first state)."""
        try:
            return self.robot_state.get()[self.config.robot_pose_key]
        except StaleDataError:
            return None

    def _publish(self, record: dict[str, np.ndarray] | None = None) -> None:
        record = self._physics.state() if record is None else record
        record["timestamp"] = np.float64(now())
        self.state.put(record)
