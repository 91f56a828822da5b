"""Coverage (IoU) and distance helpers of the block geometry."""

import numpy as np
import pytest

from robot_stack.sim.pusht import SceneConfig
from robot_stack.sim.pusht.geometry import iou, point_polygon_distance, segment_clearance, transform_points

CFG = SceneConfig()


def test_iou_is_one_at_the_same_pose_and_zero_apart():
    pose = np.array([0.05, -0.02, 0.7])
    assert iou(CFG.block_parts, pose, pose) == pytest.approx(1.0, abs=1e-5)
    assert iou(CFG.block_parts, pose + (0.3, 0.0, 0.0), pose) == 0.0


@pytest.mark.parametrize("d", [0.002, 0.01, 0.025])
def test_iou_of_a_sideways_shift_matches_the_closed_form(d):
    # Shifted along the bar by d < thickness: the bars overlap (L - d) * t, the stems (t - d) * s, nothing else.
    length, t, s = CFG.bar_length, CFG.bar_thickness, CFG.stem_length
    area = length * t + t * s
    inter = (length - d) * t + (t - d) * s
    expected = inter / (2 * area - inter)
    got = iou(CFG.block_parts, np.array([d, 0.0, 0.0]), np.zeros(3))
    assert got == pytest.approx(expected, rel=1e-4)


def test_iou_of_a_half_turn_is_partial():
    # Upside down, the T shares only the stem/bar crossing region: well below 1, above 0.
    value = iou(CFG.block_parts, np.array([0.0, 0.0, np.pi]), np.zeros(3))
    assert 0.05 < value < 0.5


def test_distances():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    assert point_polygon_distance(np.array([0.5, 0.25]), square) == pytest.approx(-0.25)
    assert point_polygon_distance(np.array([2.0, 0.5]), square) == pytest.approx(1.0)
    clear = segment_clearance(np.array([[-1, 0.5], [-1, 2], [-1, -1], [0.2, 0.2]]),
                              np.array([[2, 0.5], [2, 2], [-0.5, -0.5], [0.8, 0.8]]), square)
    assert np.allclose(clear, [0.0, 1.0, np.sqrt(0.5), 0.0])  # crossing, parallel above, corner, inside


def test_iou_near_the_goal_is_stable():
    """Nearly coincident polygons are where generic clippers fail; success is decided exactly there."""
    goal = np.asarray(CFG.goal_pose)
    rng = np.random.default_rng(0)
    for scale in (1e-12, 1e-9, 1e-6):
        for _ in range(200):
            value = iou(CFG.block_parts, goal + rng.normal(0, scale, 3), goal)
            assert 0.999 < value <= 1.0


def test_iou_matches_a_rasterised_reference():
    import cv2

    def raster_iou(pose_a, pose_b, px_per_m=8000, size=0.3):
        masks = []
        for pose in (pose_a, pose_b):
            mask = np.zeros((int(size * px_per_m),) * 2, np.uint8)
            for part in CFG.block_parts:
                pts = np.round((transform_points(part, pose) + size / 2) * px_per_m * 16).astype(np.int32)
                cv2.fillPoly(mask, [pts], 1, shift=4)
            masks.append(mask.astype(bool))
        return (masks[0] & masks[1]).sum() / (masks[0] | masks[1]).sum()

    goal = np.asarray(CFG.goal_pose)
    rng = np.random.default_rng(1)
    for scale in (1e-4, 1e-3, 1e-2, 3e-2):
        pose = goal + rng.normal(0, scale, 3) * (1, 1, 3)
        assert iou(CFG.block_parts, pose, goal) == pytest.approx(raster_iou(pose, goal), abs=0.005)
