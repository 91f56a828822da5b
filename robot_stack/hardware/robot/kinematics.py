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
_INV_TWO_PI = 1.0 / TWO_PI
_DEFAULT_LIMITS = (np.full(6, -TWO_PI), np.full(6, TWO_PI))
# Below this |sin(theta5)| the wrist is singular: joints 4 and 6 are aligned and theta6 is free.
_WRIST_SINGULAR = 1e-9
# acos arguments this far outside [-1, 1] are rounding noise at the edge of the workspace, not misses.
_ACOS_SLACK = 1e-9


# Everything below works on Python floats, with rigid transforms as 12-tuples
# ``(r00, r01, r02, r10, r11, r12, r20, r21, r22, px, py, pz)``: the simulated arm runs FK, IK and the
# Jacobian every servo cycle, and on 4x4 matrices numpy's per-call overhead costs ~10x the arithmetic.
Rigid = tuple  # 12 floats, see above


def _floats(values: Sequence[float]) -> list[float]:
    return values.tolist() if isinstance(values, np.ndarray) else [float(v) for v in values]


def _rotation_of_rotvec(rx: float, ry: float, rz: float) -> tuple:
    """Row-major 3x3 rotation (9 floats) of a rotation vector (Rodrigues' formula)."""
    angle = math.sqrt(rx * rx + ry * ry + rz * rz)
    if angle < 1e-12:
        return (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    x, y, z = rx / angle, ry / angle, rz / angle
    s, c = math.sin(angle), math.cos(angle)
    v = 1.0 - c
    return (c + x * x * v, x * y * v - z * s, x * z * v + y * s,
            x * y * v + z * s, c + y * y * v, y * z * v - x * s,
            x * z * v - y * s, y * z * v + x * s, c + z * z * v)


def _rotvec_of_rotation(r00: float, r01: float, r02: float, r10: float, r11: float, r12: float,
                        r20: float, r21: float, r22: float) -> tuple[float, float, float]:
    """Rotation vector (angle in [0, pi]) of a rotation, via a quaternion (Shepperd's method)."""
    trace = r00 + r11 + r22
    # pick the largest of w, x, y, z to divide by: numerically stable at every angle, including pi
    if trace >= max(r00, r11, r22):
        w = 0.5 * math.sqrt(max(0.0, 1.0 + trace))
        f = 0.25 / w
        x, y, z = (r21 - r12) * f, (r02 - r20) * f, (r10 - r01) * f
    elif r00 >= r11 and r00 >= r22:
        x = 0.5 * math.sqrt(max(0.0, 1.0 + r00 - r11 - r22))
        f = 0.25 / x
        w, y, z = (r21 - r12) * f, (r01 + r10) * f, (r02 + r20) * f
    elif r11 >= r22:
        y = 0.5 * math.sqrt(max(0.0, 1.0 - r00 + r11 - r22))
        f = 0.25 / y
        w, x, z = (r02 - r20) * f, (r01 + r10) * f, (r12 + r21) * f
    else:
        z = 0.5 * math.sqrt(max(0.0, 1.0 - r00 - r11 + r22))
        f = 0.25 / z
        w, x, y = (r10 - r01) * f, (r02 + r20) * f, (r12 + r21) * f
    if w < 0.0:  # q and -q are the same rotation; w >= 0 gives the angle in [0, pi]
        w, x, y, z = -w, -x, -y, -z
    norm_v = math.sqrt(x * x + y * y + z * z)
    if norm_v < 1e-15:
        return (0.0, 0.0, 0.0)
    k = 2.0 * math.atan2(norm_v, w) / norm_v
    return (x * k, y * k, z * k)


def rotvec_to_matrix(rotvec: Sequence[float]) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues' formula)."""
    rx, ry, rz = _floats(rotvec)
    return np.array(_rotation_of_rotvec(rx, ry, rz)).reshape(3, 3)


def pose_to_matrix(pose: Sequence[float]) -> np.ndarray:
    """4x4 homogeneous transform of a pose ``[x, y, z, rx, ry, rz]``."""
    return _matrix(_rigid_of_pose(pose))


def matrix_to_rotvec(r: np.ndarray) -> np.ndarray:
    """Rotation vector (angle in [0, pi]) of a rotation matrix, via a quaternion (Shepperd's method).

    Hand-written rather than scipy's because the simulated arm calls it several times per control cycle.
    """
    return np.array(_rotvec_of_rotation(*np.asarray(r, dtype=np.float64)[:3, :3].ravel().tolist()))


def rotation_angle_between(a: Sequence[float], b: Sequence[float]) -> float:
    """Angle (rad, in [0, pi]) of the rotation from rotation vector ``a`` to rotation vector ``b``."""
    qa, qb = _quaternion(*a), _quaternion(*b)
    # conj(qa) * qb: its vector part's norm and |w| give the angle without acos's loss of precision at 0
    w = qa[0] * qb[0] + qa[1] * qb[1] + qa[2] * qb[2] + qa[3] * qb[3]
    x = qa[0] * qb[1] - qa[1] * qb[0] - qa[2] * qb[3] + qa[3] * qb[2]
    y = qa[0] * qb[2] + qa[1] * qb[3] - qa[2] * qb[0] - qa[3] * qb[1]
    z = qa[0] * qb[3] - qa[1] * qb[2] + qa[2] * qb[1] - qa[3] * qb[0]
    return 2.0 * math.atan2(math.sqrt(x * x + y * y + z * z), abs(w))


def _quaternion(rx: float, ry: float, rz: float) -> tuple[float, float, float, float]:
    angle = math.sqrt(rx * rx + ry * ry + rz * rz)
    if angle < 1e-12:
        return (1.0, 0.0, 0.0, 0.0)
    s = math.sin(0.5 * angle) / angle
    return (math.cos(0.5 * angle), rx * s, ry * s, rz * s)


def _rigid_of_pose(pose: Sequence[float]) -> Rigid:
    x, y, z, rx, ry, rz = _floats(pose)
    return (*_rotation_of_rotvec(rx, ry, rz), x, y, z)


def _pose_of_rigid(t: Rigid) -> tuple:
    return (t[9], t[10], t[11], *_rotvec_of_rotation(*t[:9]))


def _rigid_of_matrix(m: np.ndarray) -> Rigid:
    m = np.asarray(m, dtype=np.float64)
    return (*m[:3, :3].ravel().tolist(), *m[:3, 3].tolist())


def _matrix(t: Rigid) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = np.array(t[:9]).reshape(3, 3)
    out[:3, 3] = t[9:]
    return out


def _compose(a: Rigid, b: Rigid) -> Rigid:
    a00, a01, a02, a10, a11, a12, a20, a21, a22, ax, ay, az = a
    b00, b01, b02, b10, b11, b12, b20, b21, b22, bx, by, bz = b
    return (a00 * b00 + a01 * b10 + a02 * b20, a00 * b01 + a01 * b11 + a02 * b21, a00 * b02 + a01 * b12 + a02 * b22,
            a10 * b00 + a11 * b10 + a12 * b20, a10 * b01 + a11 * b11 + a12 * b21, a10 * b02 + a11 * b12 + a12 * b22,
            a20 * b00 + a21 * b10 + a22 * b20, a20 * b01 + a21 * b11 + a22 * b21, a20 * b02 + a21 * b12 + a22 * b22,
            a00 * bx + a01 * by + a02 * bz + ax, a10 * bx + a11 * by + a12 * bz + ay,
            a20 * bx + a21 * by + a22 * bz + az)


def _inverse(t: Rigid) -> Rigid:
    r00, r01, r02, r10, r11, r12, r20, r21, r22, px, py, pz = t
    return (r00, r10, r20, r01, r11, r21, r02, r12, r22,
            -(r00 * px + r10 * py + r20 * pz), -(r01 * px + r11 * py + r21 * pz), -(r02 * px + r12 * py + r22 * pz))


_COS_ALPHA = tuple(math.cos(a) for a in ALPHA)
_SIN_ALPHA = tuple(math.sin(a) for a in ALPHA)


def _dh(theta: float, i: int) -> Rigid:
    ct, st = math.cos(theta), math.sin(theta)
    ca, sa = _COS_ALPHA[i], _SIN_ALPHA[i]
    return (ct, -st * ca, st * sa, st, ct * ca, -ct * sa, 0.0, sa, ca, A[i] * ct, A[i] * st, D[i])


def _frames(q: Sequence[float]) -> list[Rigid]:
    frames = [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)]
    for i, theta in enumerate(_floats(q)[:6]):
        frames.append(_compose(frames[-1], _dh(theta, i)))
    return frames


