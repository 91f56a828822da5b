"""``run_evaluation``: policy episodes on a running rig (the loop of ``robot-stack eval``), on started parts.

Per episode: reset the simulated scene (seed ``seed + i``) and wait until every camera's observation
window holds only frames captured after the reset (the first inference must not see the previous scene),
take the arm's current pose as the base pose (actions set its leading components; ``base_z`` overrides the
height for planar policies such as Push-T), run ``run_rollout`` until the task succeeds (held
``success_hold`` s), the operator stops the episode (``s``) or quits (``q``/Esc), or the time limit;
meanwhile record the rollout like a demonstration (same steps as ``collect``: timestamp, action = commanded
target pose, robot state, scene state; videos in the background) and update the live preview. Each episode
ends with one result line; quitting discards the episode being recorded and ends the evaluation.

Metric (simulated Push-T), the original Diffusion Policy one: coverage = area(T and goal) / area(goal);
an episode succeeds when coverage reaches ``SUCCESS_COVERAGE`` (0.95) at any time within the limit; the
score is the mean over episodes of ``min(1, max coverage / 0.95)``. The IoU with the goal is reported too.

Time: ``clock`` and ``sleep`` default to the runtime's; the lockstep simulator passes its simulated clock
and its ``advance``, so the same episode logic runs in simulated time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from robot_stack.config import ConfigError
from robot_stack.data.collection import KeySource, RobotHandle, Scene, StatusDisplay
from robot_stack.data.episode_recorder import EpisodeRecorder, robot_step
from robot_stack.runtime import SharedMemoryRingBuffer, now
from robot_stack.server.executor import ExecutorConfig, GripperWaypointController, RecedingHorizonExecutor
from robot_stack.server.observation import ObservationAssembler, ObservationConfig
from robot_stack.server.policy_service import PolicyInfo
from robot_stack.server.rollout import RolloutConfig, RolloutStats, run_rollout
from robot_stack.server.transport import PolicyClient
from robot_stack.sim.pusht.config import SUCCESS_COVERAGE

log = logging.getLogger(__name__)

EVAL_KEYS: dict[str, str] = {"s": "stop", "q": "quit", "\x1b": "quit"}
_FRESH_FRAMES_TIMEOUT_S = 2.0


class Robot(RobotHandle, Protocol):
    """The parts of ``RobotClient`` the evaluation uses: ``collect``'s robot handle plus the state buffer."""

    state: SharedMemoryRingBuffer


@dataclass(frozen=True)
class EvalConfig:
    """Episode settings; ``preview_hz`` bounds how often the preview (and ``check``) runs."""

    episodes: int = 1
    seed: int = 0
    success_hold: float = 0.0  # the original ends an episode as soon as it succeeds
    base_z: float | None = None
    preview_hz: float = 20.0

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes}")
        if self.success_hold < 0 or not 0 < self.preview_hz <= 100:
            raise ConfigError("success_hold must be >= 0 and preview_hz in (0, 100]")


