"""The interface every camera implements (real RealSense and simulated twin), and its errors."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Optional

import numpy as np

from robot_stack.config import ConfigError


@dataclass
class Frame:
    """One captured frame.

    ``timestamp`` is the capture time on the runtime clock (``robot_stack.runtime.now()``), i.e. when the
    image was exposed, not when it arrived; ``receive_timestamp`` is when the driver got it (same clock).
    ``frame_number`` counts frames produced by the device: a gap means frames were dropped.
    """

    color: np.ndarray  # HxWx3 uint8 RGB
    timestamp: float
    receive_timestamp: float
    frame_number: int
    depth: Optional[np.ndarray] = None  # HxW uint16 millimetres, aligned to color (0 = no data)


class CameraError(RuntimeError):
    """A camera failed while streaming (stopped delivering frames, device lost)."""


class CameraTimeout(CameraError):
    """No frame arrived within the timeout."""


class EndOfStream(CameraError):
    """A playback source has no more frames."""


class CameraNotFoundError(ConfigError):
    """The configured camera serial is not connected; the message lists what is."""


class UnsupportedStreamError(ConfigError):
    """The device cannot stream the configured resolution/fps/format; the message lists what it can."""


class Camera(abc.ABC):
    """A source of timestamped frames. Usage: ``open()``, ``read()`` repeatedly, ``close()`` (or ``with``)."""

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and start streaming. Raises ``ConfigError`` subclasses for bad configuration."""

    @abc.abstractmethod
    def read(self, timeout: float) -> Frame:
        """Block until the next frame; raise ``CameraTimeout`` after ``timeout`` s, ``EndOfStream`` at the end."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop streaming and release the device (idempotent)."""

    def __enter__(self) -> "Camera":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
