"""Which video frame belongs to which replay-buffer step: the one rule every reader of a dataset uses.

Alignment is always by time, never "frame i is step i" (videos usually run faster than the steps):

- robot_stack's recordings have ``videos/<ep>/<cam>.timestamps.npy`` (capture time per frame): each step
  takes the frame captured nearest its ``data/timestamp`` (``robot_stack.runtime.nearest_indices``, the
  runtime's own rule).
- Datasets recorded by the original Diffusion Policy stack have no timestamps file: their videos are
  constant-rate from the episode start (dropped frames repeated). Frame times come from the container
  (presentation times), and step ``k`` takes the first frame at or after its time since the episode's
  first step, as the original's ``real_data_conversion`` does.
- Without ``data/timestamp``, or a video whose container has no frame times, there is no time base: the
  dataset is refused with an error naming the file.

Training (``robot_stack.policy.frame_cache``) and dataset export (``robot_stack.data.lerobot_format``) both
read frames through ``episode_step_frames``, so an exported dataset holds exactly the frames training sees.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

from robot_stack.config import ConfigError
from robot_stack.runtime import nearest_indices

log = logging.getLogger(__name__)

# Bumped whenever the frame-to-step rule changes, so caches built by an older rule are rebuilt.
ALIGNMENT_VERSION = 2
# A step time this close (in steps) before a frame time counts as at it (float noise in k * dt).
_TIME_EPS = 1e-5


class DatasetError(ConfigError):
    """The dataset on disk is missing something or is inconsistent; the message names the file."""


def video_frames(path: Path) -> Iterator[tuple[float | None, np.ndarray]]:
    """(presentation time in s, or None if the container has none; HxWx3 uint8 RGB) of each frame of a video,
    decoded one at a time; ``DatasetError`` naming the file if it cannot be decoded."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for f in container.decode(stream):
                yield f.time, f.to_ndarray(format="rgb24")
    except (av.FFmpegError, IndexError) as exc:
        raise DatasetError(f"cannot decode video {path}: {exc}") from None


def decode_video(path: Path, transform: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """All frames of a video as (n, H, W, 3) uint8 RGB (each passed through ``transform``, e.g. a resize, as
    it is decoded, so a full-resolution episode never sits in memory), and their presentation times in
    seconds from the container (None when the container has none)."""
    frames, times = [], []
    for t, image in video_frames(path):
        frames.append(image if transform is None else transform(image))
        times.append(t)
    if not frames:
        raise DatasetError(f"video {path} has no frames")
    return np.stack(frames), (None if any(t is None for t in times) else np.asarray(times, dtype=np.float64))


def step_frame_indices(video: Path, ts_file: Path, container_times: np.ndarray | None, n_frames: int,
                       steps: np.ndarray | None) -> np.ndarray:
    """Index of the frame of ``video`` to use for each of one episode's step times ``steps`` (see the module
    docstring); ``ts_file`` is the video's timestamps file, which may be missing."""
    if steps is None:
        raise DatasetError(f"{video}: the dataset has no data/timestamp, so there is no time base to match video "
                           "frames to steps")
    if ts_file.is_file():
        frame_ts = np.load(ts_file)
        if len(frame_ts) != n_frames:
            raise DatasetError(f"{ts_file} has {len(frame_ts)} timestamps but {video} has {n_frames} frames")
        idx = nearest_indices(frame_ts, steps)
    else:
        if container_times is None:
            raise DatasetError(f"{video} has no {ts_file.name} and its container gives no frame times: no time "
                               "base to match its frames to steps")
        # The original's convention: video time 0 is the episode's first step; a step takes the first frame
        # presented at or after it.
        frame_ts = container_times - container_times[0]
        steps = steps - steps[0]
        dt = float(np.median(np.diff(steps))) if len(steps) > 1 else 0.0
        idx = np.minimum(np.searchsorted(frame_ts, steps - _TIME_EPS * dt, side="left"), n_frames - 1)
    period = float(np.median(np.diff(frame_ts))) if n_frames > 1 else 0.0
    far = int(np.sum(np.abs(frame_ts[idx] - steps) > 1.5 * period)) if period > 0 else 0
    if far:
        # Dropped camera frames or a video that does not cover the episode: use it anyway, but say so.
        log.warning("%s: %d of %d steps have no frame within 1.5 frame periods (%.1f ms); using the nearest",
                    video, far, len(steps), 1e3 * period)
    return idx


def episode_step_frames(video: Path, ts_file: Path, steps: np.ndarray | None,
                        transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """One episode's camera frames, one per step time in ``steps``: (len(steps), H, W, 3) uint8."""
    frames, times = decode_video(video, transform)
    return frames[step_frame_indices(video, ts_file, times, frames.shape[0], steps)]
