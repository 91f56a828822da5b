"""Drawing the Push-T scene as a camera image: a top view and an oblique perspective view, with OpenCV.

``render(config, state, view)`` is a pure function of a scene-state record. ``SceneRenderer`` wraps it for
the simulated camera twin: it pickles as a small handle (config, view, resolution and the scene's state ring
buffer) and renders the latest published state in whatever process it is used in.
"""

from __future__ import annotations

import math
from typing import Literal, Mapping

import cv2
import numpy as np

from robot_stack.runtime import SharedMemoryRingBuffer, StaleDataError
from robot_stack.sim.pusht.config import SceneConfig
from robot_stack.sim.pusht.geometry import transform_points

View = Literal["top", "oblique"]
VIEWS: tuple[str, ...] = ("top", "oblique")

# RGB colors.
BACKGROUND = (40, 40, 40)
TABLE = (232, 232, 226)
WALL = (90, 90, 90)
GOAL = (144, 238, 144)
BLOCK = (119, 136, 153)
BLOCK_SIDE = (88, 102, 117)
PUSHER = (65, 105, 225)
PUSHER_LIFTED = (160, 180, 240)
SHADOW = (200, 200, 194)

_SHIFT = 4  # sub-pixel bits for cv2 drawing: smooth motion instead of 1-px jumps
_SCALE = float(1 << _SHIFT)
_WALL_PX = 6
_CIRCLE_SIDES = 24
# Oblique camera: in front of the table's far (+x) edge, looking back and down at the table centre.
_OBLIQUE_EYE = np.array([0.65, 0.0, 0.55])
_OBLIQUE_FOV_DEG = 55.0


def render(config: SceneConfig, state: Mapping[str, np.ndarray] | None, view: View = "top",
           resolution: tuple[int, int] = (640, 480)) -> np.ndarray:
    """Render ``state`` (a scene-state record, or None for the empty table) as an HxWx3 uint8 RGB image."""
    return _Painter(config, view, resolution).draw(state)


