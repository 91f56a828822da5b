"""``run_collection``: the demonstration-collection loop, on components that are already running.

Every control period (``1 / frequency``, 10 Hz by default) the loop

1. reads the robot's latest state and the teleop device, maps the device state to a TCP target
   (``TeleopMapper``) and schedules it as a waypoint ``ACTION_DELAY_STEPS`` periods after the state's
   timestamp (the original Diffusion Policy convention: the target of step ``i`` is reached two steps later);
2. while an episode is being recorded, records one step: ``timestamp`` (the robot state's, runtime clock),
   ``action`` (the commanded target pose, plus the gripper command on rigs with a gripper), the robot state
   (``robot_eef_pose``, ``robot_eef_pose_vel``, ``robot_joint``, ``robot_joint_vel``) and, in simulation,
   the scene state (``scene_<field>``); the cameras record video in the background. With a gripper
   process (``gripper``), the teleop's open/close is scheduled on it as a width waypoint (0 closed, fully
   open otherwise) at the pose's target time, the action's 7th column is that width (m) and
   ``gripper_width`` records the measured width; without one, ``config.gripper`` appends the bare command
   (1 closed, 0 open);
3. handles the operator's keys and buttons: ``c`` start an episode, ``s`` stop and save it, ``x`` or
   Backspace discard the episode being recorded (or, if none, the last saved one), ``q``/Esc quit
   (an episode still being recorded is discarded). Teleop buttons ``record_toggle`` and ``discard_last``
   do the same as ``c``/``s`` and ``x``.

With ``auto`` (scripted teleop) episodes start by themselves and end on task success (held for
``success_hold`` s) or after ``max_duration``; unsuccessful ones are dropped unless ``keep_failed``.
Starting an episode resets the simulated scene (seed ``seed + k`` for the k-th started episode) and calls
``on_episode_start(seed)`` (e.g. to reseed the scripted expert).

Nothing is dropped silently: loop overruns, stale robot states and stale/invalid teleop readings are counted
in ``CollectStats`` and logged at the end.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from robot_stack.config import ConfigError
from robot_stack.data.episode_recorder import EpisodeRecorder, robot_step
from robot_stack.data.timing_convention import TimingConvention
from robot_stack.hardware.teleop import KeyboardTeleop, TeleopMapper, TeleopState
from robot_stack.runtime import StaleDataError, now, precise_wait
from robot_stack.sim.pusht.expert import check_finish_coverage, demo_finished

log = logging.getLogger(__name__)

ACTION_DELAY_STEPS = 2


def recording_convention(frequency: float) -> TimingConvention:
    """The timing convention of episodes these recorders make at ``frequency`` Hz (for ``record_setup``)."""
    return TimingConvention(1.0 / frequency, ACTION_DELAY_STEPS)
# Operator keys (in the preview window or the terminal) -> loop commands.
CONTROL_KEYS: dict[str, str] = {"c": "start", "s": "stop", "x": "discard", "\b": "discard", "\x7f": "discard",
                                "q": "quit", "\x1b": "quit"}
_BUTTON_COMMANDS = {"record_toggle": "toggle", "discard_last": "discard"}
_ROBOT_STALE_S = 0.25  # a robot state older than this is not acted on (the controller process is stuck)


class TeleopInput(Protocol):
    """Anything that reports a ``TeleopState``: a ``TeleopDevice`` or a ``TeleopProcess``."""

    def read(self) -> TeleopState: ...


class RobotHandle(Protocol):
    """The part of ``RobotClient`` the loop uses."""

    def get_state(self) -> dict[str, np.ndarray]: ...

    def schedule_waypoint(self, pose: Sequence[float], target_time: float) -> None: ...


class GripperHandle(Protocol):
    """The part of ``GripperClient`` the loop uses."""

    max_width: float

    def get_state(self) -> dict[str, np.ndarray]: ...

    def schedule_waypoint(self, width: float, target_time: float) -> None: ...


class Scene(Protocol):
    """The part of the simulated scene (``SceneProcess``) the loop uses."""

    def reset(self, seed: int, timeout: float | None = 2.0) -> Mapping[str, np.ndarray] | None: ...

    def get_state(self) -> dict[str, np.ndarray]: ...


class KeySource(Protocol):
    """A source of typed keys (``TerminalKeys``; the preview window is polled separately)."""

    def poll(self) -> list[str]: ...


class StatusDisplay(Protocol):
    """The live preview: shows status lines, returns the keys typed into it."""

    def update(self, status: Sequence[str]) -> list[str]: ...


@dataclass(frozen=True)
class CollectConfig:
    """Loop settings (see the module docstring)."""

    frequency: float = 10.0  # Hz, control and recording rate
    episodes: int | None = None  # quit after this many saved episodes
    max_duration: float | None = None  # s; an episode is stopped after this long (saved, unless auto+failed)
    auto: bool = False  # episodes start/stop by themselves (scripted teleop)
    keep_failed: bool = False  # auto: also save episodes that ended without success
    success_hold: float = 0.5  # auto: s the scene must report success before the episode ends
    finish_coverage: float | None = None  # auto: end at this goal coverage instead (see demo_finished)
    seed: int = 0  # scene seed of the k-th started episode: seed + k
    gripper: bool = False  # no gripper process: append the bare command (1 closed, 0 open) to each action

    def __post_init__(self) -> None:
        if not 0.5 <= self.frequency <= 100.0:
            raise ConfigError(f"frequency must be in [0.5, 100] Hz, got {self.frequency}")
        if self.episodes is not None and self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes}")
        if self.max_duration is not None and not self.max_duration > 0:
            raise ConfigError(f"max_duration must be > 0 s, got {self.max_duration}")
        if self.auto and self.max_duration is None:
            raise ConfigError("automatic episodes need a max_duration (the scene's time limit)")
        if self.success_hold < 0:
            raise ConfigError(f"success_hold must be >= 0, got {self.success_hold}")
        check_finish_coverage(self.finish_coverage)


@dataclass
class CollectStats:
    """What happened during a collection run."""

    saved: list[int] = field(default_factory=list)  # indices of the episodes saved (and not dropped again)
    discarded: int = 0  # episodes thrown away while recording (operator, quit, error)
    dropped: int = 0  # saved episodes removed again with "discard last"
    failed: int = 0  # auto: episodes that ended without success and were not kept
    overruns: int = 0  # control periods that ran late
    stale_robot: int = 0  # periods skipped because the robot state was too old
    stale_teleop: int = 0  # teleop readings ignored as too old (device process stalled)
    invalid_teleop: int = 0  # teleop readings ignored as non-finite
    end_reason: str = ""


def run_collection(
    robot: RobotHandle,
    teleop: TeleopInput,
    mapper: TeleopMapper,
    recorder: EpisodeRecorder,
    config: CollectConfig,
    *,
    scene: Scene | None = None,
    gripper: GripperHandle | None = None,
    on_episode_start: Callable[[int], None] | None = None,
    keys: Sequence[KeySource] = (),
    preview: StatusDisplay | None = None,
    check: Callable[[], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> CollectStats:
    """Run the collection loop until quit, ``config.episodes`` saved episodes, or an error.

    ``check`` is called every period (e.g. ``Supervisor.check``, which raises if a device process died);
    ``on_status`` receives one line per episode event (started, saved, discarded), e.g. for the terminal.
    An episode being recorded when the loop ends (quit, Ctrl-C, a dead process) is discarded; saved episodes
    are never affected.
    """
    loop = _CollectionLoop(robot, teleop, mapper, recorder, config, scene, on_episode_start, on_status, gripper)
    try:
        loop.run(keys, preview, check)
    finally:
        if recorder.recording:
            recorder.discard()
            loop.stats.discarded += 1
            loop.say(f"discarded the episode being recorded ({loop.stats.end_reason or 'interrupted'})")
        loop.stats.stale_teleop, loop.stats.invalid_teleop = mapper.n_stale, mapper.n_invalid
        _log_summary(loop.stats)
    return loop.stats


class _CollectionLoop:
    def __init__(self, robot, teleop, mapper, recorder, config, scene, on_episode_start, on_status, gripper=None):
        self.robot, self.teleop, self.mapper, self.recorder = robot, teleop, mapper, recorder
        self.gripper = gripper
        self.config, self.scene, self.on_episode_start, self.on_status = config, scene, on_episode_start, on_status
        self.dt = 1.0 / config.frequency
        self.stats = CollectStats()
        self.started = 0  # episodes started (seeds the scene)
        self.success_since: float | None = None
        self.scene_state: dict[str, np.ndarray] | None = None

    def say(self, line: str) -> None:
        if self.on_status is not None:
            self.on_status(line)
        else:
            log.info(line)

    def run(self, keys: Sequence[KeySource], preview: StatusDisplay | None, check: Callable[[], None] | None) -> None:
        self.mapper.reset(self._first_robot_state()["actual_tcp_pose"])
        t_next = now()
        while True:
            if check is not None:
                check()
            typed: list[str] = []
            if preview is not None:
                typed += preview.update(self.status_lines())
            for source in keys:
                typed += source.poll()
            commands = self.control_step()
            commands = [CONTROL_KEYS[k] for k in typed if k in CONTROL_KEYS] + commands
            if isinstance(self.teleop, KeyboardTeleop):
                for key in typed:
                    if key not in CONTROL_KEYS:
                        self.teleop.feed(key)
            commands += self.automatic_commands()
            for command in commands:
                if self.handle(command):
                    return
            if self.config.episodes is not None and len(self.stats.saved) >= self.config.episodes:
                self.stats.end_reason = f"{self.config.episodes} episode(s) saved"
                return
            t_next += self.dt
            if now() > t_next:
                self.stats.overruns += 1
                t_next = now()
            precise_wait(t_next)

    def _first_robot_state(self, timeout: float = 5.0) -> dict[str, np.ndarray]:
        deadline = now() + timeout
        while True:
            try:
                return self.robot.get_state()
            except StaleDataError:
                if now() > deadline:
                    raise RuntimeError(f"the robot controller published no state within {timeout} s") from None
                time.sleep(0.01)

    def control_step(self) -> list[str]:
        """Teleop -> waypoint, and record a step while recording; returns commands from teleop buttons."""
        state = self.robot.get_state()
        t_state = float(state["timestamp"])
        reading = self.teleop.read()
        if now() - t_state > _ROBOT_STALE_S:
            self.stats.stale_robot += 1
            return []
        command = self.mapper.update(reading)
        t_target = t_state + ACTION_DELAY_STEPS * self.dt
        self.robot.schedule_waypoint(command.target, t_target)
        width = None
        if self.gripper is not None:
            width = (1.0 - command.gripper) * self.gripper.max_width
            self.gripper.schedule_waypoint(width, t_target)
        if self.scene is not None:
            self.scene_state = self.scene.get_state()
        if self.recorder.recording:
            action = command.target
            extra: dict[str, np.ndarray] = {}
            if width is not None:
                action = np.append(action, width)
                extra["gripper_width"] = np.asarray([self.gripper.get_state()["width"]], dtype=np.float64)
            elif self.config.gripper:
                action = np.append(action, command.gripper)  # the closure, 0 open .. 1 closed
            step = {"timestamp": np.float64(t_state), "action": action, **robot_step(state), **extra}
            if self.scene_state is not None:
                step.update({f"scene_{k}": v for k, v in self.scene_state.items() if k != "timestamp"})
            self.recorder.add_step(step)
        return [_BUTTON_COMMANDS[e] for e in command.events if e in _BUTTON_COMMANDS]

    def automatic_commands(self) -> list[str]:
        cfg = self.config
        if not self.recorder.recording:
            return ["start"] if cfg.auto else []
        elapsed = self.recorder.elapsed()
        if cfg.auto and self.scene_state is not None:
            if demo_finished(self.scene_state, cfg.finish_coverage):
                self.success_since = now() if self.success_since is None else self.success_since
                if now() - self.success_since >= cfg.success_hold:
                    return ["stop"]
            else:
                self.success_since = None
        if cfg.max_duration is not None and elapsed >= cfg.max_duration:
            return ["timeout"]
        return []

    def handle(self, command: str) -> bool:
        """Apply one command; True to end the loop."""
        recording = self.recorder.recording
        if command == "toggle":
            command = "stop" if recording else "start"
        if command == "start" and not recording:
            self.start_episode()
        elif command in ("stop", "timeout") and recording:
            failed = self.config.auto and command == "timeout"
            if failed and not self.config.keep_failed:
                self.recorder.discard()
                self.stats.failed += 1
                self.say(f"episode ended without success after {self.config.max_duration:.1f} s; not saved")
            else:
                saved = self.recorder.stop()
                if saved is not None:
                    self.stats.saved.append(saved.index)
                    frames = ", ".join(str(v.frames) for v in saved.videos)
                    self.say(f"saved episode {saved.index}: {saved.steps} steps, {saved.duration:.1f} s"
                             + (f", video frames {frames}" if frames else ""))
        elif command == "discard":
            if recording:
                self.recorder.discard()
                self.stats.discarded += 1
                self.say("discarded the episode being recorded")
            elif self.recorder.dataset.n_episodes:
                index = self.recorder.dataset.drop_last_episode()
                if index in self.stats.saved:
                    self.stats.saved.remove(index)
                self.stats.dropped += 1
                self.say(f"dropped saved episode {index}")
        elif command == "quit":
            self.stats.end_reason = "quit"
            return True
        return False

    def start_episode(self) -> None:
        seed = self.config.seed + self.started
        self.started += 1
        if self.scene is not None:
            self.scene_state = dict(self.scene.reset(seed) or self.scene.get_state())
        if self.on_episode_start is not None:
            self.on_episode_start(seed)
        self.success_since = None
        self.recorder.start(seed=seed if self.scene is not None else None)
        self.say(f"recording episode {self.recorder.dataset.n_episodes} (seed {seed})")

    def status_lines(self) -> list[str]:
        n = self.recorder.dataset.n_episodes
        if self.recorder.recording:
            head = f"REC episode {n}  {self.recorder.elapsed():5.1f} s  {self.recorder.n_steps} steps"
        else:
            head = f"ready: {n} episode(s) saved"
        return [head, "c start  s stop+save  x discard  q quit"]


def _log_summary(stats: CollectStats) -> None:
    log.info("collection ended (%s): %d saved, %d discarded while recording, %d dropped after saving, "
             "%d failed (auto)", stats.end_reason or "interrupted", len(stats.saved), stats.discarded,
             stats.dropped, stats.failed)
    problems = {"late control periods": stats.overruns, "stale robot states": stats.stale_robot,
                "stale teleop readings": stats.stale_teleop, "non-finite teleop readings": stats.invalid_teleop}
    for what, count in problems.items():
        if count:
            log.warning("%d %s during collection", count, what)
