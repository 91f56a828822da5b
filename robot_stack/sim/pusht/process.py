"""``SceneProcess``: the Push-T scene as a runtime device, driven by the robot's actual TCP.

The child steps the physics at ``physics_hz``. Each tick it reads the latest actual TCP pose from the robot
controller's state ring buffer (field ``SceneConfig.robot_pose_key``), maps its xy into the table frame as the
tip's target and its z to "tip down / lifted", steps, and publishes a ``SCENE_STATE_SPEC`` record (runtime
clock timestamp) into its own ring buffer, which cameras render from and recorders log. Resets arrive through
a shared-memory command queue.

Until the robot has published a pose the tip is lifted (it cannot push); the first pose places it. Non-finite
TCP poses are ignored (the tip keeps its last good target; counted and logged) so a bad reading never
teleports the tip through the block.
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
        self._bad_poses = 0
        self._late_ticks = 0
        tip = self._read_tip()
        self._physics.reset(self.seed, None if tip is None else tip[0])
        self._tip_placed = tip is not None
        self._physics.set_pusher_down(tip is not None and tip[1])
        self._last_tip = tip
        self._period = 1.0 / self.config.physics_hz
        self._next_tick = now()
        self._publish()

    def step(self) -> None:
        commands = self.commands.get_all()
        tip = self._read_tip() or self._last_tip
        self._last_tip = tip
        for seed in commands["seed"]:
            self._physics.reset(int(seed), None if tip is None else tip[0])
        if tip is None:
            self._physics.step(self._physics.state()["pusher_xy"], pusher_down=False)
        else:
            xy, down = tip
            if not self._tip_placed:
                self._physics.set_pose(self._physics.block_pose, xy)
                self._tip_placed = True
            self._physics.step(xy, pusher_down=down)
        self._publish()
        self._next_tick += self._period
        late = now() - self._next_tick
        if late > self._period:
            # Fell more than a tick behind (CPU contention): resynchronise instead of bursting to catch up.
            self._late_ticks += 1
            self._next_tick = now()
        precise_wait(self._next_tick, slack=0.0)

    def teardown(self) -> None:
        if getattr(self, "_late_ticks", 0) or getattr(self, "_bad_poses", 0):  # 0 if setup failed early
            log.warning("%s: %d late physics ticks, %d non-finite robot poses ignored",
                        self.name, self._late_ticks, self._bad_poses)

    def _read_tip(self) -> tuple[np.ndarray, bool] | None:
        """Table-frame tip xy and whether it is down, from the robot's latest actual TCP pose."""
        try:
            pose = self.robot_state.get()[self.config.robot_pose_key]
        except StaleDataError:
            return None
        if not np.all(np.isfinite(pose)):
            self._bad_poses += 1
            if self._bad_poses == 1:
                log.error("%s: ignoring non-finite robot TCP pose %s", self.name, pose)
            return None
        return self.config.base_to_table(pose[:2]), self.config.pusher_in_contact(float(pose[2]))

    def _publish(self) -> None:
        record = self._physics.state()
        record["timestamp"] = np.float64(now())
        self.state.put(record)