def ik_flange_all(t06: np.ndarray) -> np.ndarray:
    """All closed-form IK solutions (k, 6), k <= 8, for flange transform ``t06``; angles in (-pi, pi].

    Empty when the target is out of reach. At a wrist singularity theta6 is returned as 0 (free joint);
    ``UR5Kinematics.ik`` replaces it with the reference value.
    """
    solutions = _ik_flange(_rigid_of_matrix(t06))
    return np.array(solutions) if solutions else np.empty((0, 6))


def _wrap(angle: float) -> float:
    return (angle + math.pi) % TWO_PI - math.pi  # to [-pi, pi)


def _ik_flange(t06: Rigid) -> list[tuple[float, ...]]:
    return [solution for theta1 in _base_angles(t06) for solution in _ik_for_base(t06, theta1)]


def _base_angles(t06: Rigid) -> tuple[float, ...]:
    """The two shoulder (left/right) solutions for joint 1; none if the wrist centre is out of reach."""
    d4, d6 = D[3], D[5]
    p05x, p05y = t06[9] - d6 * t06[2], t06[10] - d6 * t06[5]
    r_xy = math.hypot(p05x, p05y)
    if r_xy < d4 - _ACOS_SLACK:
        return ()  # wrist centre inside the shoulder-offset cylinder: unreachable
    psi = math.atan2(p05y, p05x)
    phi = math.acos(min(1.0, d4 / r_xy))
    return (psi + phi + math.pi / 2, psi - phi + math.pi / 2)


