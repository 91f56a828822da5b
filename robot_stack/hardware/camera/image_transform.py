"""Crop-then-resize from the captured frame to the image stored in the ring buffer (the policy's input)."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from robot_stack.hardware.camera.config import CameraConfig


class ImageTransform:
    """Applies a config's ``crop`` and ``output_resolution`` to color (area/linear) and depth (nearest)."""

    def __init__(self, config: CameraConfig):
        self.crop = config.crop
        self.size = config.image_size  # (width, height)

    def _crop(self, image: np.ndarray) -> np.ndarray:
        if self.crop is None:
            return image
        x, y, w, h = self.crop
        return image[y:y + h, x:x + w]

    def color(self, image: np.ndarray) -> np.ndarray:
        image = self._crop(image)
        if (image.shape[1], image.shape[0]) == self.size:
            return image
        # INTER_AREA averages when shrinking (no aliasing); it degrades to bilinear when enlarging.
        return cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)

    def depth(self, depth: Optional[np.ndarray]) -> Optional[np.ndarray]:
        if depth is None:
            return None
        depth = self._crop(depth)
        if (depth.shape[1], depth.shape[0]) == self.size:
            return depth
        # Nearest: averaging depth across an object edge would invent surfaces that do not exist.
        return cv2.resize(depth, self.size, interpolation=cv2.INTER_NEAREST)
