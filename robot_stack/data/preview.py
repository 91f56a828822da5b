"""``Preview``: the live camera window of ``collect`` — every camera side by side, status text, typed keys.

``compose_preview`` builds the image (pure numpy/cv2, testable without a display); ``Preview`` shows it with
OpenCV's HighGUI and returns the keys typed into the window. ``display_available`` tells whether a window
can be opened at all (no X11/Wayland display: run without a preview, keys come from the terminal).
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import cv2
import numpy as np

from robot_stack.runtime import SharedMemoryRingBuffer

_ROW_HEIGHT = 22
_MAX_KEYS_PER_UPDATE = 8


def display_available() -> bool:
    """True if a GUI window can be opened (an X11 or Wayland display on Linux)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def compose_preview(frames: Sequence[np.ndarray | None], status: Sequence[str], height: int = 360) -> np.ndarray:
    """BGR image: ``frames`` (RGB, any sizes; ``None`` = no frame yet) scaled to ``height`` side by side,
    with ``status`` lines on a dark band at the top."""
    tiles = []
    for frame in frames or [None]:
        if frame is None:
            tile = np.zeros((height, height * 4 // 3, 3), np.uint8)
            cv2.putText(tile, "no frame", (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2)
        else:
            width = max(1, round(frame.shape[1] * height / frame.shape[0]))
            tile = cv2.cvtColor(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
        tiles.append(tile)
    image = np.hstack(tiles)
    band = _ROW_HEIGHT * len(status) + 6 if status else 0
    image[:band] = (image[:band] * 0.35).astype(np.uint8)
    for i, line in enumerate(status):
        color = (0, 0, 255) if line.startswith("REC") else (255, 255, 255)
        cv2.putText(image, line, (8, _ROW_HEIGHT * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, 1, cv2.LINE_AA)
    return image


class Preview:
    """An OpenCV window showing the latest frame of each camera plus status lines."""

    def __init__(self, cameras: Sequence[SharedMemoryRingBuffer], title: str = "robot-stack collect"):
        self.cameras = list(cameras)
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def update(self, status: Sequence[str]) -> list[str]:
        """Redraw and return the keys typed since the last update (characters, e.g. ``'c'``, ``'\\x1b'``)."""
        frames = [cam.get()["color"] if cam.count else None for cam in self.cameras]
        cv2.imshow(self.title, compose_preview(frames, status))
        keys = []
        for _ in range(_MAX_KEYS_PER_UPDATE):
            code = cv2.waitKey(1)
            if code < 0:
                break
            keys.append(chr(code & 0xFF))
        return keys

    def close(self) -> None:
        """Close the window."""
        cv2.destroyWindow(self.title)
        cv2.waitKey(1)
