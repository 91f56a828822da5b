"""``EpisodeDataset``: a demonstration dataset folder — the replay buffer plus one video per camera per episode.

Layout (the original Diffusion Policy real-robot layout)::

    DATASET/
      replay_buffer.zarr/                      per-step arrays (see ``ReplayBuffer``)
      videos/<episode>/<camera>.mp4            one video per camera per episode (camera = 0, 1, ...)
      videos/<episode>/<camera>.timestamps.npy capture time of each video frame (runtime clock)

Saving an episode is atomic. Its videos are written into a staging folder (``videos/.staging``) while it
is recorded; ``commit_episode`` moves that folder to ``videos/<index>`` (one rename) and then adds the
per-step data to the replay buffer, whose episode end is the commit point. A crash, Ctrl-C or full disk
before that point leaves at most a staging folder or a video folder with no episode, which a write-mode
open removes (and logs); the earlier episodes are never touched.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np

from robot_stack.data.replay_buffer import OpenMode, ReplayBuffer, ReplayBufferError, fsync_path
from robot_stack.data.timing_convention import TimingConvention
from robot_stack.data.video_recorder import timestamps_path

log = logging.getLogger(__name__)

REPLAY_BUFFER_NAME = "replay_buffer.zarr"
VIDEO_DIR_NAME = "videos"
_STAGING = ".staging"
_SEEDS_ATTR = "scene_seeds"  # {"<episode>": seed} of the simulated scene each episode was recorded on
_CAMERAS_ATTR = "cameras"  # per camera (in camera-index order): what its video frames are (name, crop, size)
_TIMING_ATTR = "timing_convention"  # TimingConvention.to_dict(): dt and the actions' delay in steps


class EpisodeDataset:
    """A dataset folder: ``replay_buffer`` (``ReplayBuffer``) plus per-episode video folders."""

    def __init__(self, root: Path, replay_buffer: ReplayBuffer):
        """Use ``EpisodeDataset.open``."""
        self.root = root
        self.replay_buffer = replay_buffer
        self.video_root = root / VIDEO_DIR_NAME
        if replay_buffer.writable:
            self._remove_leftovers()

    @classmethod
    def open(cls, root: str | Path, mode: OpenMode = "r") -> "EpisodeDataset":
        """Open the dataset at ``root``: ``'r'``, ``'r+'``, or ``'a'`` (created if missing); see ``ReplayBuffer.open``.

        ``ReplayBufferError`` (a ``ConfigError``) when ``root`` cannot be a dataset: a file, a folder holding
        something else, a folder that cannot be written, a corrupt replay buffer.
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise ReplayBufferError(f"dataset {root} is a file, not a folder; give a new or existing dataset folder")
        if mode == "a":
            if root.is_dir() and any(root.iterdir()) and not (root / REPLAY_BUFFER_NAME).exists():
                raise ReplayBufferError(f"{root} is not empty and holds no dataset ({REPLAY_BUFFER_NAME}); "
                                        "give a new folder or an existing dataset")
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ReplayBufferError(f"cannot create the dataset folder {root}: {exc.strerror or exc}") from None
            if not os.access(root, os.W_OK | os.X_OK):
                raise ReplayBufferError(f"dataset folder {root} is not writable by this user")
        return cls(root, ReplayBuffer.open(root / REPLAY_BUFFER_NAME, mode))

    def close(self) -> None:
        """Release the replay buffer's writer lock."""
        self.replay_buffer.close()

    def __enter__(self) -> "EpisodeDataset":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def n_episodes(self) -> int:
        """Number of complete episodes."""
        return self.replay_buffer.n_episodes

    # -- paths -------------------------------------------------------------------------------------------
    def episode_dir(self, episode: int) -> Path:
        """``videos/<episode>``."""
        return self.video_root / str(episode)

    def video_path(self, episode: int, camera: int) -> Path:
        """``videos/<episode>/<camera>.mp4``."""
        return self.episode_dir(episode) / f"{camera}.mp4"

    def timestamps_path(self, episode: int, camera: int) -> Path:
        """``videos/<episode>/<camera>.timestamps.npy``."""
        return timestamps_path(self.video_path(episode, camera))

    def video_timestamps(self, episode: int, camera: int) -> np.ndarray:
        """Capture times (runtime clock) of the frames of one episode's video."""
        return np.load(self.timestamps_path(episode, camera))

    # -- writing -----------------------------------------------------------------------------------------
    def new_staging_dir(self) -> Path:
        """An empty folder for the videos of the episode being recorded (replaces any previous one)."""
        staging = self.video_root / _STAGING
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        return staging

    def discard_staging(self) -> None:
        """Delete the videos of an episode that will not be saved."""
        shutil.rmtree(self.video_root / _STAGING, ignore_errors=True)

    def camera_setup(self) -> list[dict] | None:
        """How each camera's frames were produced (``record_setup``), or None if not recorded."""
        setup = self.replay_buffer.attrs.get(_CAMERAS_ATTR)
        return None if setup is None else [dict(c) for c in setup]

    def timing_convention(self) -> TimingConvention:
        """How the recorded actions relate to time (``record_setup``). Datasets that do not say (the original
        Diffusion Policy's) get the original's convention, with dt from the step timestamps (logged)."""
        value = self.replay_buffer.attrs.get(_TIMING_ATTR)
        if value is not None:
            return TimingConvention.from_dict(value, f"{self.root} attribute {_TIMING_ATTR}")
        dt = None
        if self.n_episodes and "timestamp" in self.replay_buffer.keys():
            steps = np.diff(np.asarray(self.replay_buffer.get_episode(0, ["timestamp"])["timestamp"], np.float64))
            dt = float(np.median(steps)) if len(steps) and 0 < np.median(steps) <= 10 else None
        return TimingConvention.original(dt, str(self.root))

    def record_setup(self, cameras: list[dict], timing: TimingConvention | None) -> None:
        """Note how the episodes recorded from now on are made: each camera's frames (name, capture
        resolution, crop, output size, fps) and the actions' timing convention (None: not known, e.g. for
        an imported dataset that does not say; readers then assume the original's, and log it).

        ``ReplayBufferError`` if the dataset already holds episodes recorded otherwise (or, for the timing,
        with none noted, like the original's recordings): appending would silently mix images cropped or
        scaled differently, or actions meant for different times.
        """
        plain = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in c.items()} for c in cameras]
        if self.n_episodes:
            existing = self.camera_setup()
            if existing is not None and existing != plain:
                raise ReplayBufferError(
                    f"{self.root} was recorded with cameras {existing}; this rig's are {plain}: record into a new "
                    "dataset (mixing crops or image sizes would make the images mean different things)")
            said = self.replay_buffer.attrs.get(_TIMING_ATTR)
            if said != (None if timing is None else timing.to_dict()):
                said = "none noted (the original's: delay 0)" if said is None else said
                raise ReplayBufferError(
                    f"{self.root} holds episodes recorded with timing convention {said}; this recording's is "
                    f"{None if timing is None else timing.to_dict()}: record into a new dataset (mixed "
                    "conventions would shift the actions)")
        self.replay_buffer.attrs[_CAMERAS_ATTR] = plain
        if timing is not None:
            self.replay_buffer.attrs[_TIMING_ATTR] = timing.to_dict()

    def episode_seeds(self) -> dict[int, int]:
        """Scene seed of each episode recorded on a simulated scene (episode index -> seed)."""
        seeds = self.replay_buffer.attrs.get(_SEEDS_ATTR, {})
        return {int(k): int(v) for k, v in seeds.items() if int(k) < self.n_episodes}

    def commit_episode(self, data: Mapping[str, np.ndarray], videos: Path | None = None,
                       seed: int | None = None) -> int:
        """Save one episode: ``videos`` (a staging folder, or None) becomes ``videos/<index>``, then ``data``
        is added to the replay buffer, then the scene ``seed`` (if any) is noted. Returns the episode index.

        On failure (e.g. ``EpisodeWriteError`` for a full disk) the episode's videos are removed and the
        error propagates; earlier episodes are intact. ``ReplayBufferError`` (nothing saved) if ``videos``
        lacks a finished ``<camera>.mp4`` for a camera of the recorded setup, or holds an unfinished one.
        """
        if videos is not None:
            self._check_videos(videos)
        index = self.n_episodes
        target = self.episode_dir(index)
        if target.exists():  # left by an episode that never committed
            shutil.rmtree(target)
        self.video_root.mkdir(parents=True, exist_ok=True)
        try:
            if videos is not None:
                _fsync_tree(videos)
                os.rename(videos, target)
                fsync_path(self.video_root)
            self.replay_buffer.add_episode(data)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        if seed is not None:
            self._set_seed(index, seed)
        return index

    def _check_videos(self, videos: Path) -> None:
        unfinished = sorted(p.name for p in videos.glob("*.partial"))
        if unfinished:
            raise ReplayBufferError(f"{videos}: video file(s) {unfinished} were never finished (close the writer "
                                    "first); the episode is not saved")
        cameras = self.camera_setup()
        missing = [f"{i}.mp4" for i in range(len(cameras or []))
                   if not (videos / f"{i}.mp4").is_file() or (videos / f"{i}.mp4").stat().st_size == 0]
        if missing:
            raise ReplayBufferError(f"{videos}: no video {missing} for the dataset's cameras "
                                    f"{[c.get('name') for c in cameras or []]}; the episode is not saved")

    def _set_seed(self, index: int, seed: int | None) -> None:
        # After the commit point: a crash here loses only the note, never the episode.
        seeds = {k: v for k, v in self.replay_buffer.attrs.get(_SEEDS_ATTR, {}).items() if int(k) < self.n_episodes}
        if seed is None:
            seeds.pop(str(index), None)
        else:
            seeds[str(index)] = int(seed)
        self.replay_buffer.attrs[_SEEDS_ATTR] = seeds

    def drop_last_episode(self) -> int:
        """Remove the last episode (data, then videos); returns its index."""
        index = self.n_episodes - 1
        self.replay_buffer.drop_last_episode()
        shutil.rmtree(self.episode_dir(index), ignore_errors=True)
        self._set_seed(index, None)
        return index

    def _remove_leftovers(self) -> None:
        """Delete video folders of episodes that never committed (a crash between rename and commit)."""
        if not self.video_root.is_dir():
            return
        for entry in self.video_root.iterdir():
            # Dot folders are staging areas (the recorder's, lockstep collection's).
            stale = entry.name.startswith(".") or (entry.name.isdigit() and int(entry.name) >= self.n_episodes)
            if stale:
                log.warning("%s: removing %s, left by an episode that was not saved", self.root, entry)
                shutil.rmtree(entry, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flush a folder's files and the folder itself, so the rename below cannot expose unwritten videos."""
    for path in folder.iterdir():
        fsync_path(path)
    fsync_path(folder)
