"""Checks on recorded datasets shared by the data tests."""

from __future__ import annotations

import av
import numpy as np


def decode_frame_count(path) -> int:
    """Number of frames a video decodes to (what training will see)."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def assert_video_matches(path, t_start: float, t_end: float, fps: float, slack: float = 0.0) -> np.ndarray:
    """The video decodes to exactly one frame per timestamp, all captured in (t_start - slack, t_end], and
    holds (t_end - t_start) * fps frames give or take two.

    ``slack`` widens only the window's start (the episode may begin a little before its first step), not
    the frame count expected.
    """
    ts = np.load(path.with_name(path.stem + ".timestamps.npy"))
    assert decode_frame_count(path) == len(ts)
    assert np.all(np.diff(ts) > 0)
    assert ts[0] > t_start - slack and ts[-1] <= t_end + 1e-9
    expected = (t_end - t_start) * fps
    assert abs(len(ts) - expected) <= 2, f"{len(ts)} frames for {t_end - t_start:.2f} s at {fps} fps"
    return ts