@dataclass
class EpisodeResult:
    """One evaluated episode. Scene fields are ``None`` on real rigs (no scene state)."""

    index: int
    seed: int
    end_reason: str
    rollout: RolloutStats
    coverage: float | None = None  # goal coverage at the end (area(T and goal) / area(goal))
    max_coverage: float | None = None
    success: bool | None = None  # max_coverage reached SUCCESS_COVERAGE
    max_iou: float | None = None  # secondary: the best IoU with the goal
    saved_as: int | None = None  # dataset episode index of the recording

    @property
    def score(self) -> float | None:
        """``min(1, max_coverage / SUCCESS_COVERAGE)`` (the original's per-episode reward)."""
        return None if self.max_coverage is None else min(1.0, max(0.0, self.max_coverage / SUCCESS_COVERAGE))

    def summary(self) -> str:
        """One human-readable line."""
        ex = self.rollout.execution
        parts = [f"episode {self.index} (seed {self.seed}): {self.end_reason} after {self.rollout.duration:.1f} s"]
        if self.success is not None:
            parts.append(f"{'SUCCESS' if self.success else 'failure'}, coverage {self.coverage:.3f} "
                         f"(max {self.max_coverage:.3f}, max IoU {self.max_iou:.3f})")
        parts.append(f"{ex.chunks} chunks, {ex.scheduled} actions executed, {ex.dropped} stale dropped, "
                     f"{ex.superseded} superseded")
        if ex.latencies:
            parts.append(f"latency {np.mean(ex.latencies):.3f} s mean / {np.max(ex.latencies):.3f} s max")
        problems = {"refused observations": self.rollout.refused_observations,
                    "inference timeouts": self.rollout.inference_timeouts,
                    "late chunks used": self.rollout.late_chunks,
                    "requests abandoned": self.rollout.abandoned_requests,
                    "server unreachable": self.rollout.server_unreachable,
                    "server errors": self.rollout.server_errors, "rejected chunks": ex.rejected_chunks,
                    "plan gaps": ex.plan_gaps}
        parts += [f"{n} {what}" for what, n in problems.items() if n]
        if self.saved_as is not None:
            parts.append(f"recorded as episode {self.saved_as}")
        return "; ".join(parts)


def summarize(results: Sequence[EpisodeResult]) -> str:
    """Success rate and coverage over the finished (not quit) episodes."""
    done = [r for r in results if r.end_reason != "quit"]
    scored = [r for r in done if r.success is not None]
    if not scored:
        return f"{len(done)} episode(s) finished (no scene: no success metric)"
    rate = np.mean([r.success for r in scored])
    return (f"success rate {rate:.1%} ({sum(r.success for r in scored)}/{len(scored)}), "
            f"mean max coverage {np.mean([r.max_coverage for r in scored]):.3f}, "
            f"score {np.mean([r.score for r in scored]):.3f}")


def results_json(results: Sequence[EpisodeResult]) -> dict:
    """The evaluation as JSON: ``success_rate``, ``mean_max_coverage``, ``score`` and per-episode rows."""
    scored = [r for r in results if r.end_reason != "quit" and r.success is not None]
    episodes = [{"seed": r.seed, "success": r.success, "max_coverage": r.max_coverage, "final_coverage": r.coverage,
                 "max_iou": r.max_iou, "duration": r.rollout.duration, "end_reason": r.end_reason,
                 "chunks": r.rollout.execution.chunks, "executed": r.rollout.execution.scheduled,
                 "dropped": r.rollout.execution.dropped, "superseded": r.rollout.execution.superseded,
                 "latency_mean": float(np.mean(r.rollout.execution.latencies)) if r.rollout.execution.latencies
                 else None, "inference_timeouts": r.rollout.inference_timeouts,
                 "late_chunks": r.rollout.late_chunks, "abandoned_requests": r.rollout.abandoned_requests,
                 "server_unreachable": r.rollout.server_unreachable, "recorded_as": r.saved_as,
                 # how smoothly chunks followed each other (ExecutionStats): target jumps at chunk boundaries
                 # and the executed path's jerk
                 "boundary_jumps_mm": [round(j * 1e3, 2) for j in r.rollout.execution.boundary_jumps],
                 "jerks": [round(float(j), 1) for j in r.rollout.execution.jerks()]} for r in results]
    return {
        "episodes_scored": len(scored),
        "success_rate": float(np.mean([r.success for r in scored])) if scored else None,
        "mean_max_coverage": float(np.mean([r.max_coverage for r in scored])) if scored else None,
        "score": float(np.mean([r.score for r in scored])) if scored else None,
        "episodes": episodes,
    }


