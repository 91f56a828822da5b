"""Decoded, resized, step-aligned camera frames for training, cached on disk.

Training reads each image many times, so every camera's episode videos (``videos/<ep>/<cam>.mp4``) are
decoded once with PyAV, resized to the policy's ``image_size`` and aligned to the replay-buffer steps,
then stored as one ``(N, H, W, 3)`` uint8 ``.npy`` per camera and size, memory-mapped afterwards.

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

The cache name carries a hash of the resolution, the alignment rule's version, the episode boundaries,
the step timestamps and each video's size and mtime, so re-recorded or added episodes rebuild it. The file is written under a temporary name and renamed into place, so an
interrupted build never leaves a truncated cache behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from robot_stack.config import ConfigError
from robot_stack.runtime import nearest_indices

log = logging.getLogger(__name__)

# Bumped whenever the frame-to-step rule changes, so caches built by an older rule are rebuilt.
_ALIGNMENT_VERSION = 2
# A step time this close (in steps) before a frame time counts as at it (float noise in k * dt).
_TIME_EPS = 1e-5


class DatasetError(ConfigError):
    """The dataset on disk is missing something or is inconsistent; the message names the file."""


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxWx3 uint8 RGB frame to ``size`` (H, W) the way training data is prepared.

    Use this at run time too (policy server), so the policy sees images processed exactly as in training.
    """
    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    # INTER_AREA: proper anti-aliasing when shrinking, which is the common case (camera -> policy size).
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)


def decode_video(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """All frames of a video as (n, H, W, 3) uint8 RGB, resized to ``size`` (H, W), and their presentation
    times in seconds from the container (None when the container has none)."""
    frames, times = [], []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for f in container.decode(stream):
                frames.append(resize_frame(f.to_ndarray(format="rgb24"), size))
                times.append(f.time)
    except (av.FFmpegError, IndexError) as exc:
        raise DatasetError(f"cannot decode video {path}: {exc}") from None
    if not frames:
        raise DatasetError(f"video {path} has no frames")
    return np.stack(frames), (None if any(t is None for t in times) else np.asarray(times, dtype=np.float64))


def camera_frames(
    videos: list[tuple[Path, Path]],
    camera: int,
    size: tuple[int, int],
    episode_ends: np.ndarray,
    step_timestamps: np.ndarray | None,
    cache_dir: Path,
    show_progress: bool = True,
) -> np.ndarray:
    """Step-aligned frames of ``camera`` for the whole dataset, (N, H, W, 3) uint8, memory-mapped.

    ``videos`` holds each episode's (video, frame-timestamps) paths. Builds the cache on first use
    (progress bar per episode); later calls just open it.
    """
    missing = [str(v) for v, _ in videos if not v.is_file()]
    if missing:
        raise DatasetError(f"camera {camera}: missing video file(s) {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    path = cache_dir / f"camera_{camera}_{size[0]}x{size[1]}_{_fingerprint(videos, size, episode_ends, step_timestamps)}.npy"
    if not path.is_file():
        _build(path, videos, size, episode_ends, step_timestamps, show_progress)
    return np.load(path, mmap_mode="r")


def _build(
    path: Path,
    videos: list[tuple[Path, Path]],
    size: tuple[int, int],
    episode_ends: np.ndarray,
    step_timestamps: np.ndarray | None,
    show_progress: bool,
) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create frame cache folder {path.parent}: {exc}; set training.cache_dir") from None
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    n = int(episode_ends[-1]) if len(episode_ends) else 0
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size[0], size[1], 3))
    try:
        starts = np.concatenate([[0], episode_ends[:-1]]).astype(np.int64)
        untimed = [v for v, ts in videos if not ts.is_file()]
        if untimed:
            log.info("%d of %d videos have no frame timestamps file (e.g. %s): matching frames to steps by the "
                     "container's frame times, as the original Diffusion Policy does", len(untimed), len(videos),
                     untimed[0])
        bar = tqdm(list(zip(videos, starts, episode_ends)), desc=f"caching {path.name}", unit="episode", disable=not show_progress)
        for (video, ts_file), start, end in bar:
            frames, frame_times = decode_video(video, size)
            out[start:end] = frames[_step_frames(video, ts_file, frame_times, frames.shape[0], start, int(end),
                                                 step_timestamps)]
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _step_frames(video: Path, ts_file: Path, container_times: np.ndarray | None, n_frames: int, start: int,
                 end: int, step_timestamps: np.ndarray | None) -> np.ndarray:
    """Index of the frame to use for each step of one episode (see the module docstring)."""
    if step_timestamps is None:
        raise DatasetError(f"{video}: the dataset has no data/timestamp, so there is no time base to match video "
                           "frames to steps")
    steps = step_timestamps[start:end]
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
        # Dropped camera frames or a video that does not cover the episode: train anyway, but say so.
        log.warning("%s: %d of %d steps have no frame within 1.5 frame periods (%.1f ms); using the nearest",
                    video, far, end - start, 1e3 * period)
    return idx


def _fingerprint(
    videos: list[tuple[Path, Path]], size: tuple[int, int], episode_ends: np.ndarray, step_ts: np.ndarray | None
) -> str:
    h = hashlib.sha1()
    files = []
    for pair in videos:
        for f in pair:
            st = f.stat() if f.exists() else None
            files.append([f"{f.parent.name}/{f.name}", st.st_size if st else -1, st.st_mtime_ns if st else -1])
    h.update(json.dumps({"size": list(size), "files": files, "alignment": _ALIGNMENT_VERSION}).encode())
    h.update(np.ascontiguousarray(episode_ends, dtype=np.int64).tobytes())
    if step_ts is not None:
        h.update(np.ascontiguousarray(step_ts, dtype=np.float64).tobytes())
    return h.hexdigest()[:12]
