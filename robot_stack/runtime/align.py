"""Aligning timestamped streams: nearest-sample selection and pose interpolation."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


def nearest_indices(sample_ts: np.ndarray, query_ts: np.ndarray) -> np.ndarray:
    """For each query time, the index of the sample whose timestamp is nearest.

    ``sample_ts`` must be sorted ascending and non-empty. Ties go to the earlier sample.
    """
    sample_ts = np.asarray(sample_ts, dtype=np.float64)
    query_ts = np.asarray(query_ts, dtype=np.float64)
    if sample_ts.size == 0:
        raise ValueError("nearest_indices: no samples to align to")
    right = np.clip(np.searchsorted(sample_ts, query_ts, side="left"), 1, len(sample_ts) - 1)
    left = right - 1
    if len(sample_ts) == 1:
        return np.zeros(query_ts.shape, dtype=np.int64)
    take_right = np.abs(sample_ts[right] - query_ts) < np.abs(query_ts - sample_ts[left])
    return np.where(take_right, right, left).astype(np.int64)


def interpolate_poses(ts: np.ndarray, poses: np.ndarray, query_ts: np.ndarray) -> np.ndarray:
    """Interpolate 6-DoF poses ``[x, y, z, rx, ry, rz]`` (rotation vectors) at ``query_ts``.

    Position is linear, rotation is spherical-linear (slerp); queries outside ``[ts[0], ts[-1]]`` are
    clamped to the end poses (we never extrapolate a robot pose). ``ts`` must be strictly increasing.
    """
    ts = np.asarray(ts, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    query = np.atleast_1d(np.asarray(query_ts, dtype=np.float64))
    if poses.ndim != 2 or poses.shape[1] != 6 or len(ts) != len(poses) or len(ts) == 0:
        raise ValueError(f"interpolate_poses: expected N timestamps and (N, 6) poses, got {ts.shape} and {poses.shape}")
    if len(ts) == 1:
        return np.repeat(poses, len(query), axis=0)
    if np.any(np.diff(ts) <= 0):
        raise ValueError("interpolate_poses: timestamps must be strictly increasing")
    query = np.clip(query, ts[0], ts[-1])
    pos = np.stack([np.interp(query, ts, poses[:, i]) for i in range(3)], axis=-1)
    if np.all(poses[:, 3:] == poses[0, 3:]):
        # One orientation throughout (planar pushing): exactly what slerp would give, without its cost.
        rot = np.repeat(poses[:1, 3:], len(query), axis=0)
    else:
        rot = Slerp(ts, Rotation.from_rotvec(poses[:, 3:]))(query).as_rotvec()
    return np.concatenate([pos, rot], axis=-1)
