"""Decoded, resized, step-aligned camera frames for training, cached on disk.

Training reads each image many times, so every camera's episode videos (``videos/<ep>/<cam>.mp4``) are
decoded once with PyAV, resized to the policy's ``image_size`` and aligned to the replay-buffer steps,
then stored as one ``(N, H, W, 3)`` uint8 ``.npy`` per camera and size, memory-mapped afterwards.

Which frame belongs to which step is ``robot_stack.data.step_frames``'s rule (by time, never "frame i is
step i").

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

import cv2
import numpy as np
from tqdm import tqdm

from robot_stack.data.step_frames import ALIGNMENT_VERSION, DatasetError, episode_step_frames

log = logging.getLogger(__name__)

__all__ = ["DatasetError", "camera_frames", "resize_frame"]


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxWx3 uint8 RGB frame to ``size`` (H, W) the way training data is prepared.

    Use this at run time too (policy server), so the policy sees images processed exactly as in training.
    """
    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    # INTER_AREA: proper anti-aliasing when shrinking, which is the common case (camera -> policy size).
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)


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
            steps = None if step_timestamps is None else step_timestamps[start:end]
            out[start:end] = episode_step_frames(video, ts_file, steps, lambda image: resize_frame(image, size))
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _fingerprint(
    videos: list[tuple[Path, Path]], size: tuple[int, int], episode_ends: np.ndarray, step_ts: np.ndarray | None
) -> str:
    h = hashlib.sha1()
    files = []
    for pair in videos:
        for f in pair:
            st = f.stat() if f.exists() else None
            files.append([f"{f.parent.name}/{f.name}", st.st_size if st else -1, st.st_mtime_ns if st else -1])
    h.update(json.dumps({"size": list(size), "files": files, "alignment": ALIGNMENT_VERSION}).encode())
    h.update(np.ascontiguousarray(episode_ends, dtype=np.int64).tobytes())
    if step_ts is not None:
        h.update(np.ascontiguousarray(step_ts, dtype=np.float64).tobytes())
    return h.hexdigest()[:12]
