"""``CameraConfig``: one entry of a rig YAML's ``cameras:`` list.

Example (a real D435 and its simulated twin)::

    cameras:
      - {name: wrist, driver: realsense, serial: "123456789012", resolution: [640, 480], fps: 30,
         exposure: 156, white_balance: auto, output_resolution: [320, 240]}
      - {name: top, driver: sim, resolution: [640, 480], fps: 30, sim_latency: 0.05}

The image written to the camera's ring buffer (and recorded to video) is the captured frame, cropped by
``crop`` (capture pixels) and then resized to ``output_resolution``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

from robot_stack.config import ConfigError

Auto = Literal["auto"]


@dataclass(frozen=True)
class CameraConfig:
    """How to open one camera and what its ring buffer holds."""

    name: str
    driver: Literal["sim", "realsense"] = "sim"
    # RealSense serial number (``robot-stack cameras`` lists them); optional when ``playback_file`` is set.
    serial: Optional[str] = None
    resolution: tuple[int, int] = (640, 480)  # capture [width, height]
    fps: int = 30
    depth: bool = False  # also stream depth, aligned to the color image (uint16 millimetres)
    # Color sensor controls: "auto" or a fixed value in the device's units (the error names the valid range).
    exposure: Union[Auto, float] = "auto"
    gain: Optional[float] = None  # only applied with a fixed exposure
    white_balance: Union[Auto, float] = "auto"  # Kelvin when fixed
    # Replay a librealsense recording (.db3) instead of a live device; in real time unless told otherwise.
    playback_file: Optional[Path] = None
    playback_real_time: bool = True
    # Also record the raw librealsense stream of a live device to this .db3 file.
    record_file: Optional[Path] = None
    # Post-processing for the ring buffer / policy: crop [x, y, width, height] in capture pixels, then resize.
    crop: Optional[tuple[int, int, int, int]] = None
    output_resolution: Optional[tuple[int, int]] = None  # [width, height]; default: crop size or resolution
    sim_latency: float = 0.03  # sim: seconds from capture to frame availability
    frame_timeout: float = 5.0  # seconds without a frame before the camera process fails
    buffer_seconds: float = 2.0  # ring-buffer history (capacity = fps * buffer_seconds frames)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"camera name {self.name!r} must be non-empty letters, digits, '_' or '-'")
        where = f"camera '{self.name}'"
        width, height = self.resolution
        if width <= 0 or height <= 0:
            raise ConfigError(f"{where}: resolution must be positive [width, height], got {list(self.resolution)}")
        if not 1 <= self.fps <= 300:
            raise ConfigError(f"{where}: fps must be in [1, 300], got {self.fps}")
        for key in ("exposure", "white_balance", "gain"):
            value = getattr(self, key)
            if value not in (None, "auto") and value <= 0:
                raise ConfigError(f"{where}: {key} must be 'auto' or a positive number, got {value!r}")
        if self.gain is not None and self.exposure == "auto":
            raise ConfigError(f"{where}: gain is only used with a fixed exposure; set exposure to a number")
        if self.driver == "realsense":
            if self.serial is None and self.playback_file is None:
                raise ConfigError(f"{where}: a realsense camera needs 'serial' (see `robot-stack cameras`) "
                                  "or 'playback_file'")
            if self.playback_file is not None and self.record_file is not None:
                raise ConfigError(f"{where}: record_file records a live device; it cannot be used with playback_file")
            for key in ("playback_file", "record_file"):
                path = getattr(self, key)
                if path is not None and Path(path).suffix != ".db3":
                    raise ConfigError(f"{where}: {key} must be a librealsense .db3 file, got {str(path)!r}")
        else:
            for key in ("serial", "playback_file", "record_file"):
                if getattr(self, key) is not None:
                    raise ConfigError(f"{where}: '{key}' is only for driver: realsense (this camera is driver: sim)")
        if self.crop is not None:
            x, y, w, h = self.crop
            if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
                raise ConfigError(f"{where}: crop {list(self.crop)} ([x, y, width, height]) must lie inside the "
                                  f"{width}x{height} capture")
        out_w, out_h = self.image_size
        if out_w <= 0 or out_h <= 0 or out_w % 2 or out_h % 2:
            raise ConfigError(f"{where}: the output image size must be positive and even (H.264 video needs "
                              f"even sizes), got {out_w}x{out_h}; adjust output_resolution or crop")
        if self.sim_latency < 0:
            raise ConfigError(f"{where}: sim_latency must be >= 0, got {self.sim_latency}")
        if self.frame_timeout <= 0 or self.buffer_seconds <= 0:
            raise ConfigError(f"{where}: frame_timeout and buffer_seconds must be positive")

    @property
    def image_size(self) -> tuple[int, int]:
        """[width, height] of the image in the ring buffer (after crop and resize)."""
        if self.output_resolution is not None:
            return (int(self.output_resolution[0]), int(self.output_resolution[1]))
        if self.crop is not None:
            return (int(self.crop[2]), int(self.crop[3]))
        return (int(self.resolution[0]), int(self.resolution[1]))

    def frame_setup(self) -> dict:
        """What this camera's frames are, as plain data for a dataset's attributes."""
        return {"name": self.name, "driver": self.driver, "resolution": list(self.resolution),
                "crop": None if self.crop is None else list(self.crop), "image_size": list(self.image_size),
                "fps": self.fps}

    @property
    def buffer_capacity(self) -> int:
        """Ring-buffer capacity in frames."""
        return max(8, int(round(self.fps * self.buffer_seconds)))
