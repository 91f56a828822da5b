"""Receding-horizon execution of timestamped action chunks on a waypoint controller.

Timing model. A chunk predicted from observations whose latest is at ``t_obs`` holds actions for the
times ``t_k = t_obs + (k + action_delay_steps) * dt`` (k = 0 .. n_action_steps-1): action k is what the
demonstrations recorded at step ``t_obs + k * dt``, and a recorded action is the target the teleop loop
scheduled ``action_delay_steps`` steps after its step's timestamp (``robot_stack.data.collection``'s
``ACTION_DELAY_STEPS``; 0 for data whose actions are stamped with their own target time, as in the
original Diffusion Policy recordings), so that is when each action belongs. The chunk reaches the robot side after the inference latency (measured per chunk:
``t_received - t_obs``), and a waypoint handed to the controller needs ``robot_latency`` more to take
effect (command queue hop plus one servo cycle). Hence action k is executable on time only if

    t_k >= now + robot_latency + margin

at the moment it is handed over. Actions failing this are *dropped* — counted and reported, never
executed late (a late action would make the arm rush to catch up with a plan that is already outdated).

Hand-over. A new chunk replaces the not-yet-handed-over rest of the previous one (those actions are
*superseded*: a fresher prediction covers their time). Its actions are handed over progressively
(``dispatch``, called every loop tick), each ``lookahead`` s before its time: the controller's watchdog
expects commands while the arm moves, and an arm that was given the whole future at once would keep
executing it blind if the robot-side loop died. The controller's interpolator lets a waypoint at or
before its last one replace the rest of the trajectory, so the switch to a new chunk is seamless.

Temporal ensembling (``chunking="ensemble"``, as in ACT). Chunks overlap in time; instead of the newest
chunk's action, each action handed over is the weighted mean of every recent chunk's prediction for that
time: weight ``exp(-ensemble_decay * i)`` for the i-th oldest prediction, so with the default (ACT's 0.01)
all count nearly equally and a larger decay favours the oldest, i.e. more smoothing. Positions and widths
are averaged linearly, rotations as rotations (``scipy`` ``Rotation.mean``). The stored predictions are the
chunks' own, never the averages.

Re-planning. A new inference is due ``steps_per_inference`` steps after the previous observation, but
early enough that its chunk (given the worst recently measured latency) arrives before the current plan
runs out (``next_inference_time``). When the plan does run out (slow or missing server), the arm holds at
the last waypoint — the controller's trajectory stays at its final knot — and the gap is counted.

Safety. A chunk with any NaN/inf action is rejected whole (nothing of it is scheduled). An action is a
pose's leading ``Da`` components (``Da`` <= 6); the others come from ``base_pose`` (for Push-T: the
episode's start height and orientation, with x, y from the policy). With a gripper, a 7-D action is the
full pose plus the finger width (m), scheduled on the gripper process at the same time as its pose, under
the same on-time rule. Workspace and speed limits are the controller's job (it rejects or time-stretches
offending waypoints; the gripper process rejects widths outside its stroke).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from robot_stack.config import ConfigError
from robot_stack.runtime import interpolate_poses, now
from robot_stack.server.messages import CHUNKING_MODES
from robot_stack.server.transport import ActionChunk

log = logging.getLogger(__name__)

# How many recent chunk latencies the re-planning estimate looks at (the worst of them is used).
_LATENCY_WINDOW = 10


class WaypointController(Protocol):
    """What the executor needs from the arm (``RobotController`` / ``RobotClient`` have it)."""

    def schedule_waypoint(self, pose: Sequence[float], target_time: float) -> None: ...


class GripperWaypointController(Protocol):
    """What the executor needs from a gripper (``GripperClient`` has it)."""

    def schedule_waypoint(self, width: float, target_time: float) -> None: ...


@dataclass
class ExecutorConfig:
    """Timing of receding-horizon execution (seconds).

    ``steps_per_inference``: actions of each chunk executed before the next chunk takes over (``None``: the
    whole chunk). ``robot_latency``: from handing a waypoint to the controller until it can act on it.
    ``margin``: extra safety on top when deciding whether an action is still on time. ``lookahead``: how
    long before its time an action is handed over; keep it below the controller's ``command_timeout``.
    ``action_delay_steps``: steps between a recorded action's step and its target time (module docstring).
    ``chunking`` (None: not chosen, the policy's default applies, else switch): "switch" (a new chunk
    replaces the rest of the plan as predicted) or "inpaint" (each request carries the current plan for the
    new chunk's steps, and the policy samples a chunk that keeps the actions due before it can arrive and
    blends into the rest; ``plan_for``) or "ensemble" (each action is the weighted mean of all recent chunks'
    predictions for its time; ``ensemble_decay``, module docstring).
    """

    dt: float = 0.1
    steps_per_inference: int | None = None
    action_delay_steps: int = 0
    chunking: str | None = "switch"
    ensemble_decay: float = 0.01
    robot_latency: float = 0.01
    margin: float = 0.005
    lookahead: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.dt <= 10.0:
            raise ConfigError(f"dt: must be in (0, 10] s, got {self.dt}")
        if self.steps_per_inference is not None and self.steps_per_inference < 1:
            raise ConfigError(f"steps_per_inference: must be >= 1, got {self.steps_per_inference}")
        if self.action_delay_steps < 0:
            raise ConfigError(f"action_delay_steps: must be >= 0, got {self.action_delay_steps}")
        if self.chunking is not None and self.chunking not in CHUNKING_MODES:
            raise ConfigError(f"chunking: must be one of {list(CHUNKING_MODES)}, got {self.chunking!r}")
        if not (np.isfinite(self.ensemble_decay) and self.ensemble_decay >= 0):
            raise ConfigError(f"ensemble_decay: must be >= 0, got {self.ensemble_decay}")
        if self.robot_latency < 0 or self.margin < 0:
            raise ConfigError("robot_latency and margin must be >= 0")
        if self.lookahead <= self.robot_latency + self.margin:
            raise ConfigError(
                f"lookahead ({self.lookahead} s) must exceed robot_latency + margin "
                f"({self.robot_latency + self.margin} s), or no action could ever be handed over on time"
            )


@dataclass
class ChunkOutcome:
    """What happened to one chunk's actions (indices into the chunk), updated as they are handed over.

    ``dropped``: stale (too late to execute on time); ``scheduled``: handed to the controller on time;
    ``superseded``: replaced by the next chunk (or the episode's end) before their turn.
    """

    request_id: int
    t_obs: float
    t_received: float
    action_times: np.ndarray  # (n,) target time of each action
    scheduled: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    rejected: str | None = None  # why the whole chunk was refused (non-finite values, wrong size)

    @property
    def first_action_delay(self) -> float | None:
        """Observation-to-first-executed-action time (``None`` if nothing was scheduled)."""
        return float(self.action_times[self.scheduled[0]] - self.t_obs) if self.scheduled else None


@dataclass
class ExecutionStats:
    """Totals over an episode (``dt``: the policy step the episode ran at)."""

    dt: float = 0.1
    chunks: int = 0
    scheduled: int = 0
    dropped: int = 0
    superseded: int = 0
    rejected_chunks: int = 0
    plan_gaps: int = 0  # times the plan ran out before the next chunk's first action
    plan_gap_time: float = 0.0  # total time the arm held for lack of a plan (s)
    latencies: list[float] = field(default_factory=list)  # per chunk: t_received - t_obs
    first_action_delays: list[float] = field(default_factory=list)
    # per chunk that replaced a plan: how far (m) its first action's position is from where the replaced plan
    # was at that time — the jump the arm's target makes at the chunk boundary
    boundary_jumps: list[float] = field(default_factory=list)
    # the executed path: (time, xyz) of each waypoint handed over, a later-handed waypoint at or before an
    # earlier one's time replacing it and what followed (as the controller's interpolator does)
    executed: list[tuple[float, float, float, float]] = field(default_factory=list)

    def jerks(self) -> np.ndarray:
        """|jerk| (m/s^3) along the executed path: six times the third divided difference of each four
        consecutive waypoints, where all their spacings lie in [dt/4, 2 dt] (a hold for lack of a plan is a
        gap, not a motion)."""
        dt = self.dt
        if len(self.executed) < 4:
            return np.zeros(0)
        path = np.asarray(self.executed)
        t, p = path[:, 0], path[:, 1:]
        gaps = np.diff(t)
        ok = (gaps >= dt / 4) & (gaps <= 2 * dt)
        ok = ok[:-2] & ok[1:-1] & ok[2:]
        d1 = np.diff(p, axis=0) / gaps[:, None]
        d2 = np.diff(d1, axis=0) / (t[2:] - t[:-2])[:, None]
        d3 = np.diff(d2, axis=0) / (t[3:] - t[:-3])[:, None]
        return 6.0 * np.linalg.norm(d3[ok], axis=1)


GRIPPER_ACTION_DIM = 7  # [x, y, z, rx, ry, rz, width]


def check_action_dim(action_dim: int, has_gripper: bool = False) -> None:
    """``ConfigError`` unless the executor can run actions of ``action_dim`` dimensions on this rig."""
    if action_dim == GRIPPER_ACTION_DIM and not has_gripper:
        raise ConfigError(
            "the policy's action has 7 dimensions (a TCP pose and a gripper width), but the rig has no gripper: "
            "use a rig with a gripper: section (e.g. sim_ur5_gripper)"
        )
    if not 1 <= action_dim <= (GRIPPER_ACTION_DIM if has_gripper else 6):
        raise ConfigError(
            f"the policy's action has {action_dim} dimensions; the executor maps actions onto the leading "
            "components of a 6-D TCP pose [x, y, z, rx, ry, rz], so 1-6 are supported, and 7 (the pose and a "
            "gripper width) on a rig with a gripper"
        )


class RecedingHorizonExecutor:
    """Turns action chunks into timestamped waypoints on ``controller``; see the module docstring.

    Call ``accept(chunk)`` when a chunk arrives and ``dispatch()`` regularly (every few ms); ``finish()``
    at the end of an episode.
    """

    def __init__(
        self,
        controller: WaypointController,
        config: ExecutorConfig,
        n_action_steps: int,
        action_dim: int,
        base_pose: Sequence[float],
        clock: Callable[[], float] = now,
        gripper: GripperWaypointController | None = None,
    ):
        check_action_dim(action_dim, gripper is not None)
        base = np.asarray(base_pose, dtype=np.float64)
        if base.shape != (6,) or not np.isfinite(base).all():
            raise ValueError(f"base_pose must be a finite 6-D pose, got {base}")
        self.controller = controller
        self.gripper = gripper if action_dim == GRIPPER_ACTION_DIM else None
        self.config = config
        self.n_action_steps = n_action_steps
        self.action_dim = action_dim
        self.base_pose = base
        self.steps_per_inference = min(config.steps_per_inference or n_action_steps, n_action_steps)
        self.clock = clock
        self.stats = ExecutionStats(dt=config.dt)
        self._plan_end: float | None = None  # target time of the last action of the current plan
        self._pending: deque[tuple[int, float, np.ndarray]] = deque()  # (index, t_k, pose) not yet handed over
        self._current: ChunkOutcome | None = None
        self._plan: tuple[np.ndarray, np.ndarray] | None = None  # (times, poses) of the current plan
        self._recent_latencies: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        # ensemble: the raw predictions (times, poses) of the chunks that may still cover a future action
        self._predictions: deque[tuple[np.ndarray, np.ndarray]] = deque(
            maxlen=-(-n_action_steps // self.steps_per_inference) + 1)

    @property
    def plan_end(self) -> float | None:
        """Target time of the current plan's last action (the arm holds there afterwards)."""
        return self._plan_end

    def action_to_pose(self, action: np.ndarray) -> np.ndarray:
        """The 6-D pose for one action: ``base_pose`` with its leading ``action_dim`` components replaced."""
        pose = self.base_pose.copy()
        n = min(self.action_dim, 6)
        pose[:n] = action[:n]
        return pose

    def accept(self, chunk: ActionChunk) -> ChunkOutcome:
        """Take a new chunk: drop its stale actions, make the rest the plan, hand over what is due."""
        cfg = self.config
        actions = np.asarray(chunk.actions, dtype=np.float64)
        times = chunk.t_obs + (np.arange(len(actions)) + cfg.action_delay_steps) * cfg.dt
        outcome = ChunkOutcome(chunk.request_id, chunk.t_obs, chunk.t_received, times)
        self.stats.chunks += 1
        latency = chunk.t_received - chunk.t_obs
        self.stats.latencies.append(latency)
        self._recent_latencies.append(latency)
        problem = self._check(actions)
        if problem is not None:
            self.stats.rejected_chunks += 1
            outcome.rejected = problem
            log.error("rejected action chunk %d: %s; the arm keeps its current plan", chunk.request_id, problem)
            return outcome
        deadline = self.clock() + cfg.robot_latency + cfg.margin
        fresh = [k for k in range(len(actions)) if times[k] >= deadline]
        outcome.dropped.extend(k for k in range(len(actions)) if times[k] < deadline)
        self.stats.dropped += len(outcome.dropped)
        if fresh:
            self._supersede()
            if self._plan_end is not None and times[fresh[0]] - self._plan_end > 1.5 * cfg.dt:
                # Consecutive actions are dt apart: a longer wait means the arm held still meanwhile.
                self.stats.plan_gaps += 1
                self.stats.plan_gap_time += float(times[fresh[0]] - self._plan_end - cfg.dt)
            poses = np.stack([self.action_to_pose(actions[k]) for k in fresh])
            if self.gripper is not None:  # the width travels with its pose as a 7th column
                poses = np.concatenate([poses, actions[fresh, 6:7]], axis=1)
            if cfg.chunking == "ensemble":
                self._predictions.append((times[fresh], poses))
                poses = self._ensemble(times[fresh])
            before = self.planned_pose(times[fresh[0]])
            if before is not None:
                self.stats.boundary_jumps.append(float(np.linalg.norm(poses[0, :3] - before[:3])))
            self._pending.extend(zip(fresh, times[fresh].tolist(), poses))
            self._plan = (times[fresh], poses)
            self._plan_end = float(times[fresh[-1]])
            self._current = outcome
        if outcome.dropped:
            log.debug("chunk %d: %d stale actions dropped (latency %.3f s)", chunk.request_id, len(outcome.dropped), latency)
        self.dispatch()
        return outcome

    def dispatch(self) -> int:
        """Hand over the pending actions due within ``lookahead``; returns how many were handed over."""
        cfg = self.config
        handed = 0
        while self._pending:
            k, t_k, pose = self._pending[0]
            t = self.clock()  # re-read per action: handing over takes time too
            if t_k > t + cfg.lookahead:
                break
            self._pending.popleft()
            assert self._current is not None
            if t_k < t + cfg.robot_latency + cfg.margin:
                self._current.dropped.append(k)  # the loop fell behind (CPU contention): never late
                self.stats.dropped += 1
                continue
            self.controller.schedule_waypoint(pose[:6], t_k)
            executed = self.stats.executed
            while executed and executed[-1][0] >= t_k:
                executed.pop()
            executed.append((t_k, float(pose[0]), float(pose[1]), float(pose[2])))
            if self.gripper is not None:
                self.gripper.schedule_waypoint(float(pose[6]), t_k)
            if not self._current.scheduled:
                self.stats.first_action_delays.append(t_k - self._current.t_obs)
            self._current.scheduled.append(k)
            self.stats.scheduled += 1
            handed += 1
        return handed

    def planned_pose(self, t: float) -> np.ndarray | None:
        """The current plan's pose at time ``t`` (held at its ends; a 7th value: the gripper width on gripper
        rigs); ``None`` before the first plan."""
        if self._plan is None:
            return None
        return self._interpolate(self._plan, np.asarray([t]))[0]

    def plan_for(self, t_obs: float) -> tuple[np.ndarray, int] | None:
        """What the current plan holds for the chunk about to be requested from observations at ``t_obs``:
        (actions (K, Da) at that chunk's first K action times, the ones the plan covers; how many of them are
        committed: due before the chunk can arrive, given the worst recent latency). None without a plan."""
        if self._plan is None:
            return None
        cfg = self.config
        times, poses = self._plan
        t_k = t_obs + (np.arange(self.n_action_steps) + cfg.action_delay_steps) * cfg.dt
        t_k = t_k[t_k <= times[-1] + 1e-9]
        if len(t_k) == 0:
            return None
        planned = self._interpolate(self._plan, t_k)
        planned = planned if self.gripper is not None else planned[:, : self.action_dim]
        worst = max(self._recent_latencies) if self._recent_latencies else 0.0
        arrives = t_obs + worst + cfg.robot_latency + cfg.margin
        return planned, int(np.sum(t_k < arrives))

    def finish(self) -> None:
        """End of episode: forget the actions not handed over yet (counted as superseded)."""
        self._supersede()

    def next_inference_time(self, chunk: ActionChunk) -> float:
        """When to take the next observation so a new chunk arrives before the current plan runs out."""
        cfg = self.config
        nominal = chunk.t_obs + self.steps_per_inference * cfg.dt
        if self._plan_end is None:
            return nominal
        worst = max(self._recent_latencies) if self._recent_latencies else 0.0
        # The next chunk's first on-time action must come no later than one step after the plan's end.
        latest = self._plan_end + cfg.dt - worst - cfg.robot_latency - cfg.margin
        return min(nominal, latest)

    @staticmethod
    def _interpolate(plan: tuple[np.ndarray, np.ndarray], t: np.ndarray) -> np.ndarray:
        """Poses of ``plan`` at times ``t`` (rotations slerped), a gripper column linearly."""
        times, poses = plan
        out = interpolate_poses(times, poses[:, :6], t)
        if poses.shape[1] > 6:
            out = np.concatenate([out, np.interp(t, times, poses[:, 6])[:, None]], axis=1)
        return out

    def _ensemble(self, t: np.ndarray) -> np.ndarray:
        """The weighted mean, at each time of ``t``, of the stored predictions that cover it (oldest first)."""
        out = []
        for t_k in t:
            covering = [p for p in self._predictions if p[0][0] - 1e-9 <= t_k <= p[0][-1] + 1e-9]
            values = np.stack([self._interpolate(p, np.asarray([t_k]))[0] for p in covering])
            weights = np.exp(-self.config.ensemble_decay * np.arange(len(values)))
            weights /= weights.sum()
            mean = weights @ values  # positions (and a width column) linearly
            mean[3:6] = Rotation.from_rotvec(values[:, 3:6]).mean(weights).as_rotvec()
            out.append(mean)
        return np.stack(out)

    def _supersede(self) -> None:
        if self._pending:
            assert self._current is not None
            self._current.superseded.extend(k for k, _, _ in self._pending)
            self.stats.superseded += len(self._pending)
            self._pending.clear()

    def _check(self, actions: np.ndarray) -> str | None:
        if actions.shape != (self.n_action_steps, self.action_dim):
            return f"shape {actions.shape}, expected ({self.n_action_steps}, {self.action_dim})"
        if not np.isfinite(actions).all():
            return "it contains NaN or inf"
        return None
