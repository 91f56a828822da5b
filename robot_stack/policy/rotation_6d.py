"""The continuous 6-D rotation representation (Zhou et al., CVPR 2019) for pose fields of a policy.

Axis-angle (the UR's rotation vector) jumps where the rotation angle crosses pi: two nearly equal
orientations get vectors of opposite direction, which a regression target cannot follow. The first two
columns of the rotation matrix change continuously with the rotation, and Gram-Schmidt maps any 6 numbers
back to a rotation. A policy field ``{key, dims: 6, rotation: rotation_6d}`` holding ``[x, y, z, rx, ry, rz]``
is seen by the network as ``[x, y, z, r11, r21, r31, r12, r22, r32]`` (9 numbers); the dataset reader
converts recorded poses into it and the policy converts its observations in and its actions back out, so
everything outside the policy (recording, server, executor) keeps axis-angle.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.spatial.transform import Rotation

RotationKind = Literal["axis_angle", "rotation_6d"]
ROTATION_KINDS: tuple[str, ...] = ("axis_angle", "rotation_6d")
POSE_ROTATION = slice(3, 6)  # the rotation vector's columns in a [x, y, z, rx, ry, rz, ...] field
EXTRA_DIMS = {"axis_angle": 0, "rotation_6d": 3}  # columns a representation adds to a pose field


def rotvec_to_6d(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors -> (..., 6): the rotation matrix's first column, then its second."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    matrix = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix()
    return matrix[:, :, :2].transpose(0, 2, 1).reshape(*rotvec.shape[:-1], 6)


DEGENERATE = 1e-9  # below this norm a Gram-Schmidt column has no direction


def rotation_6d_to_matrix(r6: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) rotation matrices by Gram-Schmidt (any non-degenerate 6 numbers map to one).

    Raises ``ValueError`` for degenerate ones (a zero first column, or a second parallel to the first; a
    saturated network, its outputs clipped to +-1, produces those): they name no rotation.
    """
    r6 = np.asarray(r6, dtype=np.float64)
    a, b = r6[..., :3], r6[..., 3:6]
    a_norm = np.linalg.norm(a, axis=-1, keepdims=True)
    x = a / np.maximum(a_norm, DEGENERATE)
    y = b - np.sum(x * b, axis=-1, keepdims=True) * x
    y_norm = np.linalg.norm(y, axis=-1, keepdims=True)
    b_scale = np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1.0)
    if (a_norm <= DEGENERATE).any() or (y_norm <= DEGENERATE * b_scale).any():
        raise ValueError("degenerate 6-D rotation (a zero column, or two parallel columns): no rotation to decode")
    return np.stack([x, y / y_norm, np.cross(x, y / y_norm)], axis=-1)


def rotation_6d_to_rotvec(r6: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3) rotation vectors (angle in [0, pi])."""
    r6 = np.asarray(r6, dtype=np.float64)
    matrix = rotation_6d_to_matrix(r6).reshape(-1, 3, 3)
    return Rotation.from_matrix(matrix).as_rotvec().reshape(*r6.shape[:-1], 3)


def encode_pose(values: np.ndarray, kind: RotationKind) -> np.ndarray:
    """A pose field's recorded columns (..., D >= 6, rotation vector in columns 3:6) -> the network's."""
    if kind == "axis_angle":
        return values
    values = np.asarray(values)
    r6 = rotvec_to_6d(values[..., POSE_ROTATION]).astype(values.dtype)
    return np.concatenate([values[..., :3], r6, values[..., 6:]], axis=-1)


def decode_pose(values: np.ndarray, kind: RotationKind) -> np.ndarray:
    """The inverse of ``encode_pose``: the network's columns -> recorded ones (rotation vector)."""
    if kind == "axis_angle":
        return values
    values = np.asarray(values)
    rotvec = rotation_6d_to_rotvec(values[..., 3:9]).astype(values.dtype)
    return np.concatenate([values[..., :3], rotvec, values[..., 9:]], axis=-1)


def encode_fields(fields, values: np.ndarray) -> np.ndarray:
    """Recorded columns of consecutive fields (each with ``dims``, ``rotation``) -> the network's, per field."""
    return _per_field(fields, values, lambda f: f.dims, encode_pose)


def decode_fields(fields, values: np.ndarray) -> np.ndarray:
    """The inverse of ``encode_fields``: the network's columns (``model_dims`` per field) -> recorded ones."""
    return _per_field(fields, values, lambda f: f.model_dims, decode_pose)


def _per_field(fields, values: np.ndarray, width, convert) -> np.ndarray:
    parts, start = [], 0
    for f in fields:
        parts.append(convert(values[..., start : start + width(f)], f.rotation))
        start += width(f)
    return np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
