"""``SyntheticRealSense``: a D435-like camera emulated by librealsense's ``software_device``.

Frames are injected by a thread at the configured fps into real librealsense sensors, so everything
downstream — ``RealSenseCamera`` (syncer, align, timestamp domains), the recorder, the camera process — runs
the same code as with hardware. Used by the tests and ``benchmarks/camera.py``; it needs no USB device.

Injected frames are easy to check: every color pixel equals ``frame_number % 256``, depth is
``1000 + frame_number % 1000`` mm everywhere, and each frame is stamped in the ``global_time`` domain with
the host wall-clock time at injection (so its capture time on the runtime clock is the injection time).
``skip`` leaves frame numbers out (the device "dropped" them) to exercise drop counting.
"""

from __future__ import annotations

import threading
import time
from typing import Iterable, Optional

import numpy as np
import pyrealsense2 as rs

from robot_stack.runtime import now, precise_wait

MODEL = "Intel RealSense D435 (synthetic)"
FIRMWARE = "5.16.0.1"


def frame_value(frame_number: int) -> int:
    """The value of every color pixel of an injected frame."""
    return frame_number % 256


def _range(low: float, high: float, step: float, default: float) -> rs.option_range:
    # Set fields by name: the positional constructor of this pyrealsense2 build swaps step and default.
    rng = rs.option_range()
    rng.min, rng.max, rng.step, rng.default = low, high, step, default
    return rng


def _intrinsics(width: int, height: int) -> rs.intrinsics:
    intr = rs.intrinsics()
    intr.width, intr.height = width, height
    intr.fx = intr.fy = 0.95 * width  # ~ a D435 color field of view (69 deg horizontal)
    intr.ppx, intr.ppy = width / 2, height / 2
    intr.model = rs.distortion.none
    intr.coeffs = [0.0] * 5
    return intr


class SyntheticRealSense:
    """Callable device source (``RealSenseCamera(config, devices=SyntheticRealSense(...))``).

    Picklable before first use: the software device is created on the first call, in the process that uses
    it. Injection starts once a stream is started and ends after ``n_frames`` frames (default: never) or
    ``stop()``.
    """

    def __init__(self, serial: str = "SYNTH0001", resolution: tuple[int, int] = (640, 480), fps: int = 30,
                 depth: bool = False, usb_type: str = "3.2", n_frames: Optional[int] = None,
                 skip: Iterable[int] = ()):
        self.serial = serial
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.fps = int(fps)
        self.depth = depth
        self.usb_type = usb_type
        self.n_frames = n_frames
        self.skip = frozenset(skip)
        self._device: Optional[rs.software_device] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self.injected = 0  # frames injected so far (excluding skipped numbers)

    def __getstate__(self) -> dict:
        if self._device is not None:
            raise TypeError("a SyntheticRealSense cannot be pickled once its device exists")
        state = self.__dict__.copy()
        del state["_stop"], state["_thread"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _stop=threading.Event(), _thread=None)

    def __call__(self) -> list[rs.device]:
        if self._device is None:
            self._build()
            self._thread = threading.Thread(target=self._inject, name=f"synthetic-{self.serial}", daemon=True)
            self._thread.start()
        return [self._device]

    def stop(self) -> None:
        """Stop injecting (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    # -- device --------------------------------------------------------------------------------------------
    def _build(self) -> None:
        width, height = self.resolution
        dev = rs.software_device()
        for key, value in ((rs.camera_info.name, MODEL), (rs.camera_info.serial_number, self.serial),
                           (rs.camera_info.firmware_version, FIRMWARE),
                           (rs.camera_info.usb_type_descriptor, self.usb_type),
                           (rs.camera_info.product_line, "D400")):
            dev.register_info(key, value)
        color_sensor = dev.add_sensor("RGB Camera")
        color_profile = color_sensor.add_video_stream(
            self._stream(rs.stream.color, rs.format.rgb8, 3, uid=1)).as_video_stream_profile()
        color_sensor.add_option(rs.option.enable_auto_exposure, _range(0, 1, 1, 1), True)
        color_sensor.add_option(rs.option.exposure, _range(1, 10000, 1, 156), True)
        color_sensor.add_option(rs.option.gain, _range(0, 128, 1, 64), True)
        color_sensor.add_option(rs.option.enable_auto_white_balance, _range(0, 1, 1, 1), True)
        color_sensor.add_option(rs.option.white_balance, _range(2800, 6500, 10, 4600), True)
        self._sensors = [(color_sensor, color_profile, 3)]
        if self.depth:
            depth_sensor = dev.add_sensor("Stereo Module")
            depth_profile = depth_sensor.add_video_stream(
                self._stream(rs.stream.depth, rs.format.z16, 2, uid=2)).as_video_stream_profile()
            depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
            extrinsics = rs.extrinsics()
            extrinsics.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            extrinsics.translation = [0.0, 0.0, 0.0]  # co-located: aligned depth equals injected depth
            depth_profile.register_extrinsics_to(color_profile, extrinsics)
            self._sensors.append((depth_sensor, depth_profile, 2))
        self._pixels = {
            3: np.empty((height, width, 3), np.uint8),
            2: np.empty((height, width), np.uint16),
        }
        self._device = dev

    def _stream(self, kind: rs.stream, fmt: rs.format, bpp: int, uid: int) -> rs.video_stream:
        stream = rs.video_stream()
        stream.type, stream.fmt, stream.bpp, stream.index, stream.uid = kind, fmt, bpp, 0, uid
        stream.width, stream.height = self.resolution
        stream.fps = self.fps
        stream.intrinsics = _intrinsics(*self.resolution)
        return stream

    # -- injection -----------------------------------------------------------------------------------------
    def _streaming(self) -> bool:
        return all(sensor.get_active_streams() for sensor, _, _ in self._sensors)

    def _inject(self) -> None:
        while not self._streaming():
            if self._stop.wait(0.005):
                return
        period = 1.0 / self.fps
        t_next = now()
        number = 0
        while not self._stop.is_set() and (self.n_frames is None or self.injected < self.n_frames):
            precise_wait(t_next)
            t_next += period
            number += 1
            if number in self.skip:
                continue
            stamp_ms = time.time() * 1000.0
            for sensor, profile, bpp in self._sensors:
                pixels = self._pixels[bpp]
                pixels[...] = frame_value(number) if bpp == 3 else 1000 + number % 1000
                frame = rs.software_video_frame()
                frame.pixels = pixels  # copied by librealsense
                frame.bpp = bpp
                frame.stride = self.resolution[0] * bpp
                frame.timestamp = stamp_ms
                frame.domain = rs.timestamp_domain.global_time
                frame.frame_number = number
                frame.profile = profile
                if bpp == 2:
                    frame.depth_units = 0.001
                sensor.on_video_frame(frame)
            self.injected += 1
