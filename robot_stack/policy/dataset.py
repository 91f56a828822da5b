"""Training data: episodes of a recorded dataset as (observation window, action sequence) samples.

Reads a dataset folder of the demo recorder (``robot_stack.data.dataset.EpisodeDataset``)::

    DATASET/replay_buffer.zarr   data/<key> (N, ...) per step, meta/episode_ends (E,) cumulative ends
    DATASET/videos/<ep>/<cam>.mp4 (+ <cam>.timestamps.npy)

Only complete (committed) episodes are used: rows of an episode whose recording was interrupted are
ignored, as ``ReplayBuffer`` does in read-only mode.

Low-dim observations and the action are the leading ``dims`` columns of ``data/<key>`` (the action is
the concatenation of its fields, in order). Camera frames come from ``frame_cache`` (decoded once,
resized to ``image_size``, step-aligned, memory-mapped). A sample ``i`` is::

    {"obs": {"camera_<c>": float (n_obs_steps, 3, H, W) in [0, 1], "<low_dim key>": (n_obs_steps, model_dims)},
     "action": float (horizon, model_action_dim)}

(``model_dims``: a ``rotation: rotation_6d`` pose field arrives with its rotation in the 6-D representation.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from robot_stack.config import ConfigError
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.timing_convention import DEFAULT_DT, ORIGINAL_ACTION_DELAY_STEPS, TimingConvention
from robot_stack.policy.config import FieldConfig, PolicyConfig
from robot_stack.policy.frame_cache import DatasetError, camera_frames
from robot_stack.policy.rotation_6d import encode_pose
from robot_stack.policy.sequence_sampler import SequenceSampler


@dataclass
class ReplayData:
    """Everything a policy trains on, for all episodes of one dataset."""

    low_dim: dict[str, np.ndarray]  # key -> (N, model_dims) float32
    action: np.ndarray  # (N, model_action_dim) float32
    frame_files: dict[str, Path]  # camera key -> cached (N, H, W, 3) uint8 .npy
    episode_ends: np.ndarray  # (E,) int64
    scene_seeds: dict[int, int] = field(default_factory=dict)  # episode -> simulated scene seed, where recorded
    # How the actions relate to time (the original's convention when the dataset does not say).
    timing: TimingConvention = field(default_factory=lambda: TimingConvention(DEFAULT_DT, ORIGINAL_ACTION_DELAY_STEPS,
                                                                              recorded=False))
    camera_setup: list[dict] | None = None  # how the dataset's camera frames were made, when recorded

    @property
    def n_episodes(self) -> int:
        return len(self.episode_ends)

    def episode_rows(self, episodes: list[int]) -> np.ndarray:
        """Step indices belonging to ``episodes``."""
        starts = np.concatenate([[0], self.episode_ends[:-1]])
        return np.concatenate([np.arange(starts[e], self.episode_ends[e]) for e in episodes]) if episodes else np.zeros(0, int)


def load_replay_data(root: str | Path, cfg: PolicyConfig, cache_dir: str | Path | None = None, show_progress: bool = True) -> ReplayData:
    """Read the low-dim arrays a policy needs and build (or find) its frame caches."""
    root = Path(root)
    try:
        folder = EpisodeDataset.open(root, "r")
    except ConfigError as exc:
        raise DatasetError(f"{exc} (--dataset must be a folder containing replay_buffer.zarr/)") from None
    with folder:
        buffer = folder.replay_buffer
        episode_ends = buffer.episode_ends
        if len(episode_ends) == 0:
            raise DatasetError(f"{buffer.path} has no complete episodes")

        def read(key: str) -> np.ndarray:
            arr = np.concatenate([buffer.get_episode(e, [key])[key] for e in range(len(episode_ends))])
            return arr.reshape(len(arr), -1)

        def columns(field: FieldConfig) -> np.ndarray:
            if field.key not in buffer.keys():
                raise DatasetError(f"{buffer.path}: no array data/{field.key} (available: {buffer.keys()})")
            arr = read(field.key)
            if arr.shape[1] < field.dims:
                raise DatasetError(f"{buffer.path}: data/{field.key} has {arr.shape[1]} columns; the config uses {field.dims}")
            return encode_pose(arr[:, : field.dims].astype(np.float32), field.rotation)  # as the network sees it

        low_dim = {f.key: columns(f) for f in cfg.low_dim}
        action = np.concatenate([columns(f) for f in cfg.action], axis=1)
        step_ts = read("timestamp")[:, 0].astype(np.float64) if "timestamp" in buffer.keys() else None
        cache = Path(cache_dir) if cache_dir is not None else root / "cache"
        frame_files = {}
        for cam, key in zip(cfg.cameras, cfg.camera_keys):
            videos = [(folder.video_path(e, cam), folder.timestamps_path(e, cam)) for e in range(len(episode_ends))]
            frames = camera_frames(videos, cam, tuple(cfg.image_size), episode_ends, step_ts, cache, show_progress)
            frame_files[key] = Path(frames.filename)
        scene_seeds = folder.episode_seeds()
        timing, camera_setup = folder.timing_convention(), folder.camera_setup()
    return ReplayData(low_dim, action, frame_files, episode_ends, scene_seeds, timing, camera_setup)


def split_episodes(n_episodes: int, val_ratio: float, seed: int, max_train_episodes: int | None = None) -> tuple[list[int], list[int]]:
    """Random train/validation split by whole episodes (reproducible for a seed).

    With ``val_ratio > 0`` at least one episode is held out when there are two or more.
    """
    n_val = min(max(1, round(n_episodes * val_ratio)), n_episodes - 1) if val_ratio > 0 and n_episodes > 1 else 0
    order = np.random.default_rng(seed).permutation(n_episodes)
    val, train = sorted(order[:n_val].tolist()), sorted(order[n_val:].tolist())
    if max_train_episodes is not None:
        train = sorted(np.random.default_rng(seed + 1).permutation(train)[:max_train_episodes].tolist())
    return train, val


class SequenceDataset(Dataset):
    """Windows of ``horizon`` steps over ``episodes`` of ``data`` (see the module docstring)."""

    def __init__(self, data: ReplayData, cfg: PolicyConfig, episodes: list[int]):
        self.data = data
        self.cfg = cfg
        self.episodes = list(episodes)
        self.sampler = SequenceSampler(data.episode_ends, self.episodes, cfg.horizon, cfg.n_obs_steps - 1, cfg.n_action_steps - 1)
        self._frames: dict[str, np.ndarray] | None = None  # opened lazily: memmaps are per process

    def __len__(self) -> int:
        return len(self.sampler)

    def __getitem__(self, i: int) -> dict:
        idx = self.sampler.indices(i)
        obs_idx = idx[: self.cfg.n_obs_steps]
        obs = {key: torch.from_numpy(arr[obs_idx]) for key, arr in self.data.low_dim.items()}
        for key, frames in self.frames.items():
            img = np.ascontiguousarray(frames[obs_idx]).transpose(0, 3, 1, 2)
            obs[key] = torch.from_numpy(img).float().div_(255.0)
        return {"obs": obs, "action": torch.from_numpy(self.data.action[idx])}

    def get_batch(self, ids: np.ndarray) -> dict:
        """Samples ``ids`` stacked into one batch, equal to collating ``[self[i] for i in ids]`` but gathered
        with one indexing operation per array (per-sample fetching dominated low-dim training steps)."""
        idx = self.sampler.batch_indices(ids)
        obs_idx = idx[:, : self.cfg.n_obs_steps]
        obs = {key: torch.from_numpy(arr[obs_idx]) for key, arr in self.data.low_dim.items()}
        for key, frames in self.frames.items():
            img = frames[obs_idx.reshape(-1)].reshape(*obs_idx.shape, *frames.shape[1:]).transpose(0, 1, 4, 2, 3)
            obs[key] = torch.from_numpy(np.ascontiguousarray(img)).float().div_(255.0)
        return {"obs": obs, "action": torch.from_numpy(self.data.action[idx])}

    @property
    def frames(self) -> dict[str, np.ndarray]:
        if self._frames is None:
            self._frames = {k: np.load(p, mmap_mode="r") for k, p in self.data.frame_files.items()}
        return self._frames

    def __getstate__(self) -> dict:
        # DataLoader workers may be spawned: send file names, not memory maps.
        return {**self.__dict__, "_frames": None}
