"""Subprocess that appends deterministic episodes to a replay buffer until killed (crash-recovery tests).

usage: python rb_writer.py PATH N_EPISODES [PAUSE]

Prints ``saved <index>`` after each committed episode. With ``PAUSE`` (a key of ``PAUSES``), the process
stops inside the write of the last episode at that point, prints ``paused`` and sleeps so the parent can
SIGKILL it exactly there.
"""

import sys
import time

import numpy as np
import zarr.storage._local as zarr_local

from robot_stack.data.replay_buffer import ReplayBuffer


def episode(index: int) -> dict[str, np.ndarray]:
    """Episode ``index``: a length and content that depend only on the index, so a reader can check it."""
    n = 40 + 7 * (index % 5)
    steps = np.arange(n, dtype=np.float64)
    return {
        "action": np.stack([steps + 1000 * index] * 2, axis=1),
        "robot_eef_pose": np.full((n, 6), float(index)),
        "timestamp": 100.0 * index + 0.1 * steps,
        "image": np.full((n, 32, 32, 3), index % 256, dtype=np.uint8),
    }


# Where to stop, as a test on the path of the file zarr is about to write.
PAUSES = {
    # halfway through rewriting the image chunk that also holds the previous episodes' last rows
    "in-shared-chunk": lambda p: "data/image/" in p and not p.endswith(".zarray"),
    # all data written, episode_ends not yet grown
    "before-commit": lambda p: p.endswith("meta/episode_ends/.zarray"),
    # episode_ends grown to E+1, its new slot not yet written
    "mid-commit": lambda p: "meta/episode_ends/0" in p,
}


def _pause_on(mode: str) -> None:
    original = zarr_local._put

    def put(path, value, exclusive=False):
        if PAUSES[mode](str(path)):
            if mode == "in-shared-chunk":  # leave a half-written temp file behind, like a kill mid-write
                path.with_suffix(".dead.partial").write_bytes(bytes(value.as_buffer_like())[: len(value) // 2])
            print("paused", flush=True)
            time.sleep(3600)
        return original(path, value, exclusive)

    zarr_local._put = put


def main() -> None:
    path, n = sys.argv[1], int(sys.argv[2])
    rb = ReplayBuffer.open(path, mode="a")
    while rb.n_episodes < n:
        if len(sys.argv) > 3 and rb.n_episodes == n - 1:
            _pause_on(sys.argv[3])
        index = rb.add_episode(episode(rb.n_episodes))
        print(f"saved {index}", flush=True)


if __name__ == "__main__":
    main()
