"""``LockstepPushT``: the ``sim_pusht`` rig stepped in simulated time — same parts, no processes, no sleeping.

The runtime's simulated rig is four device processes on the wall clock; this is the same rig as one event
loop on a ``SimClock``, so episodes run as fast as the CPU allows and are deterministic for a seed:

* the arm: ``SimUR5`` under the controller's own ``ServoLoop`` at the rig's servo rate; waypoints handed
  over between two cycles take effect at the next cycle, as through the controller's command queue, so the
  tip lags its commands exactly as in the runtime;
* the scene: ``PushTPhysics`` at ``physics_hz``, its tip following the latest published TCP pose
  (``TcpTip``, shared with the scene process);
* the cameras: each captures on its own ``fps`` grid, the frame showing the latest published scene state,
  cropped/resized by the camera's ``ImageTransform``, and becomes readable ``sim_latency`` after its capture
  time (stamped with the capture time), like ``SimCamera``. Images are rendered when first read, so a
  consumer that looks at few frames (an evaluation) does not pay for the others.

State, scene and camera records land in ``RecordBuffer``s with the runtime's record specs, so the runtime's
consumers — the observation assembler (``policy_images``, history, staleness checks), the recorder's
key mapping, the executor — run on them unchanged.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from robot_stack.config import ConfigError
from robot_stack.hardware.camera.config import CameraConfig
from robot_stack.hardware.camera.image_transform import ImageTransform
from robot_stack.hardware.camera.process import camera_spec
from robot_stack.hardware.robot.clock import SimClock
from robot_stack.hardware.robot.config import RobotConfig
from robot_stack.hardware.robot.controller import STATE_SPEC
from robot_stack.hardware.robot.servo_loop import ServoLoop
from robot_stack.hardware.robot.sim_ur5 import SimUR5
from robot_stack.runtime.record_buffer import RecordBuffer
from robot_stack.runtime.ring_buffer import StaleDataError
from robot_stack.sim.pusht.config import SceneConfig
from robot_stack.sim.pusht.physics import SCENE_STATE_SPEC, PushTPhysics
from robot_stack.sim.pusht.render import SceneRenderer
from robot_stack.sim.pusht.tip import TcpTip

_HISTORY_S = 3.0  # seconds of records each buffer keeps (the assembler looks back well under a second)
_WARMUP_S = 0.5
_EPS = 1e-9


def check_lockstep_rig(name: str, robot: RobotConfig, scene: SceneConfig | None,
                       cameras: Sequence[CameraConfig]) -> None:
    """``ConfigError`` unless these rig sections make a fully simulated Push-T rig (what lockstep runs)."""
    problems = []
    if scene is None:
        problems.append("it has no scene: section")
    if robot.driver != "sim":
        problems.append(f"its robot driver is {robot.driver!r}, not sim")
    problems += [f"camera '{c.name}' is driver {c.driver!r}, not sim" for c in cameras if c.driver != "sim"]
    problems += [f"camera '{c.name}' streams depth" for c in cameras if c.depth]
    if problems:
        raise ConfigError(f"--lockstep runs simulated Push-T rigs only; rig '{name}': {'; '.join(problems)}")


@dataclass(frozen=True)
class LockstepRig:
    """The sections of a simulated Push-T rig the lockstep twin is built from (picklable, for workers)."""

    robot: RobotConfig
    scene: SceneConfig
    cameras: tuple[CameraConfig, ...] = ()
    name: str = "lockstep"

    def __post_init__(self) -> None:
        check_lockstep_rig(self.name, self.robot, self.scene, self.cameras)

    def build(self, seed: int = 0, render: bool = True) -> "LockstepPushT":
        """A fresh lockstep rig (arm at home, scene at the random start of ``seed``)."""
        return LockstepPushT(self.robot, self.scene, self.cameras, render=render, seed=seed)


class LazyImages:
    """The ``color`` column of camera records whose images are rendered on first access (then cached)."""

    def __init__(self, camera: "_LockstepCamera", frame_numbers: np.ndarray):
        self._camera = camera
        self._numbers = frame_numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def __getitem__(self, i: int) -> np.ndarray:
        return self._camera.image(int(self._numbers[i]))


class CameraBuffer:
    """A lockstep camera's frames with ``SharedMemoryRingBuffer``'s reading interface (``color`` lazy)."""

    def __init__(self, camera: "_LockstepCamera"):
        self._camera = camera
        self.spec = camera_spec(camera.config)

    @property
    def count(self) -> int:
        return self._camera.meta.count

    def _with_images(self, records: dict[str, np.ndarray]) -> dict[str, Any]:
        return {**records, "color": LazyImages(self._camera, records["frame_number"])}

    def get(self) -> dict[str, Any]:
        record = self._camera.meta.get()
        return {**record, "color": self._camera.image(int(record["frame_number"]))}

    def get_last_k(self, k: int) -> dict[str, Any]:
        return self._with_images(self._camera.meta.get_last_k(k))

    def get_since(self, t: float, key: str = "timestamp") -> dict[str, Any]:
        return self._with_images(self._camera.meta.get_since(t, key))


class _LockstepCamera:
    def __init__(self, config: CameraConfig, renderer: SceneRenderer, capacity: int):
        self.config = config
        self.renderer = renderer
        self.transform = ImageTransform(config)
        self.period = 1.0 / config.fps
        meta_spec = {k: v for k, v in camera_spec(config).items() if k != "color"}
        self.meta = RecordBuffer(meta_spec, capacity)
        self.buffer = CameraBuffer(self)
        self.next_capture = 0.0
        self._index = 0
        self._in_flight: collections.deque[tuple[float, int]] = collections.deque()  # (readable at, frame)
        self._states: dict[int, Mapping[str, np.ndarray] | None] = {}
        self._images: dict[int, np.ndarray] = {}

    def capture(self, t: float, scene_state: Mapping[str, np.ndarray] | None) -> None:
        self._index += 1
        self._states[self._index] = scene_state
        self._in_flight.append((t + self.config.sim_latency, self._index))
        self.next_capture = self._index * self.period

    def next_delivery(self) -> float:
        return self._in_flight[0][0] if self._in_flight else float("inf")

    def deliver(self, t: float) -> None:
        _, number = self._in_flight.popleft()
        capture_time = (number - 1) * self.period
        self.meta.put({"timestamp": capture_time, "receive_timestamp": t, "frame_number": number,
                       "dropped_frames": 0})
        oldest = number - self.meta.capacity  # frames the buffer no longer holds
        for old in [n for n in self._states if n <= oldest]:
            self._states.pop(old, None)
            self._images.pop(old, None)

    def image(self, number: int) -> np.ndarray:
        image = self._images.get(number)
        if image is None:
            image = self.transform.color(self.renderer.render(self._states[number]))
            self._images[number] = image
        return image


@dataclass(frozen=True)
class WaypointCommand:
    pose: np.ndarray
    target_time: float


class LockstepArm:
    """The arm as the runtime's consumers see it (``RobotClient``'s ``get_state``, ``schedule_waypoint``,
    ``state``)."""

    def __init__(self, sim: "LockstepPushT"):
        self._sim = sim
        self.state = sim.robot_state

    def get_state(self) -> dict[str, np.ndarray]:
        return self.state.get()

    def schedule_waypoint(self, pose: Sequence[float], target_time: float) -> None:
        self._sim.schedule_waypoint(pose, target_time)


class LockstepScene:
    """The scene as the runtime's consumers see it (``SceneProcess``'s ``reset``, ``get_state``, ``state``)."""

    def __init__(self, sim: "LockstepPushT"):
        self._sim = sim
        self.state = sim.scene_state

    def reset(self, seed: int, timeout: float | None = None) -> dict[str, np.ndarray]:
        return self._sim.reset(seed)

    def get_state(self) -> dict[str, np.ndarray]:
        return self.state.get()


class LockstepPushT:
    """The simulated Push-T rig on a ``SimClock`` (see the module docstring), from a rig's sections.

    ``advance(dt)`` / ``run_until(t)`` step it; ``schedule_waypoint`` is the controller's command;
    ``robot_state``, ``scene_state`` and ``cameras[i]`` are the record buffers the runtime's consumers read
    (``arm`` and ``scene`` wrap them as the runtime's robot client and scene process);
    ``reset(seed)`` starts an episode's scene. ``render=False`` leaves the cameras out.
    """

    def __init__(self, robot: RobotConfig, scene: SceneConfig, cameras: Sequence[CameraConfig] = (),
                 render: bool = True, seed: int = 0):
        check_lockstep_rig("lockstep", robot, scene, cameras)
        self.scene_config = scene
        self.clock = SimClock(0.0)
        arm = SimUR5(robot, seed=seed, clock=self.clock)
        arm.connect()
        self.servo = ServoLoop(arm, robot, self.clock)
        self.servo.start()
        self.robot_state = RecordBuffer(STATE_SPEC, int(robot.frequency * _HISTORY_S))
        self.physics = PushTPhysics(scene)
        self.tip = TcpTip(scene, self.physics, "lockstep scene")
        self.scene_state = RecordBuffer(SCENE_STATE_SPEC, int(scene.physics_hz * _HISTORY_S))
        self._cameras = [
            _LockstepCamera(cam, SceneRenderer(scene, None, cam.name, tuple(cam.resolution)),
                            max(8, int(cam.fps * _HISTORY_S)))
            for cam in (cameras if render else ())
        ]
        self.cameras = [cam.buffer for cam in self._cameras]
        self._commands: list[WaypointCommand] = []
        self._last_state: dict[str, Any] | None = None
        self._resets: list[int] = []
        self._next_servo = 0.0
        self._next_physics = 0.0
        self._servo_cycle()  # the controller publishes a state before it reports ready
        self.tip.start(self._tcp_pose(), seed)
        self._publish_scene()
        self.arm = LockstepArm(self)
        self.scene = LockstepScene(self)
        # A runtime rig has been running for a while before anyone uses it: buffers hold some history.
        self.advance(_WARMUP_S)

    # -- what the consumers call -----------------------------------------------------------------------------
    def now(self) -> float:
        """Simulated time (s); every record's timestamp is on this clock."""
        return self.clock.now()

    def schedule_waypoint(self, pose: Sequence[float], target_time: float) -> None:
        """Queue a waypoint for the controller (applied at its next servo cycle)."""
        self._commands.append(WaypointCommand(np.asarray(pose, dtype=np.float64).copy(), float(target_time)))

    def get_state(self) -> dict[str, np.ndarray]:
        """The robot's latest state record."""
        return self.robot_state.get()

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        """Reset the scene to the random start of ``seed`` at the next physics tick; returns that state."""
        self._resets.append(int(seed))
        episode = int(self.scene_state.get()["episode"])
        while int(self.scene_state.get()["episode"]) == episode:
            self.run_until(self._next_physics)
        return self.scene_state.get()

    def advance(self, dt: float) -> None:
        """Run the rig for ``dt`` seconds of simulated time."""
        self.run_until(self.now() + max(0.0, float(dt)))

    def run_until(self, t_end: float) -> None:
        """Process every servo cycle, physics tick and camera event up to ``t_end``, in time order."""
        while True:
            t, event = self._next_event()
            if t > t_end + _EPS:
                break
            self.clock.wait_until(t)
            event()
        self.clock.wait_until(t_end)

    # -- the event loop ------------------------------------------------------------------------------------
    def _next_event(self):
        events = [(self._next_servo, self._servo_cycle), (self._next_physics, self._physics_tick)]
        for cam in self._cameras:
            events.append((cam.next_capture, lambda cam=cam: cam.capture(self.now(), self._scene_or_none())))
            events.append((cam.next_delivery(), lambda cam=cam: cam.deliver(self.now())))
        return min(events, key=lambda e: e[0])

    def _servo_cycle(self) -> None:
        commands, self._commands = self._commands, []
        for command in commands:
            self.servo.schedule_waypoint(command.pose, command.target_time)
        self._last_state = self.servo.cycle()
        self.robot_state.put(self._last_state)
        self._next_servo += self.servo.period

    def _physics_tick(self) -> None:
        resets, self._resets = self._resets, []
        self._publish_scene(self.tip.tick(self._tcp_pose(), resets))
        self._next_physics += self.physics.dt

    def _publish_scene(self, record: dict[str, np.ndarray] | None = None) -> None:
        record = self.physics.state() if record is None else record
        record["timestamp"] = np.float64(self.now())
        self.scene_state.put(record)

    def _tcp_pose(self) -> np.ndarray | None:
        # the latest state record as published (reading it back from the buffer copies every field)
        return None if self._last_state is None else np.asarray(self._last_state[self.scene_config.robot_pose_key])

    def _scene_or_none(self) -> Mapping[str, np.ndarray] | None:
        try:
            return self.scene_state.get()
        except StaleDataError:
            return None
