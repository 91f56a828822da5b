"""``FrameSpool``: the queue between a video recorder's reader and its encoder, spilling to disk.

The reader copies frames out of the camera's ring buffer as they come (cheap); the encoder takes them when
it can (expensive). When encoding falls behind, frames wait here instead of being overwritten in the ring
buffer: the first ``ram_frames`` in memory, the rest appended raw to a file next to the video, read back
in order and encoded later (the file is emptied whenever the encoder catches up, and removed at the end).
So a slow encoder costs disk space and a later finish, never frames. One producer, one consumer.
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path

import numpy as np


class FrameSpool:
    """FIFO of (frame, timestamp) for frames of one ``shape`` (uint8); see the module docstring."""

    def __init__(self, shape: tuple[int, ...], path: Path, ram_frames: int):
        self.shape = tuple(shape)
        self.path = path
        self.ram_frames = max(1, int(ram_frames))
        self._frame_bytes = int(np.prod(self.shape))
        self._ram: collections.deque[tuple[np.ndarray, float]] = collections.deque()
        self._disk_times: collections.deque[float] = collections.deque()
        self._file = None
        self._read_at = 0  # byte offset of the oldest frame on disk
        self._cond = threading.Condition()
        self._closed = False
        self.spilled = 0  # frames that went through the disk file
        self.max_backlog = 0  # most frames waiting at once

    def __len__(self) -> int:
        with self._cond:
            return len(self._ram) + len(self._disk_times)

    def put(self, frame: np.ndarray, timestamp: float) -> None:
        """Queue one frame (the reader's side; never blocks on the encoder)."""
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if frame.shape != self.shape:
            raise ValueError(f"frame of shape {frame.shape} in a spool of {self.shape}")
        with self._cond:
            if self._disk_times or len(self._ram) >= self.ram_frames:  # behind: keep the order, spill
                if self._file is None:
                    self._file = open(self.path, "w+b")  # noqa: SIM115 - held until the spool closes
                self._file.seek(0, os.SEEK_END)
                self._file.write(frame.tobytes())
                self._disk_times.append(float(timestamp))
                self.spilled += 1
            else:
                self._ram.append((frame.copy(), float(timestamp)))
            self.max_backlog = max(self.max_backlog, len(self._ram) + len(self._disk_times))
            self._cond.notify()

    def get(self, timeout: float) -> tuple[np.ndarray, float] | None:
        """The oldest frame, waiting up to ``timeout`` s; None if there is none (or the spool was closed)."""
        with self._cond:
            if not self._ram and not self._disk_times and not self._closed:
                self._cond.wait(timeout)
            if self._ram:
                return self._ram.popleft()
            if not self._disk_times:
                return None
            self._file.flush()
            self._file.seek(self._read_at)
            data = self._file.read(self._frame_bytes)
            self._read_at += self._frame_bytes
            timestamp = self._disk_times.popleft()
            if not self._disk_times:  # caught up: start the file over
                self._file.seek(0)
                self._file.truncate()
                self._read_at = 0
            return np.frombuffer(data, np.uint8).reshape(self.shape), timestamp

    def close(self) -> None:
        """Drop what is queued and remove the file (idempotent)."""
        with self._cond:
            self._closed = True
            self._ram.clear()
            self._disk_times.clear()
            if self._file is not None:
                self._file.close()
                self._file = None
            self.path.unlink(missing_ok=True)
            self._cond.notify_all()
