"""UR5 forward and inverse kinematics (standard DH parameters, closed-form IK).

Frames: the base frame is the UR controller's base frame (the one RTDE poses are expressed in) and DH frame
6 is the tool flange; the TCP is the flange composed with the configured ``tcp_offset`` pose, exactly as the
controller applies ``setTcp``. Poses are ``[x, y, z, rx, ry, rz]`` (meters, rotation vector).

The inverse kinematics is the usual geometric solution for the UR family (shoulder left/right x wrist
up/down x elbow up/down = up to 8 solutions); ``UR5Kinematics.ik`` picks the one nearest to a reference joint
vector, unwrapping each joint by multiples of 2*pi into the joint limits, because the arm must never take
the long way round.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# UR5 (CB3 and e-series share the nominal values) standard DH parameters.
D = (0.089159, 0.0, 0.0, 0.10915, 0.09465, 0.0823)
A = (0.0, -0.425, -0.39225, 0.0, 0.0, 0.0)
ALPHA = (math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0)

TWO_PI = 2.0 * math.pi
_DEFAULT_LIMITS = (np.full(6, -TWO_PI), np.full(6, TWO_PI))
# Below this |sin(theta5)| the wrist is singular: joints 4 and 6 are aligned and theta6 is free.
_WRIST_SINGULAR = 1e-9
# acos arguments this far outside [-1, 1] are rounding noise at the edge of the workspace, not misses.
_ACOS_SLACK = 1e-9


def rotvec_to_matrix(rotvec: Sequence[float]) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues' formula)."""
    r = np.asarray(rotvec, dtype=np.float64)
    angle = math.sqrt(float(r @ r))
    if angle < 1e-12:
        return np.eye(3)
    k = r / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * (kx @ kx)


