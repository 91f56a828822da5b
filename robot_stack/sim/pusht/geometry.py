"""Planar geometry of the T block: posing its polygons and scoring how well it covers the goal."""

from __future__ import annotations

import math

import numpy as np


def transform_points(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Map block-frame points (..., 2) to the table frame for a block ``pose`` = [x, y, theta]."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    # one (2x2) product instead of per-column arithmetic and a stack: this runs several times per physics tick
    return np.asarray(points, dtype=np.float64) @ np.array([[c, s], [-s, c]]) + np.asarray(pose[:2], dtype=np.float64)


def inverse_transform_points(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Map table-frame points (..., 2) into the frame of a block at ``pose``."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    return (np.asarray(points, dtype=np.float64) - np.asarray(pose[:2])) @ np.array([[c, -s], [s, c]])


def wrap_angle(angle: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def iou(parts: tuple[np.ndarray, ...], pose_a: np.ndarray, pose_b: np.ndarray) -> float:
    """Exact intersection-over-union of one shape placed at two poses.

    The shape is a union of convex counter-clockwise ``parts`` with disjoint interiors, so the intersection
    area is the sum of the pairwise convex intersections. (OpenCV's ``intersectConvexConvex`` is not used: it
    returns wrong areas for nearly coincident polygons — exactly the near-goal case that decides success.)
    """
    area = sum(abs(polygon_area(p)) for p in parts)
    a = [transform_points(p, pose_a).tolist() for p in parts]
    b = [transform_points(p, pose_b).tolist() for p in parts]
    inter = 0.0
    for pa in a:
        for pb in b:
            inter += _convex_intersection_area(pa, pb)
    inter = min(inter, area)
    return float(inter / (2 * area - inter))


def _convex_intersection_area(subject: list[list[float]], clipper: list[list[float]]) -> float:
    """Area of the intersection of two convex counter-clockwise polygons (Sutherland-Hodgman clipping)."""
    poly = subject
    for i in range(len(clipper)):
        if len(poly) < 3:
            return 0.0
        ax, ay = clipper[i - 1]
        bx, by = clipper[i]
        ex, ey = bx - ax, by - ay
        side = [ex * (y - ay) - ey * (x - ax) for x, y in poly]  # >= 0: inside (left of the clip edge)
        out = []
        for j in range(len(poly)):
            p, sp = poly[j - 1], side[j - 1]
            q, sq = poly[j], side[j]
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                out.append([p[0] + (q[0] - p[0]) * t, p[1] + (q[1] - p[1]) * t])
            if sq >= 0:
                out.append(q)
        poly = out
    if len(poly) < 3:
        return 0.0
    return abs(sum(poly[k - 1][0] * poly[k][1] - poly[k][0] * poly[k - 1][1] for k in range(len(poly)))) / 2


def footprint_points(parts: tuple[np.ndarray, ...], spacing: float) -> np.ndarray:
    """Centres of a ``spacing`` grid covering the axis-aligned rectangles ``parts`` (block frame), (N, 2).

    Each point stands for an (about) equal share of the footprint, a grid cell; used for table friction.
    """
    points = []
    for part in parts:
        lo, hi = part.min(axis=0), part.max(axis=0)
        nx, ny = (np.maximum(1, np.round((hi - lo) / spacing))).astype(int)
        xs = lo[0] + (np.arange(nx) + 0.5) * (hi[0] - lo[0]) / nx
        ys = lo[1] + (np.arange(ny) + 0.5) * (hi[1] - lo[1]) / ny
        points.append(np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2))
    return np.concatenate(points)


def polygon_area(poly: np.ndarray) -> float:
    """Signed area of a polygon (N, 2): positive when counter-clockwise."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def point_polygon_distance(point: np.ndarray, polygon: np.ndarray) -> float:
    """Signed distance from ``point`` to a simple ``polygon`` (N, 2): negative inside."""
    point = np.asarray(point, dtype=np.float64)
    dist = float(np.linalg.norm(nearest_boundary_point(point, polygon) - point))
    return -dist if _inside(point[None], polygon)[0] else dist


def segment_clearance(p: np.ndarray, q: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distances between segments ``p[i]``-``q[i]`` ((N, 2) each) and a simple ``polygon`` (0 where they meet)."""
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    a = polygon[None, :, :]
    b = np.roll(polygon, -1, axis=0)[None, :, :]
    ps, qs = p[:, None, :], q[:, None, :]
    d1, d2 = _orient(a, b, ps), _orient(a, b, qs)
    d3, d4 = _orient(ps, qs, a), _orient(ps, qs, b)
    crossing = ((d1 * d2) < 0) & ((d3 * d4) < 0)
    dist = np.minimum.reduce([_point_segment(ps, a, b), _point_segment(qs, a, b),
                              _point_segment(a, ps, qs), _point_segment(b, ps, qs)])
    dist = np.where(crossing, 0.0, dist).min(axis=1)
    inside = _inside(p, polygon) | _inside(q, polygon)
    return np.where(inside, 0.0, dist)


def _orient(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (v[..., 0] - u[..., 0]) * (w[..., 1] - u[..., 1]) - (v[..., 1] - u[..., 1]) * (w[..., 0] - u[..., 0])


def _point_segment(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    denom = np.maximum(np.sum(ab * ab, axis=-1), 1e-18)
    t = np.clip(np.sum((x - a) * ab, axis=-1) / denom, 0.0, 1.0)
    return np.linalg.norm(a + t[..., None] * ab - x, axis=-1)


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule for (N, 2) points."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    x, y = points[:, None, 0], points[:, None, 1]
    straddle = (a[None, :, 1] > y) != (b[None, :, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (b[None, :, 0] - a[None, :, 0]) / (b[None, :, 1] - a[None, :, 1])
        x_cross = a[None, :, 0] + (y - a[None, :, 1]) * slope
    return np.sum(straddle & (x < x_cross), axis=1) % 2 == 1


def nearest_boundary_point(point: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """The point of ``polygon``'s boundary nearest to ``point``."""
    a = polygon
    ab = np.roll(polygon, -1, axis=0) - a
    t = np.clip(np.einsum("ij,ij->i", point - a, ab) / np.einsum("ij,ij->i", ab, ab), 0.0, 1.0)
    candidates = a + t[:, None] * ab
    return candidates[np.argmin(np.linalg.norm(candidates - point, axis=1))]
