"""Fixed-length windows over episodes, padded at episode edges by repeating the edge step.

A training sample is ``horizon`` consecutive steps of one episode. Windows may start up to
``pad_before`` steps before the episode (the first step is repeated) and end up to ``pad_after`` steps
after it (the last step is repeated), so the very first observations and the final actions of every
demonstration are trained on, as in the original implementation (``pad_before = n_obs_steps - 1``,
``pad_after = n_action_steps - 1``). Windows never cross episode boundaries.
"""

from __future__ import annotations

import numpy as np


class SequenceSampler:
    """Enumerates all windows of ``horizon`` steps over the selected episodes."""

    def __init__(self, episode_ends: np.ndarray, episodes: list[int], horizon: int, pad_before: int, pad_after: int):
        ends = np.asarray(episode_ends, dtype=np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        windows = []
        self.too_short: list[int] = []  # episodes that yield no window at all
        for ep in episodes:
            length = int(ends[ep] - starts[ep])
            first, last = -pad_before, length - horizon + pad_after  # window start offsets, inclusive
            if last < first:
                self.too_short.append(ep)
            for offset in range(first, last + 1):
                windows.append((starts[ep], length, offset))
        self.horizon = horizon
        self._windows = np.asarray(windows, dtype=np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self._windows)

    def indices(self, i: int) -> np.ndarray:
        """Global step indices (into the replay buffer arrays) of window ``i``, edge-padded."""
        start, length, offset = self._windows[i]
        return start + np.clip(offset + np.arange(self.horizon), 0, length - 1)

    def batch_indices(self, ids: np.ndarray) -> np.ndarray:
        """``indices`` of several windows at once: (len(ids), horizon)."""
        start, length, offset = self._windows[np.asarray(ids, dtype=np.int64)].T
        steps = offset[:, None] + np.arange(self.horizon)
        return start[:, None] + np.clip(steps, 0, (length - 1)[:, None])
