"""``CameraProcess``: one device process per camera, publishing frames into a shared-memory ring buffer.

Ring-buffer record (``camera_spec(config)``), one per delivered frame:

====================  ==================  ==========================================================
``color``             (H, W, 3) uint8     RGB, cropped/resized to ``config.image_size``
``depth``             (H, W) uint16       millimetres aligned to color, 0 = no data (only if ``depth``)
``timestamp``         () float64          capture time on the runtime clock (alignment key)
``receive_timestamp`` () float64          when the driver received the frame (runtime clock)
``frame_number``      () int64            device frame counter (gaps = dropped frames)
``dropped_frames``    () int64            frames lost so far in this stream (cumulative)
====================  ==================  ==========================================================

``dropped_frames`` counts frame-number gaps between consecutive delivered frames — frames the device,
USB/driver queue or a slow loop lost — so a consumer sees every loss in-band, and the parent reads the
latest count with ``CameraProcess.dropped_frames``. A camera that delivers nothing for
``config.frame_timeout`` seconds fails the process (the supervisor then stops the rig). A playback source
that reaches its end logs it and idles until stopped.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Optional

import numpy as np

from robot_stack.hardware.camera.config import CameraConfig
from robot_stack.hardware.camera.image_transform import ImageTransform
from robot_stack.hardware.camera.interface import Camera, EndOfStream
from robot_stack.hardware.camera.library import load_realsense_driver
from robot_stack.hardware.camera.sim import SceneRenderer, SimCamera
from robot_stack.runtime import DeviceProcess, SharedMemoryRingBuffer, StaleDataError

if TYPE_CHECKING:
    from robot_stack.hardware.camera.realsense import DeviceSource

log = logging.getLogger(__name__)

_IDLE_S = 0.05


def camera_spec(config: CameraConfig) -> dict[str, tuple[tuple[int, ...], type]]:
    """The ring-buffer record spec of a camera (see the module docstring)."""
    width, height = config.image_size
    spec: dict[str, tuple[tuple[int, ...], type]] = {"color": ((height, width, 3), np.uint8)}
    if config.depth:
        spec["depth"] = ((height, width), np.uint16)
    spec.update({
        "timestamp": ((), np.float64),
        "receive_timestamp": ((), np.float64),
        "frame_number": ((), np.int64),
        "dropped_frames": ((), np.int64),
    })
    return spec


def make_camera(config: CameraConfig, renderer: Optional[SceneRenderer] = None,
                devices: Optional[DeviceSource] = None) -> Camera:
    """The ``Camera`` for ``config.driver``: ``SimCamera(renderer)`` or ``RealSenseCamera(devices)``."""
    if config.driver == "sim":
        return SimCamera(config, renderer)
    realsense = load_realsense_driver(needed_by=f"camera '{config.name}' (driver: realsense)")
    return realsense.RealSenseCamera(config, devices)


class CameraProcess(DeviceProcess):
    """Runs one camera in its own process; frames land in ``self.frames`` (a ``SharedMemoryRingBuffer``).

    ``renderer`` (sim) and ``devices`` (realsense; default: USB devices) are passed to the child, so they
    must be picklable; a ``devices`` source with a ``stop()`` method (``SyntheticRealSense``) is stopped at
    teardown. The process is named ``camera_<config.name>``.
    """

    def __init__(self, config: CameraConfig, renderer: Optional[SceneRenderer] = None,
                 devices: Optional[DeviceSource] = None, capacity: Optional[int] = None):
        super().__init__(name=f"camera_{config.name}")
        self.config = config
        self.renderer = renderer
        self.devices = devices
        self.frames = self.own(SharedMemoryRingBuffer.create(camera_spec(config), capacity or config.buffer_capacity))

    @property
    def dropped_frames(self) -> int:
        """Frames lost so far, as of the latest published frame (0 before the first)."""
        try:
            return int(self.frames.get()["dropped_frames"])
        except StaleDataError:
            return 0

    # -- child ---------------------------------------------------------------------------------------------
    def setup(self) -> None:
        self._camera = make_camera(self.config, self.renderer, self.devices)
        self._camera.open()
        self._transform = ImageTransform(self.config)
        self._last_number: Optional[int] = None
        self._dropped = 0
        self._ended = False

    def step(self) -> None:
        if self._ended:
            time.sleep(_IDLE_S)
            return
        try:
            frame = self._camera.read(timeout=self.config.frame_timeout)
        except EndOfStream as exc:
            log.info("%s; %d frames published, %d dropped", exc, self.frames.count, self._dropped)
            self._ended = True
            return
        if self._last_number is not None:
            self._dropped += max(0, frame.frame_number - self._last_number - 1)
        self._last_number = frame.frame_number
        record = {
            "color": self._transform.color(frame.color),
            "timestamp": frame.timestamp,
            "receive_timestamp": frame.receive_timestamp,
            "frame_number": frame.frame_number,
            "dropped_frames": self._dropped,
        }
        if self.config.depth:
            record["depth"] = self._transform.depth(frame.depth)
        self.frames.put(record)

    def teardown(self) -> None:
        camera = getattr(self, "_camera", None)
        if camera is not None:
            camera.close()
        stop = getattr(self.devices, "stop", None)
        if callable(stop):
            stop()  # a synthetic device's injector thread