def pose_to_matrix(pose: Sequence[float]) -> np.ndarray:
    """4x4 homogeneous transform of a pose ``[x, y, z, rx, ry, rz]``."""
    pose = np.asarray(pose, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = rotvec_to_matrix(pose[3:])
    out[:3, 3] = pose[:3]
    return out


def matrix_to_rotvec(r: np.ndarray) -> np.ndarray:
    """Rotation vector (angle in [0, pi]) of a rotation matrix, via a quaternion (Shepperd's method).

    Hand-written rather than scipy's because the simulated arm calls it several times per control cycle.
    """
    r00, r11, r22 = float(r[0, 0]), float(r[1, 1]), float(r[2, 2])
    trace = r00 + r11 + r22
    # pick the largest of w, x, y, z to divide by: numerically stable at every angle, including pi
    if trace >= max(r00, r11, r22):
        w = 0.5 * math.sqrt(max(0.0, 1.0 + trace))
        f = 0.25 / w
        x, y, z = (r[2, 1] - r[1, 2]) * f, (r[0, 2] - r[2, 0]) * f, (r[1, 0] - r[0, 1]) * f
    elif r00 >= r11 and r00 >= r22:
        x = 0.5 * math.sqrt(max(0.0, 1.0 + r00 - r11 - r22))
        f = 0.25 / x
        w, y, z = (r[2, 1] - r[1, 2]) * f, (r[0, 1] + r[1, 0]) * f, (r[0, 2] + r[2, 0]) * f
    elif r11 >= r22:
        y = 0.5 * math.sqrt(max(0.0, 1.0 - r00 + r11 - r22))
        f = 0.25 / y
        w, x, z = (r[0, 2] - r[2, 0]) * f, (r[0, 1] + r[1, 0]) * f, (r[1, 2] + r[2, 1]) * f
    else:
        z = 0.5 * math.sqrt(max(0.0, 1.0 - r00 - r11 + r22))
        f = 0.25 / z
        w, x, y = (r[1, 0] - r[0, 1]) * f, (r[0, 2] + r[2, 0]) * f, (r[1, 2] + r[2, 1]) * f
    if w < 0.0:  # q and -q are the same rotation; w >= 0 gives the angle in [0, pi]
        w, x, y, z = -w, -x, -y, -z
    norm_v = math.sqrt(x * x + y * y + z * z)
    if norm_v < 1e-15:
        return np.zeros(3)
    angle = 2.0 * math.atan2(norm_v, w)
    return np.array([x, y, z]) * (angle / norm_v)


def matrix_to_pose(matrix: np.ndarray) -> np.ndarray:
    """Pose ``[x, y, z, rx, ry, rz]`` of a 4x4 transform (rotation angle in [0, pi], as the UR reports it)."""
    return np.concatenate([matrix[:3, 3], matrix_to_rotvec(matrix[:3, :3])])


_COS_ALPHA = tuple(math.cos(a) for a in ALPHA)
_SIN_ALPHA = tuple(math.sin(a) for a in ALPHA)


def _dh(theta: float, i: int) -> np.ndarray:
    ct, st = math.cos(theta), math.sin(theta)
    ca, sa = _COS_ALPHA[i], _SIN_ALPHA[i]
    return np.array(
        [
            [ct, -st * ca, st * sa, A[i] * ct],
            [st, ct * ca, -ct * sa, A[i] * st],
            [0.0, sa, ca, D[i]],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def _inv(t: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    rt = t[:3, :3].T
    out[:3, :3] = rt
    out[:3, 3] = -rt @ t[:3, 3]
    return out


def flange_frames(q: Sequence[float]) -> list[np.ndarray]:
    """Base-frame transforms of DH frames 0..6 for joint vector ``q`` (frame 6 = tool flange)."""
    frames = [np.eye(4)]
    for i in range(6):
        frames.append(frames[-1] @ _dh(float(q[i]), i))
    return frames


def ik_flange_all(t06: np.ndarray) -> np.ndarray:
    """All closed-form IK solutions (k, 6), k <= 8, for flange transform ``t06``; angles in (-pi, pi].

    Empty when the target is out of reach. At a wrist singularity theta6 is returned as 0 (free joint);
    ``UR5Kinematics.ik`` replaces it with the reference value.
    """
    d4, d6 = D[3], D[5]
    a2, a3 = A[1], A[2]
    p05 = t06 @ np.array([0.0, 0.0, -d6, 1.0])
    r_xy = math.hypot(p05[0], p05[1])
    if r_xy < d4 - _ACOS_SLACK:
        return np.empty((0, 6))  # wrist centre inside the shoulder-offset cylinder: unreachable
    psi = math.atan2(p05[1], p05[0])
    phi = math.acos(min(1.0, d4 / r_xy))
    t60 = _inv(t06)
    solutions = []
    for theta1 in (psi + phi + math.pi / 2, psi - phi + math.pi / 2):
        s1, c1 = math.sin(theta1), math.cos(theta1)
        c5 = (t06[0, 3] * s1 - t06[1, 3] * c1 - d4) / d6
        if abs(c5) > 1.0 + _ACOS_SLACK:
            continue
        theta5_abs = math.acos(max(-1.0, min(1.0, c5)))
        for theta5 in (theta5_abs, -theta5_abs):
            s5 = math.sin(theta5)
            if abs(s5) < _WRIST_SINGULAR:
                theta6 = 0.0
            else:
                theta6 = math.atan2(
                    (-t60[1, 0] * s1 + t60[1, 1] * c1) / s5,
                    (t60[0, 0] * s1 - t60[0, 1] * c1) / s5,
                )
            t01 = _dh(theta1, 0)
            t45 = _dh(theta5, 4)
            t56 = _dh(theta6, 5)
            t14 = _inv(t01) @ t06 @ _inv(t45 @ t56)
            # frames 1..4 form a planar 2-link arm (a2, a3) in the x-y plane of frame 1
            px, py = t14[0, 3], t14[1, 3]
            c3 = (px * px + py * py - a2 * a2 - a3 * a3) / (2.0 * a2 * a3)
            if abs(c3) > 1.0 + _ACOS_SLACK:
                continue
            theta3_abs = math.acos(max(-1.0, min(1.0, c3)))
            # Joints 2-4 turn about parallel axes (alpha1 = alpha2 = 0): frame 4 is frame 1 turned by
            # theta2 + theta3 + theta4, so theta4 follows from t14's rotation without more matrix products.
            phi14 = math.atan2(t14[1, 0], t14[0, 0])
            for theta3 in (theta3_abs, -theta3_abs):
                theta2 = math.atan2(py, px) - math.atan2(a3 * math.sin(theta3), a2 + a3 * math.cos(theta3))
                theta4 = phi14 - theta2 - theta3
                solutions.append((theta1, theta2, theta3, theta4, theta5, theta6))
    if not solutions:
        return np.empty((0, 6))
    sol = np.asarray(solutions)
    return np.mod(sol + math.pi, TWO_PI) - math.pi  # wrap to [-pi, pi)


class UR5Kinematics:
    """FK/IK/Jacobian of a UR5 with a TCP offset and joint limits."""

    def __init__(
        self,
        tcp_offset: Sequence[float] = (0.0,) * 6,
        joint_limits: tuple[Sequence[float], Sequence[float]] | None = None,
    ):
        self.tcp = pose_to_matrix(tcp_offset)
        self._tcp_inv = _inv(self.tcp)
        lo, hi = joint_limits if joint_limits is not None else _DEFAULT_LIMITS
        self.q_min = np.asarray(lo, dtype=np.float64)
        self.q_max = np.asarray(hi, dtype=np.float64)

    def fk_matrix(self, q: Sequence[float]) -> np.ndarray:
        """4x4 base-frame transform of the TCP."""
        return flange_frames(q)[-1] @ self.tcp

    def fk(self, q: Sequence[float]) -> np.ndarray:
        """TCP pose ``[x, y, z, rx, ry, rz]`` for joint vector ``q``."""
        return matrix_to_pose(self.fk_matrix(q))

    def ik_all(self, pose: Sequence[float]) -> np.ndarray:
        """Every IK solution (k, 6) for a TCP pose, angles wrapped to [-pi, pi)."""
        return ik_flange_all(pose_to_matrix(pose) @ self._tcp_inv)

    def ik(self, pose: Sequence[float], q_near: Sequence[float]) -> np.ndarray | None:
        """The IK solution nearest (Euclidean, joint space) to ``q_near`` within the joint limits, or None.

        Each joint of each solution is shifted by the multiple of 2*pi that brings it closest to ``q_near``
        while staying inside the limits, so a base at 350 degrees is not sent to -10 degrees.
        """
        q_near = np.asarray(q_near, dtype=np.float64)
        sols = self.ik_all(pose)
        if len(sols) == 0:
            return None
        singular = np.abs(np.sin(sols[:, 4])) < _WRIST_SINGULAR
        sols[singular, 5] = q_near[5]
        # candidates theta + 2*pi*k for k in -2..2 cover limits of up to +-2*pi around any reference
        shifts = np.arange(-2, 3) * TWO_PI
        cand = sols[:, :, None] + shifts[None, None, :]  # (k, 6, 5)
        inside = (cand >= self.q_min[None, :, None] - 1e-12) & (cand <= self.q_max[None, :, None] + 1e-12)
        dist = np.where(inside, np.abs(cand - q_near[None, :, None]), np.inf)
        best = np.argmin(dist, axis=2)  # (k, 6)
        chosen = np.take_along_axis(cand, best[:, :, None], axis=2)[:, :, 0]
        best_dist = np.take_along_axis(dist, best[:, :, None], axis=2)[:, :, 0]
        feasible = np.all(np.isfinite(best_dist), axis=1)
        if not feasible.any():
            return None
        cost = np.where(feasible, np.sum(np.where(np.isfinite(best_dist), best_dist, 0.0) ** 2, axis=1), np.inf)
        return chosen[int(np.argmin(cost))]

    def jacobian(self, q: Sequence[float]) -> np.ndarray:
        """Geometric Jacobian (6, 6) of the TCP in the base frame: ``[v; w] = J @ qd``."""
        frames = flange_frames(q)
        p_tcp = (frames[-1] @ self.tcp)[:3, 3]
        z = np.array([f[:3, 2] for f in frames[:6]])  # joint axes (6, 3)
        r = p_tcp - np.array([f[:3, 3] for f in frames[:6]])  # joint origin -> TCP (6, 3)
        # cross(z, r) row by row, written out: np.cross costs more than the rest of the Jacobian
        lin = np.stack(
            [
                z[:, 1] * r[:, 2] - z[:, 2] * r[:, 1],
                z[:, 2] * r[:, 0] - z[:, 0] * r[:, 2],
                z[:, 0] * r[:, 1] - z[:, 1] * r[:, 0],
            ]
        )
        return np.vstack([lin, z.T])

    def tcp_speed(self, q: Sequence[float], qd: Sequence[float]) -> np.ndarray:
        """TCP twist ``[vx, vy, vz, wx, wy, wz]`` in the base frame (what RTDE calls actual TCP speed)."""
        return self.jacobian(q) @ np.asarray(qd, dtype=np.float64)

    def within_limits(self, q: Sequence[float]) -> bool:
        """True if every joint of ``q`` is inside the joint limits."""
        q = np.asarray(q)
        return bool(np.all(q >= self.q_min) and np.all(q <= self.q_max))
