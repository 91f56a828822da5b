"""Training data: episodes of a recorded dataset as (observation window, action sequence) samples.

Reads the dataset layout of the demo recorder::

    DATASET/replay_buffer.zarr   data/<key> (N, ...) per step, meta/episode_ends (E,) cumulative ends
    DATASET/videos/<ep>/<cam>.mp4 (+ <cam>.timestamps.npy)

Low-dim observations and the action are the leading ``dims`` columns of ``data/<key>`` (the action is
the concatenation of its fields, in order). Camera frames come from ``frame_cache`` (decoded once,
resized to ``image_size``, step-aligned, memory-mapped). A sample ``i`` is::

    {"obs": {"camera_<c>": float (n_obs_steps, 3, H, W) in [0, 1], "<low_dim key>": (n_obs_steps, dims)},
     "action": float (horizon, action_dim)}

The zarr store is read directly with ``zarr`` (format 2, compatible with the original tooling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset

from robot_stack.policy.config import FieldConfig, PolicyConfig
from robot_stack.policy.frame_cache import DatasetError, camera_frames
from robot_stack.policy.sequence_sampler import SequenceSampler


@dataclass
class ReplayData:
    """Everything a policy trains on, for all episodes of one dataset."""

    low_dim: dict[str, np.ndarray]  # key -> (N, dims) float32
    action: np.ndarray  # (N, action_dim) float32
    frame_files: dict[str, Path]  # camera key -> cached (N, H, W, 3) uint8 .npy
    episode_ends: np.ndarray  # (E,) int64

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
    store = root / "replay_buffer.zarr"
    if not store.is_dir():
        raise DatasetError(f"no replay buffer at {store}: --dataset must be a folder containing replay_buffer.zarr/")
    try:
        group = zarr.open_group(str(store), mode="r")
        episode_ends = np.asarray(group["meta/episode_ends"][:], dtype=np.int64)
        data = group["data"]
        available = set(data.keys())
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise DatasetError(f"{store} is not a replay buffer (needs data/ and meta/episode_ends): {exc}") from None
    if len(episode_ends) == 0:
        raise DatasetError(f"{store} has no episodes")
    if np.any(np.diff(np.concatenate([[0], episode_ends])) <= 0):
        raise DatasetError(f"{store}: meta/episode_ends must be strictly increasing, got {episode_ends[:10]}")

    def columns(field: FieldConfig) -> np.ndarray:
        if field.key not in available:
            raise DatasetError(f"{store}: no array data/{field.key} (available: {sorted(available)})")
        arr = np.asarray(data[field.key][: episode_ends[-1]])
        arr = arr.reshape(len(arr), -1)
        if len(arr) < episode_ends[-1] or arr.shape[1] < field.dims:
            raise DatasetError(
                f"{store}: data/{field.key} has shape {arr.shape}; the config needs {episode_ends[-1]} rows "
                f"and {field.dims} columns"
            )
        return arr[:, : field.dims].astype(np.float32)

    low_dim = {f.key: columns(f) for f in cfg.low_dim}
    action = np.concatenate([columns(f) for f in cfg.action], axis=1)
    step_ts = np.asarray(data["timestamp"][: episode_ends[-1]], dtype=np.float64) if "timestamp" in available else None
    cache = Path(cache_dir) if cache_dir is not None else root / "cache"
    frame_files = {}
    for cam, key in zip(cfg.cameras, cfg.camera_keys):
        frames = camera_frames(root, cam, tuple(cfg.image_size), episode_ends, step_ts, cache, show_progress)
        frame_files[key] = Path(frames.filename)
    return ReplayData(low_dim, action, frame_files, episode_ends)


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


class EpisodeDataset(Dataset):
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

    @property
    def frames(self) -> dict[str, np.ndarray]:
        if self._frames is None:
            self._frames = {k: np.load(p, mmap_mode="r") for k, p in self.data.frame_files.items()}
        return self._frames

    def __getstate__(self) -> dict:
        # DataLoader workers may be spawned: send file names, not memory maps.
        return {**self.__dict__, "_frames": None}
