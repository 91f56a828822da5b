"""Planar geometry of the T block: posing its polygons and scoring how well it covers the goal."""

from __future__ import annotations

import math

import cv2
import numpy as np


def transform_points(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Map block-frame points (..., 2) to the table frame for a block ``pose`` = [x, y, theta]."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    p = np.asarray(points, dtype=np.float64)
    return np.stack([c * p[..., 0] - s * p[..., 1] + pose[0], s * p[..., 0] + c * p[..., 1] + pose[1]], axis=-1)


def inverse_transform_points(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Map table-frame points (..., 2) into the frame of a block at ``pose``."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    d = np.asarray(points, dtype=np.float64) - np.asarray(pose[:2])
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


def wrap_angle(angle: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def iou(parts: tuple[np.ndarray, ...], pose_a: np.ndarray, pose_b: np.ndarray) -> float:
    """Exact intersection-over-union of one shape placed at two poses.

    The shape is a union of convex ``parts`` with disjoint interiors, so the intersection area is the sum of
    the pairwise convex intersections. Coordinates are centred on ``pose_b`` before the float32 clipping.
    """
    area = sum(abs(_shoelace(p)) for p in parts)
    origin = np.array([pose_b[0], pose_b[1], 0.0])
    a = [transform_points(p, np.asarray(pose_a) - origin).astype(np.float32) for p in parts]
    b = [transform_points(p, np.asarray(pose_b) - origin).astype(np.float32) for p in parts]
    inter = 0.0
    for pa in a:
        for pb in b:
            inter += cv2.intersectConvexConvex(pa, pb)[0]
    inter = min(inter, area)
    return float(inter / (2 * area - inter))


def _shoelace(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def point_polygon_distance(point: np.ndarray, polygon: np.ndarray) -> float:
    """Signed distance from ``point`` to a simple ``polygon`` (N, 2): negative inside."""
    inside = cv2.pointPolygonTest(polygon.astype(np.float32), (float(point[0]), float(point[1])), False) > 0
    return -_edge_distance(point, polygon) if inside else _edge_distance(point, polygon)


def _edge_distance(point: np.ndarray, polygon: np.ndarray) -> float:
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", point - a, ab) / np.einsum("ij,ij->i", ab, ab), 0.0, 1.0)
    return float(np.min(np.linalg.norm(a + t[:, None] * ab - point, axis=1)))


def segment_polygon_distance(p: np.ndarray, q: np.ndarray, polygon: np.ndarray) -> float:
    """Smallest distance between segment ``p``-``q`` and the boundary or inside of ``polygon`` (0 if they meet)."""
    if point_polygon_distance(p, polygon) <= 0 or point_polygon_distance(q, polygon) <= 0:
        return 0.0
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    best = math.inf
    for i in range(len(a)):
        best = min(best, _segment_segment_distance(p, q, a[i], b[i]))
    return best


def _segment_segment_distance(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    if _segments_cross(p, q, a, b):
        return 0.0
    return min(_point_segment(p, a, b), _point_segment(q, a, b), _point_segment(a, p, q), _point_segment(b, p, q))


def _point_segment(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    denom = float(ab @ ab)
    t = 0.0 if denom == 0 else min(1.0, max(0.0, float((x - a) @ ab) / denom))
    return float(np.linalg.norm(a + t * ab - x))


def _segments_cross(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    def orient(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> float:
        return float((v[0] - u[0]) * (w[1] - u[1]) - (v[1] - u[1]) * (w[0] - u[0]))

    d1, d2 = orient(a, b, p), orient(a, b, q)
    d3, d4 = orient(p, q, a), orient(p, q, b)
    return d1 * d2 < 0 and d3 * d4 < 0
