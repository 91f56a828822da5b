"""Scripted Push-T demonstrations on the lockstep simulator: ``robot-stack collect --lockstep``.

Each episode is what ``robot-stack collect --teleop scripted`` records on the runtime's simulated rig, in
simulated time: every control period the expert's goal steers the teleop mapper (the same
``TeleopMapper.axes_toward`` path as ``ScriptedTeleop``), the target is scheduled ``ACTION_DELAY_STEPS``
periods after the robot state's timestamp, and the step recorded is the runtime's (``timestamp``,
``action`` = the commanded target, ``robot_step`` of the state, ``scene_<field>``). Each camera's frames
captured during the episode go to an mp4 plus capture timestamps (``VideoWriter``), so the dataset is the
runtime's layout, keys and timing convention: training cannot tell the two apart.

Episodes run in worker processes, one fresh lockstep rig each (deterministic for its seed); each writes its
videos into a staging folder inside the dataset, and the parent — the only writer of the dataset — commits
successful episodes in seed order. An episode ends when the scene reports success for ``success_hold`` s
(saved) or at ``max_duration`` (dropped unless ``keep_failed``), as with automatic scripted collection.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from robot_stack.config import ConfigError
from robot_stack.data.collection import ACTION_DELAY_STEPS
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.episode_recorder import robot_step
from robot_stack.data.video_recorder import VideoWriter
from robot_stack.hardware.teleop import TeleopMapper, TeleopProfile, TeleopState
from robot_stack.sim.lockstep import LockstepRig
from robot_stack.sim.pusht.expert import ExpertTeleop, check_finish_coverage, demo_finished

log = logging.getLogger(__name__)

_WORK_DIR = ".lockstep"  # inside DATASET/videos: same file system, so committing an episode is a rename


@dataclass(frozen=True)
class LockstepCollectConfig:
    """What every lockstep demonstration shares (picklable: it travels to the workers)."""

    rig: LockstepRig
    profile: TeleopProfile
    mode: str
    planar_z: float | None
    frequency: float = 10.0
    max_duration: float = 60.0
    success_hold: float = 0.5
    keep_failed: bool = False
    finish_coverage: float | None = None  # see demo_finished; None: the scene's success

    def __post_init__(self) -> None:
        if not 0.5 <= self.frequency <= 100.0 or not self.max_duration > 0 or self.success_hold < 0:
            raise ConfigError("frequency must be in [0.5, 100] Hz, max_duration > 0 and success_hold >= 0")
        check_finish_coverage(self.finish_coverage)


@dataclass
class LockstepDemo:
    """One finished episode: its steps, its staged videos (or None), whether the task succeeded."""

    seed: int
    data: dict[str, np.ndarray]
    videos: Path | None
    success: bool
    duration: float


def record_demo(config: LockstepCollectConfig, seed: int, staging: Path) -> LockstepDemo:
    """Run one scripted episode on a fresh lockstep rig; videos go to ``staging/<camera>.mp4``."""
    dt = 1.0 / config.frequency
    rig = config.rig
    sim = rig.build(seed)
    expert = ExpertTeleop(rig.scene, seed=seed, finish_coverage=config.finish_coverage)
    expert.reset(seed)
    mapper = TeleopMapper(config.profile, rig.robot.workspace, dt, mode=config.mode, planar_z=config.planar_z)
    mapper.reset(sim.arm.get_state()["actual_tcp_pose"])
    scene_state = sim.scene.reset(seed)
    t_start = sim.now()
    writers = [VideoWriter(staging / f"{i}.mp4", cam.fps, cam.image_size) for i, cam in enumerate(rig.cameras)]
    written = [t_start] * len(writers)  # newest capture time written per camera
    steps: list[dict[str, np.ndarray]] = []
    success_since: float | None = None
    try:
        while True:
            state = sim.arm.get_state()
            t_state = float(state["timestamp"])
            goal = expert.next_target(sim.scene.get_state(), state)
            command = mapper.update(TeleopState(mapper.axes_toward(goal), (), sim.now()), t=sim.now())
            sim.schedule_waypoint(command.target, t_state + ACTION_DELAY_STEPS * dt)
            scene_state = sim.scene.get_state()
            steps.append({"timestamp": np.float64(t_state), "action": command.target, **robot_step(state),
                          **{f"scene_{k}": v for k, v in scene_state.items() if k != "timestamp"}})
            if demo_finished(scene_state, config.finish_coverage):
                success_since = sim.now() if success_since is None else success_since
            else:
                success_since = None
            done = success_since is not None and sim.now() - success_since >= config.success_hold
            timeout = sim.now() - t_start >= config.max_duration
            if not (done or timeout):
                sim.advance(dt)
            for i, writer in enumerate(writers):  # frames captured up to the last step's state, as recorded
                written[i] = _write_frames(writer, sim.cameras[i], written[i], t_state if done or timeout else None)
            if done or timeout:
                break
        for writer in writers:
            writer.close()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    data = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
    return LockstepDemo(seed, data, staging if writers else None, done, float(data["timestamp"][-1] - t_start))


def _write_frames(writer: VideoWriter, frames, after: float, until: float | None) -> float:
    records = frames.get_since(after)
    newest = after
    for i, t in enumerate(records["timestamp"]):
        if until is not None and t > until:
            break
        writer.write(records["color"][i], float(t))
        newest = float(t)
    return newest


def _record_in_worker(args: tuple[LockstepCollectConfig, int, str]) -> LockstepDemo:
    config, seed, work = args
    staging = Path(work) / f"seed_{seed}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    demo = record_demo(config, seed, staging)
    if not demo.success and not config.keep_failed and demo.videos is not None:
        shutil.rmtree(staging, ignore_errors=True)
        demo.videos = None
    return demo


def _init_worker() -> None:
    logging.getLogger("robot_stack").setLevel(logging.WARNING)


def collect_lockstep(config: LockstepCollectConfig, dataset: EpisodeDataset, episodes: int, seed: int = 0,
                     workers: int | None = None,
                     on_demo: Callable[[LockstepDemo, int | None], None] | None = None) -> list[int]:
    """Record until ``episodes`` are saved (seeds ``seed``, ``seed + 1``, ...); returns the saved indices.

    Successful episodes (and, with ``keep_failed``, the others) are committed in seed order; ``on_demo``
    sees every finished episode with its dataset index (None if not saved).
    """
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    workers = max(1, workers or os.cpu_count() or 1)
    work = dataset.video_root / _WORK_DIR / uuid.uuid4().hex[:8]
    work.mkdir(parents=True)
    saved: list[int] = []
    try:
        pending: dict[int, LockstepDemo] = {}
        next_seed = seed  # the next seed to commit (in order)
        for demo in _demos(config, seed, work, workers, lambda: episodes - len(saved)):
            pending[demo.seed] = demo
            while next_seed in pending and len(saved) < episodes:
                ready = pending.pop(next_seed)
                next_seed += 1
                index = None
                if ready.success or config.keep_failed:
                    index = dataset.commit_episode(ready.data, ready.videos, seed=ready.seed)
                    saved.append(index)
                if on_demo is not None:
                    on_demo(ready, index)
            if len(saved) >= episodes:
                break
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not any((dataset.video_root / _WORK_DIR).iterdir()):
            (dataset.video_root / _WORK_DIR).rmdir()
    return saved


def _demos(config: LockstepCollectConfig, seed: int, work: Path, workers: int,
           still_needed: Callable[[], int]) -> Iterator[LockstepDemo]:
    """Finished demos, in batches of seeds sized to what is still needed (a failed seed costs one more)."""
    seeds = iter(range(seed, 2**62))

    def batch() -> Sequence[tuple[LockstepCollectConfig, int, str]]:
        n = max(workers, still_needed() + max(1, still_needed() // 10))
        return [(config, next(seeds), str(work)) for _ in range(n)]

    if workers == 1:
        while still_needed() > 0:
            yield from (_record_in_worker(task) for task in batch())
        return
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
        while still_needed() > 0:
            yield from pool.imap_unordered(_record_in_worker, batch())
