"""``EpisodeRecorder``: one demonstration episode at a time into an ``EpisodeDataset``.

While recording, the control loop hands it one step per control period (``add_step``: robot state, the
commanded action, timestamp, scene state...), and a ``VideoRecorder`` thread per camera encodes that
camera's frames captured after ``start`` into the dataset's staging folder. ``stop`` finishes the videos at
the last step's time and saves the episode atomically (``EpisodeDataset.commit_episode``); ``discard``
drops it. Step keys and shapes must stay the same within an episode (and across the dataset).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.replay_buffer import EpisodeWriteError
from robot_stack.data.video_recorder import VideoRecorder, VideoStats
from robot_stack.runtime import SharedMemoryRingBuffer, now

log = logging.getLogger(__name__)

# Dataset low-dim keys -> fields of the robot controller's state buffer (the Diffusion Policy names).
ROBOT_STATE_FIELDS: dict[str, str] = {
    "robot_eef_pose": "actual_tcp_pose",
    "robot_eef_pose_vel": "actual_tcp_speed",
    "robot_joint": "actual_q",
    "robot_joint_vel": "actual_qd",
}


def robot_step(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The dataset's robot keys (``robot_eef_pose``, ...) from one robot-controller state record."""
    return {key: np.asarray(state[field], dtype=np.float64) for key, field in ROBOT_STATE_FIELDS.items()}


@dataclass(frozen=True)
class CameraStream:
    """A camera's frame ring buffer (``camera_spec`` records) and its frame rate; its index is its camera id."""

    frames: SharedMemoryRingBuffer
    fps: float


@dataclass(frozen=True)
class SavedEpisode:
    """What ``EpisodeRecorder.stop`` saved."""

    index: int
    steps: int
    duration: float
    videos: tuple[VideoStats, ...]


class EpisodeRecorder:
    """Records episodes of per-step data plus per-camera videos into ``dataset``."""

    def __init__(self, dataset: EpisodeDataset, cameras: Sequence[CameraStream] = ()):
        self.dataset = dataset
        self.cameras = list(cameras)
        self._steps: list[dict[str, np.ndarray]] = []
        self._videos: list[VideoRecorder] = []
        self._t_start: float | None = None
        self._seed: int | None = None
        self._staging = None

    @property
    def recording(self) -> bool:
        """True between ``start`` and ``stop``/``discard``."""
        return self._t_start is not None

    @property
    def n_steps(self) -> int:
        """Steps recorded so far in the current episode."""
        return len(self._steps)

    def elapsed(self, t: float | None = None) -> float:
        """Seconds since the current episode started (0 when not recording)."""
        return 0.0 if self._t_start is None else (now() if t is None else t) - self._t_start

    def start(self, t: float | None = None, seed: int | None = None) -> None:
        """Begin an episode at runtime-clock time ``t`` (default now): videos record frames captured after it.
        ``seed``: the simulated scene's seed, noted in the dataset with the episode."""
        if self.recording:
            raise RuntimeError("an episode is already being recorded; stop or discard it first")
        self._t_start = now() if t is None else t
        self._seed = seed
        self._steps = []
        try:
            self._staging = self.dataset.new_staging_dir() if self.cameras else None
            for i, cam in enumerate(self.cameras):
                path = self._staging / f"{i}.mp4"
                self._videos.append(VideoRecorder(cam.frames, path, cam.fps, t_start=self._t_start).start())
        except BaseException:
            self.discard()
            raise

    def add_step(self, step: Mapping[str, np.ndarray]) -> None:
        """Append one control step (``key -> array``; the same keys and shapes every step)."""
        if not self.recording:
            raise RuntimeError("add_step while not recording")
        record = {k: np.array(v) for k, v in step.items()}
        if self._steps:
            first = self._steps[0]
            if record.keys() != first.keys() or any(record[k].shape != first[k].shape for k in first):
                raise ValueError(
                    f"step keys/shapes changed within an episode: {sorted((k, v.shape) for k, v in record.items())} "
                    f"vs {sorted((k, v.shape) for k, v in first.items())}"
                )
        self._steps.append(record)

    def stop(self, t_end: float | None = None) -> SavedEpisode | None:
        """Finish the videos at ``t_end`` (default: the last step's ``timestamp``) and save the episode.

        Returns ``None`` (and saves nothing) for an episode without steps. On a failure (video encoding,
        full disk) the episode is discarded and an ``EpisodeWriteError`` saying so is raised (other errors
        propagate as they are); earlier episodes are intact.
        """
        if not self.recording:
            raise RuntimeError("stop while not recording")
        if not self._steps:
            self.discard()
            return None
        data = {k: np.stack([s[k] for s in self._steps]) for k in self._steps[0]}
        if t_end is None:
            t_end = float(data["timestamp"][-1]) if "timestamp" in data else now()
        duration = t_end - self._t_start
        try:
            stats = []
            while self._videos:
                stats.append(self._videos[0].stop(t_end))
                self._videos.pop(0)
            index = self.dataset.commit_episode(data, self._staging, seed=self._seed)
        except EpisodeWriteError:
            self.discard()
            raise
        except OSError as exc:  # e.g. the disk filled up while a video was being finished
            self.discard()
            n = self.dataset.n_episodes
            raise EpisodeWriteError(
                f"episode {n} was lost ({exc.strerror or exc}); the {n} episode(s) saved before it in "
                f"{self.dataset.root} are intact") from exc
        except BaseException:
            self.discard()
            raise
        self._t_start, self._steps, self._staging = None, [], None
        return SavedEpisode(index, len(data[next(iter(data))]), duration, tuple(stats))

    def discard(self) -> None:
        """Drop the current episode (videos included); a no-op when not recording."""
        for video in self._videos:
            video.abort()
        self._videos = []
        self._steps = []
        self._t_start = None
        if self._staging is not None:
            self.dataset.discard_staging()
            self._staging = None
