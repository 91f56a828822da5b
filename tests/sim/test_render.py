"""Scene rendering: image format, what is drawn where, speed, and the picklable ring-buffer renderer."""

import pickle
import time

import numpy as np
import pytest

from robot_stack.runtime import SharedMemoryRingBuffer
from robot_stack.sim.pusht import SCENE_STATE_SPEC, PushTPhysics, SceneConfig, SceneRenderer, render
from robot_stack.sim.pusht.render import BLOCK, BLOCK_SIDE, GOAL, PUSHER, PUSHER_LIFTED, TABLE, _Painter

CFG = SceneConfig()


def _state(block_pose, pusher_xy, down=True):
    physics = PushTPhysics(CFG)
    physics.set_pose(np.asarray(block_pose, dtype=float), np.asarray(pusher_xy, dtype=float))
    state = physics.state()
    state["pusher_down"] = np.bool_(down)
    return state


def _pixel(xy, resolution=(640, 480)):
    """Top view: image up = table +x, image right = table -y; the table fills the image height."""
    w, h = resolution
    scale = (h - 12) / CFG.table_size[0]
    return int(round(h / 2 - xy[0] * scale)), int(round(w / 2 - xy[1] * scale))  # row, column


@pytest.mark.parametrize("view", ["top", "oblique"])
@pytest.mark.parametrize("resolution", [(640, 480), (320, 240)])
def test_image_format(view, resolution):
    img = render(CFG, _state([0.1, 0.1, 0.3], [-0.1, -0.1]), view, resolution)
    assert img.shape == (resolution[1], resolution[0], 3) and img.dtype == np.uint8
    assert img.flags.c_contiguous


def test_top_view_draws_block_goal_pusher_and_table_in_place():
    block = np.array([0.12, -0.1, 0.0])
    tip = np.array([-0.15, 0.15])
    img = render(CFG, _state(block, tip), "top")
    assert tuple(img[_pixel(block[:2])]) == BLOCK
    assert tuple(img[_pixel(CFG.goal_pose[:2])]) == GOAL
    assert tuple(img[_pixel(tip)]) == PUSHER
    assert tuple(img[_pixel([-0.2, -0.2])]) == TABLE
    lifted = render(CFG, _state(block, tip, down=False), "top")
    assert tuple(lifted[_pixel(tip)]) == PUSHER_LIFTED
    # The block covers the goal when it is there.
    at_goal = render(CFG, _state(CFG.goal_pose, tip), "top")
    assert tuple(at_goal[_pixel(CFG.goal_pose[:2])]) == BLOCK


def test_views_change_with_the_state():
    a, b = _state([0.1, 0.1, 0.3], [-0.1, -0.1]), _state([0.1, -0.1, 1.0], [-0.1, -0.1])
    for view in ("top", "oblique"):
        diff = np.any(render(CFG, a, view) != render(CFG, b, view), axis=-1)
        assert 200 < diff.sum() < 0.2 * diff.size, view  # the block moved; most of the image did not


def test_the_oblique_view_paints_only_the_faces_toward_its_camera():
    painter = _Painter(CFG, "oblique", (320, 240))
    box = np.array([[-0.02, -0.02], [0.02, -0.02], [0.02, 0.02], [-0.02, 0.02]])  # counter-clockwise
    faces = painter._prism_faces(box, [box], 0.0, 0.03, BLOCK_SIDE, BLOCK)
    # the camera looks from beyond the table's +x edge along its centre line: of the four sides only the +x
    # one faces it (the +-y sides are edge-on), and the top
    assert [color for _, _, color in faces] == [BLOCK_SIDE, BLOCK]
    side = faces[0][1] / 16.0  # polygons are in 1/16 px (4 sub-pixel bits)
    near = painter._project(np.array([[0.02, 0.0, 0.0]]))[0]
    assert np.allclose(side.mean(axis=0)[0], near[0], atol=1.0)  # centred on the +x side, in image columns
    assert faces[0][0] < faces[1][0]  # the side is nearer the camera than the top's centre


def test_empty_table_before_any_state():
    img = render(CFG, None, "top")
    assert tuple(img[_pixel(CFG.goal_pose[:2])]) == GOAL
    assert not np.any(np.all(img == BLOCK, axis=-1))


def test_rendering_is_fast():
    state = _state([0.1, 0.1, 0.3], [-0.1, -0.1])
    for view in ("top", "oblique"):
        renderer = SceneRenderer(CFG, None, view)
        renderer.render(state)
        start = time.perf_counter()
        for _ in range(50):
            renderer.render(state)
        per_frame = (time.perf_counter() - start) / 50
        assert per_frame < 0.01, f"{view}: {per_frame * 1e3:.1f} ms per 640x480 frame"  # measured well under 1 ms


def test_renderer_pickles_and_renders_the_latest_published_state():
    with SharedMemoryRingBuffer.create(SCENE_STATE_SPEC, capacity=8) as buffer:
        renderer = SceneRenderer(CFG, buffer, "top", (320, 240))
        clone = pickle.loads(pickle.dumps(renderer))
        assert len(pickle.dumps(renderer)) < 10_000  # a handle, not pre-drawn images
        empty = clone.render()
        assert not np.any(np.all(empty == BLOCK, axis=-1))
        state = _state([0.12, -0.1, 0.0], [-0.15, 0.15])
        buffer.put(state)
        img = clone.render()
        assert tuple(img[_pixel([0.12, -0.1], (320, 240))]) == BLOCK
        assert np.array_equal(img, render(CFG, state, "top", (320, 240)))


def test_bad_view_or_resolution():
    with pytest.raises(ValueError, match="unknown scene view 'side'"):
        SceneRenderer(CFG, None, "side")
    with pytest.raises(ValueError, match="too small"):
        SceneRenderer(CFG, None, "top", (8, 8))