def _ik_for_base(t06: Rigid, theta1: float) -> list[tuple[float, ...]]:
    """The (up to 4: wrist up/down x elbow up/down) solutions with joint 1 at ``theta1``."""
    d4, d6 = D[3], D[5]
    a2, a3 = A[1], A[2]
    r00, r01, _, r10, r11, _, _, _, _, px, py, _ = t06
    s1, c1 = math.sin(theta1), math.cos(theta1)
    c5 = (px * s1 - py * c1 - d4) / d6
    if abs(c5) > 1.0 + _ACOS_SLACK:
        return []
    theta5_abs = math.acos(max(-1.0, min(1.0, c5)))
    a = _compose(_inverse(_dh(theta1, 0)), t06)  # frame 1 to flange
    solutions = []
    for theta5 in (theta5_abs, -theta5_abs):
        s5 = math.sin(theta5)
        if abs(s5) < _WRIST_SINGULAR:
            theta6 = 0.0
        else:  # from the inverse's entries t60[1,0] = r01, t60[1,1] = r11, t60[0,0] = r00, t60[0,1] = r10
            theta6 = math.atan2((-r01 * s1 + r11 * c1) / s5, (r00 * s1 - r10 * c1) / s5)
        # t14 = a @ inv(t46), of which only the translation's x, y and the first column are needed
        t46 = _compose(_dh(theta5, 4), _dh(theta6, 5))
        m0 = -(t46[0] * t46[9] + t46[3] * t46[10] + t46[6] * t46[11])
        m1 = -(t46[1] * t46[9] + t46[4] * t46[10] + t46[7] * t46[11])
        m2 = -(t46[2] * t46[9] + t46[5] * t46[10] + t46[8] * t46[11])
        # frames 1..4 form a planar 2-link arm (a2, a3) in the x-y plane of frame 1
        x = a[0] * m0 + a[1] * m1 + a[2] * m2 + a[9]
        y = a[3] * m0 + a[4] * m1 + a[5] * m2 + a[10]
        c3 = (x * x + y * y - a2 * a2 - a3 * a3) / (2.0 * a2 * a3)
        if abs(c3) > 1.0 + _ACOS_SLACK:
            continue
        theta3_abs = math.acos(max(-1.0, min(1.0, c3)))
        # Joints 2-4 turn about parallel axes (alpha1 = alpha2 = 0): frame 4 is frame 1 turned by
        # theta2 + theta3 + theta4, so theta4 follows from t14's rotation without more matrix products.
        phi14 = math.atan2(a[3] * t46[0] + a[4] * t46[1] + a[5] * t46[2],
                           a[0] * t46[0] + a[1] * t46[1] + a[2] * t46[2])
        for theta3 in (theta3_abs, -theta3_abs):
            theta2 = math.atan2(y, x) - math.atan2(a3 * math.sin(theta3), a2 + a3 * math.cos(theta3))
            theta4 = phi14 - theta2 - theta3
            solutions.append((_wrap(theta1), _wrap(theta2), _wrap(theta3), _wrap(theta4), _wrap(theta5),
                              _wrap(theta6)))
    return solutions


