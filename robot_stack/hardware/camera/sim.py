"""``SimCamera``: the simulated twin of a camera, rendering a scene at a fixed rate with a fixed latency.

A real camera exposes frame ``k`` at ``t_k`` and the host receives it ``latency`` later. The twin does the
same on the runtime clock: on a grid ``t_k = t_0 + k / fps`` it renders the scene (the state at ``t_k``),
and ``read()`` hands the frame out no earlier than ``t_k + sim_latency``, stamped ``timestamp = t_k``
(= delivery time minus the latency) and ``receive_timestamp`` = delivery time. Several frames can be in
flight when the latency exceeds a frame period. If the reader falls behind by whole periods, the skipped
grid slots are lost like a real driver queue would lose them: their frame numbers are skipped, so the
camera process counts them as dropped.

The scene comes from a renderer object with ``render() -> HxWx3 uint8 RGB`` (and optionally
``render_depth() -> HxW uint16 mm``), given at construction; the Push-T sim supplies
``robot_stack.sim.pusht.SceneRenderer``. ``TestPatternRenderer`` is the default.
"""

from __future__ import annotations

import collections
from typing import Optional, Protocol

import cv2
import numpy as np

from robot_stack.config import ConfigError
from robot_stack.hardware.camera.config import CameraConfig
from robot_stack.hardware.camera.interface import Camera, CameraTimeout, Frame
from robot_stack.runtime import now, precise_wait


class SceneRenderer(Protocol):
    """What ``SimCamera`` needs from a scene: a picklable object that renders the current view."""

    def render(self) -> np.ndarray:
        """The current view as an HxWx3 uint8 RGB image of the camera's resolution."""
        ...


class TestPatternRenderer:
    """Color bars with a bar that moves one step per render and a render counter; depth is a tilted plane."""

    __test__ = False  # not a pytest test class despite the name

    _BARS = np.array([[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0],
                      [255, 0, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]], dtype=np.uint8)

    def __init__(self, resolution: tuple[int, int] = (640, 480)):
        self.resolution = (int(resolution[0]), int(resolution[1]))
        width, height = self.resolution
        columns = self._BARS[np.arange(width) * len(self._BARS) // width]
        self._background = np.ascontiguousarray(np.broadcast_to(columns, (height, width, 3)))
        self.count = 0

    def render(self) -> np.ndarray:
        width, height = self.resolution
        image = self._background.copy()
        x = (self.count * 4) % width
        image[:, x:x + 4] = 128
        cv2.putText(image, str(self.count), (8, max(16, height // 8)), cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.4, height / 480), (255, 255, 255), 2, cv2.LINE_AA)
        self.count += 1
        return image

    def render_depth(self) -> np.ndarray:
        width, height = self.resolution
        rows = np.linspace(500, 1500, height, dtype=np.float64)[:, None]
        return np.broadcast_to(rows, (height, width)).astype(np.uint16)


class SimCamera(Camera):
    """Simulated camera implementing ``Camera`` (see the module docstring for the timing model)."""

    def __init__(self, config: CameraConfig, renderer: Optional[SceneRenderer] = None):
        if config.driver != "sim":
            raise ConfigError(f"camera '{config.name}': SimCamera needs driver: sim, got {config.driver}")
        self.config = config
        self.renderer = renderer if renderer is not None else TestPatternRenderer(config.resolution)
        self.period = 1.0 / config.fps
        self.latency = config.sim_latency
        self._pending: collections.deque[Frame] = collections.deque()
        self._t0: Optional[float] = None
        self._next_index = 0

    def open(self) -> None:
        cfg = self.config
        probe = np.asarray(self.renderer.render())
        expected = (cfg.resolution[1], cfg.resolution[0], 3)
        if probe.shape != expected or probe.dtype != np.uint8:
            raise ConfigError(f"camera '{cfg.name}': the scene renderer gives {probe.dtype} images of shape "
                              f"{probe.shape}, the camera is configured for {cfg.resolution[0]}x{cfg.resolution[1]} "
                              f"RGB (uint8 {expected}); make the renderer's resolution match")
        if cfg.depth and not hasattr(self.renderer, "render_depth"):
            raise ConfigError(f"camera '{cfg.name}': depth: true, but the scene renderer "
                              f"{type(self.renderer).__name__} renders no depth; set depth: false")
        self._pending.clear()
        self._t0 = now()
        self._next_index = 0

    def _capture(self, index: int) -> None:
        t_capture = self._t0 + index * self.period
        precise_wait(t_capture)
        depth = np.asarray(self.renderer.render_depth(), np.uint16) if self.config.depth else None
        frame = Frame(color=np.asarray(self.renderer.render()), depth=depth, timestamp=t_capture,
                      receive_timestamp=t_capture + self.latency, frame_number=index + 1)
        self._pending.append(frame)

    def read(self, timeout: float) -> Frame:
        if self._t0 is None:
            raise RuntimeError(f"camera '{self.config.name}' is not open")
        deadline = now() + timeout
        while True:
            # Slots whose successor already started were missed by a slow reader: like a driver queue of
            # one frame, keep only the newest (the skipped frame numbers show up as drops).
            self._next_index = max(self._next_index, int((now() - self._t0) / self.period))
            next_capture = self._t0 + self._next_index * self.period
            head = self._pending[0] if self._pending else None
            if head is None or next_capture <= head.receive_timestamp:
                if next_capture > deadline:
                    break
                self._capture(self._next_index)
                self._next_index += 1
                continue
            if head.receive_timestamp > deadline:
                break
            precise_wait(head.receive_timestamp)
            frame = self._pending.popleft()
            frame.receive_timestamp = now()  # the delivery time, later than scheduled if the reader was late
            return frame
        precise_wait(deadline)
        raise CameraTimeout(f"sim camera '{self.config.name}': no frame within {timeout:.3f} s")

    def close(self) -> None:
        self._pending.clear()
        self._t0 = None