class SceneRenderer:
    """Renders the latest scene state from a ring buffer; picklable, so it can be built in the parent and used
    in a camera process. ``render()`` returns an HxWx3 uint8 RGB image (the empty table before the first state).
    """

    def __init__(self, config: SceneConfig, state_buffer: SharedMemoryRingBuffer | None, view: View = "top",
                 resolution: tuple[int, int] = (640, 480)):
        self.config = config
        self.view = view
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.state_buffer = state_buffer
        self._painter: _Painter | None = _Painter(config, view, self.resolution)  # validates view/resolution

    def __getstate__(self) -> dict:
        # The painter holds pre-drawn images; rebuild it where the renderer is used instead of shipping it.
        return {**self.__dict__, "_painter": None}

    def render(self, state: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Render ``state``, or (by default) the latest state published in the ring buffer."""
        if self._painter is None:
            self._painter = _Painter(self.config, self.view, self.resolution)
        if state is None and self.state_buffer is not None:
            try:
                state = self.state_buffer.get()
            except StaleDataError:
                state = None  # nothing published yet: show the empty table
        return self._painter.draw(state)


class _Painter:
    """Pre-draws the static background of one view and paints block and pusher on a copy of it."""

    def __init__(self, config: SceneConfig, view: View, resolution: tuple[int, int]):
        if view not in VIEWS:
            raise ValueError(f"unknown scene view {view!r}; use one of {list(VIEWS)}")
        if min(resolution) < 16:
            raise ValueError(f"render resolution {list(resolution)} is too small (min 16 px a side)")
        self.config = config
        self.view = view
        self.width, self.height = int(resolution[0]), int(resolution[1])
        self._outline = config.block_outline
        self._parts = config.block_parts
        self._circle = np.stack(
            [np.cos(np.linspace(0, 2 * math.pi, _CIRCLE_SIDES, endpoint=False)),
             np.sin(np.linspace(0, 2 * math.pi, _CIRCLE_SIDES, endpoint=False))], axis=1
        ) * config.pusher_radius
        if view == "top":
            half = np.asarray(config.table_size) / 2
            # Image up = table +x, image right = table -y (a camera above, the robot at the bottom edge).
            self._px_per_m = min((self.width - 2 * _WALL_PX) / (2 * half[1]),
                                 (self.height - 2 * _WALL_PX) / (2 * half[0]))
        else:
            self._setup_oblique()
        self._background = self._draw_background()

    # -- projection ----------------------------------------------------------------------------------------
    def _setup_oblique(self) -> None:
        half = np.asarray(self.config.table_size) / 2
        eye = _OBLIQUE_EYE * np.array([half[0] / 0.25, half[1] / 0.25, max(half) / 0.25])
        forward = -eye / np.linalg.norm(eye)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        self._rotation = np.stack([right, down, forward])  # rows: camera axes in the table frame
        self._eye = eye
        self._focal = 0.5 * self.width / math.tan(math.radians(_OBLIQUE_FOV_DEG) / 2)

    def _project(self, xyz: np.ndarray) -> np.ndarray:
        """Table-frame points (N, 3) (or (N, 2) on the table) to pixel coordinates (N, 2) as floats."""
        xyz = np.asarray(xyz, dtype=np.float64)
        if xyz.shape[-1] == 2:
            xyz = np.concatenate([xyz, np.zeros((*xyz.shape[:-1], 1))], axis=-1)
        if self.view == "top":
            return np.stack([self.width / 2 - xyz[:, 1] * self._px_per_m,
                             self.height / 2 - xyz[:, 0] * self._px_per_m], axis=1)
        cam = (xyz - self._eye) @ self._rotation.T
        return np.stack([self.width / 2 + self._focal * cam[:, 0] / cam[:, 2],
                         self.height / 2 + self._focal * cam[:, 1] / cam[:, 2]], axis=1)

    def _fill(self, img: np.ndarray, pixels: np.ndarray, color: tuple[int, int, int]) -> None:
        pts = np.round(pixels * _SCALE).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(img, [pts], color, lineType=cv2.LINE_AA, shift=_SHIFT)

    # -- drawing -------------------------------------------------------------------------------------------
    def _draw_background(self) -> np.ndarray:
        img = np.empty((self.height, self.width, 3), dtype=np.uint8)
        img[:] = BACKGROUND
        hx, hy = np.asarray(self.config.table_size) / 2
        table = np.array([[hx, hy], [-hx, hy], [-hx, -hy], [hx, -hy]])
        if self.view == "top":
            wall = _WALL_PX / self._px_per_m
            self._fill(img, self._project(table * ((hx + wall) / hx, (hy + wall) / hy)), WALL)
        self._fill(img, self._project(table), TABLE)
        goal = np.asarray(self.config.goal_pose)
        for part in self._parts:
            self._fill(img, self._project(transform_points(part, goal)), GOAL)
        return img

    def draw(self, state: Mapping[str, np.ndarray] | None) -> np.ndarray:
        img = self._background.copy()
        if state is None:
            return img
        pose = np.asarray(state["block_pose"], dtype=np.float64)
        pusher_xy = np.asarray(state["pusher_xy"], dtype=np.float64)
        down = bool(state["pusher_down"])
        pusher_color = PUSHER if down else PUSHER_LIFTED
        if self.view == "top":
            for part in self._parts:
                self._fill(img, self._project(transform_points(part, pose)), BLOCK)
            self._fill(img, self._project(self._circle + pusher_xy), pusher_color)
            return img
        self._draw_oblique(img, pose, pusher_xy, down, pusher_color)
        return img

    def _draw_oblique(self, img: np.ndarray, pose: np.ndarray, pusher_xy: np.ndarray, down: bool,
                      pusher_color: tuple[int, int, int]) -> None:
        """Painter's algorithm over the faces of the block and the pusher that face the camera, farthest first.

        Back faces are culled: on a closed prism they are always covered by its front faces and top, and
        skipping them halves the fills (this runs for every oblique frame of a lockstep episode).
        """
        h = self.config.contact_height
        pusher = self._circle + pusher_xy
        faces = self._prism_faces(transform_points(self._outline, pose),
                                  [transform_points(p, pose) for p in self._parts], 0.0, h, BLOCK_SIDE, BLOCK)
        if not down:
            # The lifted tip hovers a block height up; its shadow keeps its table position readable.
            self._fill(img, self._project(pusher), SHADOW)
        faces += self._prism_faces(pusher, [pusher], 0.0 if down else h, h, pusher_color, pusher_color)
        faces.sort(key=lambda face: -face[0])
        for _, points, color in faces:
            cv2.fillPoly(img, [points], color, lineType=cv2.LINE_AA, shift=_SHIFT)

    def _prism_faces(self, outline: np.ndarray, tops: list[np.ndarray], base: float, height: float,
                     side: tuple[int, int, int], top: tuple[int, int, int]
                     ) -> list[tuple[float, np.ndarray, tuple[int, int, int]]]:
        """The camera-facing side quads over the counter-clockwise table-frame ``outline`` and the convex
        ``tops`` of a prism from ``base`` to ``base + height``: (depth, sub-pixel polygon, color) each."""
        a, b = outline, np.roll(outline, -1, axis=0)
        outward = np.stack([b[:, 1] - a[:, 1], a[:, 0] - b[:, 0]], axis=1)  # counter-clockwise: right of a->b
        facing = np.einsum("ij,ij->i", outward, self._eye[:2] - (a + b) / 2) > 0
        a, b = a[facing], b[facing]
        n = len(a)
        quads = np.empty((n, 4, 3))
        quads[:, 0, :2], quads[:, 1, :2], quads[:, 2, :2], quads[:, 3, :2] = a, b, b, a
        quads[:, :2, 2], quads[:, 2:, 2] = base, base + height
        polygons = [quads.reshape(-1, 3)] + [np.column_stack([poly, np.full(len(poly), base + height)])
                                             for poly in tops]
        xyz = np.concatenate(polygons)
        points = np.round(self._project(xyz) * _SCALE).astype(np.int32)
        depth = (xyz - self._eye) @ self._rotation[2]
        faces = [(float(depth[4 * i:4 * i + 4].mean()), points[4 * i:4 * i + 4], side) for i in range(n)]
        start = 4 * n
        for poly in tops:
            end = start + len(poly)
            faces.append((float(depth[start:end].mean()), points[start:end], top))
            start = end
        return faces