def run_evaluation(
    robot: Robot,
    cameras: Mapping[int, SharedMemoryRingBuffer],
    client: PolicyClient,
    info: PolicyInfo,
    config: EvalConfig,
    executor_config: ExecutorConfig,
    rollout_config: RolloutConfig,
    observation_config: ObservationConfig | None = None,
    *,
    scene: Scene | None = None,
    gripper: GripperWaypointController | None = None,
    recorder: EpisodeRecorder | None = None,
    preview: StatusDisplay | None = None,
    keys: Sequence[KeySource] = (),
    check: Callable[[], None] | None = None,
    on_status: Callable[[str], None] | None = None,
    clock: Callable[[], float] = now,
    sleep: Callable[[float], None] = time.sleep,
) -> list[EpisodeResult]:
    """Run ``config.episodes`` policy episodes (fewer if the operator quits); see the module docstring.

    ``check`` runs regularly (e.g. ``Supervisor.check``: raises if a device process died). An episode being
    recorded when an exception ends the loop is discarded; saved episodes are never affected. ``scene`` may
    carry its state buffer as ``scene.state`` (the source of ``scene_<field>`` observations). ``gripper``
    (a rig's ``GripperClient``) executes the width of 7-D actions.
    """
    assembler = ObservationAssembler(info, executor_config.dt, cameras, robot.state, observation_config,
                                     clock=clock, scene_state=getattr(scene, "state", None),
                                     gripper_state=getattr(gripper, "state", None))
    results: list[EpisodeResult] = []
    for i in range(config.episodes):
        episode = _Episode(i, config.seed + i, robot, info, config, executor_config, scene, recorder, preview, keys,
                           check, clock, sleep, cameras, gripper)
        try:
            result = episode.run(assembler, client, rollout_config)
        finally:
            if recorder is not None and recorder.recording:
                recorder.discard()
        results.append(result)
        line = result.summary()
        log.info(line)
        if on_status is not None:
            on_status(line)
        if result.end_reason == "quit":
            break
    return results