class UR5Kinematics:
    """FK/IK/Jacobian of a UR5 with a TCP offset and joint limits."""

    def __init__(
        self,
        tcp_offset: Sequence[float] = (0.0,) * 6,
        joint_limits: tuple[Sequence[float], Sequence[float]] | None = None,
    ):
        self._tcp = _rigid_of_pose(tcp_offset)
        self._tcp_inv = _inverse(self._tcp)
        self.tcp = _matrix(self._tcp)
        lo, hi = joint_limits if joint_limits is not None else _DEFAULT_LIMITS
        self.q_min = np.asarray(lo, dtype=np.float64)
        self.q_max = np.asarray(hi, dtype=np.float64)
        # with the 1e-12 slack the selection below has always allowed at the limits
        self._lo = [float(v) - 1e-12 for v in self.q_min]
        self._hi = [float(v) + 1e-12 for v in self.q_max]

    def fk_matrix(self, q: Sequence[float]) -> np.ndarray:
        """4x4 base-frame transform of the TCP."""
        return _matrix(_compose(_frames(q)[-1], self._tcp))

    def fk(self, q: Sequence[float]) -> np.ndarray:
        """TCP pose ``[x, y, z, rx, ry, rz]`` for joint vector ``q``."""
        return np.array(_pose_of_rigid(_compose(_frames(q)[-1], self._tcp)))

    def ik_all(self, pose: Sequence[float]) -> np.ndarray:
        """Every IK solution (k, 6) for a TCP pose, angles wrapped to [-pi, pi)."""
        solutions = _ik_flange(_compose(_rigid_of_pose(pose), self._tcp_inv))
        return np.array(solutions) if solutions else np.empty((0, 6))

    def ik(self, pose: Sequence[float], q_near: Sequence[float]) -> np.ndarray | None:
        """The IK solution nearest (Euclidean, joint space) to ``q_near`` within the joint limits, or None.

        Each joint of each solution is shifted by the multiple of 2*pi that brings it closest to ``q_near``
        while staying inside the limits, so a base at 350 degrees is not sent to -10 degrees.
        """
        near = _floats(q_near)
        t06 = _compose(_rigid_of_pose(pose), self._tcp_inv)
        # Branch and bound over the two shoulder solutions, nearer base angle first: the other's joint-1
        # distance alone usually exceeds the best total, and then its four solutions are never computed.
        bases = []
        for theta1 in _base_angles(t06):
            angle = _unwrap_near(_wrap(theta1), near[0], self._lo[0], self._hi[0])
            if angle is not None:
                bases.append(((angle - near[0]) ** 2, theta1))
        best, best_cost = None, math.inf
        for bound, theta1 in sorted(bases):
            if bound >= best_cost:
                break
            best, best_cost = self._nearest(_ik_for_base(t06, theta1), near, best, best_cost)
        return None if best is None else np.array(best)

    def _nearest(self, solutions: list[tuple[float, ...]], near: list[float], best: list[float] | None,
                 best_cost: float) -> tuple[list[float] | None, float]:
        """The best of ``solutions`` (unwrapped near ``near``) and the incumbent ``best``, with its cost."""
        for solution in solutions:
            if abs(math.sin(solution[4])) < _WRIST_SINGULAR:
                solution = (*solution[:5], near[5])  # theta6 is free at the singularity: keep the reference
            chosen, cost = [], 0.0
            for theta, ref, lo, hi in zip(solution, near, self._lo, self._hi):
                angle = _unwrap_near(theta, ref, lo, hi)
                if angle is None:
                    break
                chosen.append(angle)
                cost += (angle - ref) ** 2
                if cost >= best_cost:
                    break  # cannot beat the best so far (and ties keep the earlier solution)
            else:  # every joint fits and the total is below the best so far
                best, best_cost = chosen, cost
        return best, best_cost

    def jacobian(self, q: Sequence[float]) -> np.ndarray:
        """Geometric Jacobian (6, 6) of the TCP in the base frame: ``[v; w] = J @ qd``."""
        frames = _frames(q)
        tcp = _compose(frames[-1], self._tcp)
        px, py, pz = tcp[9], tcp[10], tcp[11]
        columns = []
        for f in frames[:6]:
            zx, zy, zz = f[2], f[5], f[8]  # joint axis: the frame's z column
            rx, ry, rz = px - f[9], py - f[10], pz - f[11]  # joint origin -> TCP
            columns.append((zy * rz - zz * ry, zz * rx - zx * rz, zx * ry - zy * rx, zx, zy, zz))
        return np.array(columns).T

    def tcp_speed(self, q: Sequence[float], qd: Sequence[float]) -> np.ndarray:
        """TCP twist ``[vx, vy, vz, wx, wy, wz]`` in the base frame (what RTDE calls actual TCP speed)."""
        return self.jacobian(q) @ np.asarray(qd, dtype=np.float64)

    def within_limits(self, q: Sequence[float]) -> bool:
        """True if every joint of ``q`` is inside the joint limits."""
        q = np.asarray(q)
        return bool(np.all(q >= self.q_min) and np.all(q <= self.q_max))


def _unwrap_near(theta: float, ref: float, lo: float, hi: float) -> float | None:
    """``theta + 2*pi*k`` (k in -2..2: covers limits of up to +-2*pi) nearest to ``ref`` inside [lo, hi]."""
    k = round((ref - theta) * _INV_TWO_PI)
    angle = theta + (2 if k > 2 else -2 if k < -2 else k) * TWO_PI
    if lo <= angle <= hi:
        return angle  # the distance is convex in k: the unconstrained nearest is inside, so it is the answer
    best, best_dist = None, math.inf
    for k in (-2, -1, 0, 1, 2):
        angle = theta + k * TWO_PI
        if lo <= angle <= hi and abs(angle - ref) < best_dist:
            best, best_dist = angle, abs(angle - ref)
    return best