class _Episode:
    """State of one episode: end conditions, recording and preview, driven by the rollout's ticks."""

    def __init__(self, index, seed, robot, info, config, executor_config, scene, recorder, preview, keys, check,
                 clock, sleep, cameras, gripper=None):
        self.index, self.seed, self.robot, self.info = index, seed, robot, info
        self.config, self.executor_config = config, executor_config
        self.scene, self.recorder, self.preview, self.keys, self.check = scene, recorder, preview, keys, check
        self.clock, self.sleep, self.cameras, self.gripper = clock, sleep, cameras, gripper
        self.dt = executor_config.dt
        self.command: str | None = None
        self.scene_state: dict[str, np.ndarray] | None = None
        self.max_coverage = 0.0
        self.max_iou = 0.0
        self.success_since: float | None = None
        self.executor: RecedingHorizonExecutor | None = None
        self.t_start = 0.0
        self.next_step = 0.0
        self.next_preview = 0.0

    def run(self, assembler: ObservationAssembler, client: PolicyClient, rollout_config: RolloutConfig) -> EpisodeResult:
        if self.scene is not None:
            self.scene_state = dict(self.scene.reset(self.seed) or self.scene.get_state())
            self._wait_for_fresh_frames(self.clock())
        base = np.array(self.robot.get_state()["actual_tcp_pose"], dtype=np.float64)
        if self.config.base_z is not None:
            base[2] = self.config.base_z
        executor_config = self.executor_config
        if executor_config.steps_per_inference is None:  # not chosen by the caller: the policy's own
            executor_config = replace(executor_config, steps_per_inference=self.info.steps_per_inference)
        if executor_config.chunking is None:
            executor_config = replace(executor_config, chunking=self.info.chunking or "switch")
        self.executor = RecedingHorizonExecutor(
            self.robot, executor_config, self.info.n_action_steps, self.info.action_dim, base, clock=self.clock,
            gripper=self.gripper,
        )
        self.t_start = self.next_step = self.next_preview = self.clock()
        if self.recorder is not None:
            self.recorder.start(self.t_start, seed=self.seed if self.scene is not None else None)
        stats = run_rollout(assembler, client, self.executor, rollout_config,
                            should_end=self.should_end, on_tick=self.tick, clock=self.clock, sleep=self.sleep)
        result = EpisodeResult(self.index, self.seed, stats.end_reason, stats)
        if self.scene_state is not None:
            result.coverage = float(self.scene_state["goal_coverage"])
            result.max_coverage = self.max_coverage
            result.success = self.max_coverage >= SUCCESS_COVERAGE
            result.max_iou = self.max_iou
        if self.recorder is not None and self.recorder.recording:
            if stats.end_reason == "quit":
                self.recorder.discard()
            else:
                saved = self.recorder.stop()
                result.saved_as = None if saved is None else saved.index
        return result

    def _wait_for_fresh_frames(self, t_reset: float) -> None:
        """Until a whole observation history fits after ``t_reset``: in time (scene-state observations) and
        in each camera's newest frame."""
        first_usable = t_reset + (self.info.n_obs_steps - 1) * self.dt
        while self.clock() < first_usable:
            self.sleep(min(0.005, first_usable - self.clock()))
        deadline = self.clock() + _FRESH_FRAMES_TIMEOUT_S
        for index, frames in self.cameras.items():
            while frames.count == 0 or float(frames.get()["timestamp"]) < first_usable:
                if self.clock() > deadline:
                    log.warning("camera %d shows no frame from after the scene reset within %.1f s",
                                index, _FRESH_FRAMES_TIMEOUT_S)
                    return
                self.sleep(0.005)

    def should_end(self) -> str | None:
        if self.command is not None:
            return {"stop": "stopped", "quit": "quit"}[self.command]
        if self.success_since is not None and self.clock() - self.success_since >= self.config.success_hold:
            return "success"
        return None

    def tick(self) -> None:
        t = self.clock()
        if t >= self.next_step:
            self.next_step = max(self.next_step + self.dt, t)  # no burst of catch-up steps after a stall
            self.control_step()
        if t >= self.next_preview:
            self.next_preview = t + 1.0 / self.config.preview_hz
            if self.check is not None:
                self.check()
            typed = self.preview.update(self.status_lines()) if self.preview is not None else []
            for source in self.keys:
                typed += source.poll()
            for key in typed:
                if key in EVAL_KEYS and self.command != "quit":
                    self.command = EVAL_KEYS[key]

    def control_step(self) -> None:
        """Once per policy step: scene metrics and one recorded step."""
        if self.scene is not None:
            self.scene_state = self.scene.get_state()
            coverage = float(self.scene_state["goal_coverage"])
            self.max_coverage = max(self.max_coverage, coverage)
            self.max_iou = max(self.max_iou, float(self.scene_state["coverage"]))
            if coverage >= SUCCESS_COVERAGE:
                self.success_since = self.success_since if self.success_since is not None else self.clock()
            else:
                self.success_since = None
        if self.recorder is None or not self.recorder.recording:
            return
        state = self.robot.get_state()
        t_state = float(state["timestamp"])
        assert self.executor is not None
        # Recorded like a demonstration: the action is the target the arm is commanded to reach
        # action_delay_steps after this step (the pose held while there is no plan yet).
        target = self.executor.planned_pose(t_state + self.executor_config.action_delay_steps * self.dt)
        action = np.asarray(state["actual_tcp_pose"] if target is None else target, dtype=np.float64)
        step = {"timestamp": np.float64(t_state), "action": action, **robot_step(state)}
        if self.scene_state is not None:
            step.update({f"scene_{k}": v for k, v in self.scene_state.items() if k != "timestamp"})
        self.recorder.add_step(step)

    def status_lines(self) -> list[str]:
        ex = self.executor.stats if self.executor is not None else None
        head = f"EVAL episode {self.index} seed {self.seed}  {self.clock() - self.t_start:5.1f} s"
        if self.scene_state is not None:
            head += f"  coverage {float(self.scene_state['goal_coverage']):.2f} (max {self.max_coverage:.2f})"
        if ex is not None:
            head += f"  chunks {ex.chunks}  dropped {ex.dropped}"
        return [head, "s stop episode  q quit"]
