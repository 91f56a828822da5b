"""ReplayBuffer: layout, API, and crash safety (SIGKILL mid-write, full disk, Ctrl-C)."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
import zarr.storage._local as zarr_local

from robot_stack.data.replay_buffer import EpisodeWriteError, ReplayBuffer, ReplayBufferError

from rb_writer import episode  # deterministic episode content shared with the writer subprocess

WRITER = Path(__file__).with_name("rb_writer.py")


def assert_episodes_intact(rb: ReplayBuffer, n: int) -> None:
    assert rb.n_episodes == n
    for i in range(n):
        got, want = rb.get_episode(i), episode(i)
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"episode {i} data/{key}")
    assert rb.n_steps == sum(len(episode(i)["timestamp"]) for i in range(n))


def make_buffer(path: Path, n: int) -> ReplayBuffer:
    rb = ReplayBuffer.create(path)
    for i in range(n):
        assert rb.add_episode(episode(i)) == i
    return rb


# -- layout and API ----------------------------------------------------------------------------------------
def test_roundtrip_layout_is_zarr_v2_diffusion_policy(tmp_path):
    path = tmp_path / "replay_buffer.zarr"
    with make_buffer(path, 3) as rb:
        lengths = [len(episode(i)["timestamp"]) for i in range(3)]
        np.testing.assert_array_equal(rb.episode_lengths, lengths)
        np.testing.assert_array_equal(rb.episode_ends, np.cumsum(lengths))
        assert rb.keys() == ["action", "image", "robot_eef_pose", "timestamp"]
        assert rb.get_episode_slice(1) == slice(lengths[0], lengths[0] + lengths[1])
        np.testing.assert_array_equal(rb.get_episode(-1, keys=["action"])["action"], episode(2)["action"])
        with pytest.raises(IndexError, match="has 3 episode"):
            rb.get_episode(3)
    # What the original tooling reads: plain zarr format 2 metadata, int64 episode ends, concatenated data.
    meta = json.loads((path / "meta" / "episode_ends" / ".zarray").read_text())
    assert meta["zarr_format"] == 2 and meta["dtype"] == "<i8"
    assert json.loads((path / "data" / "action" / ".zarray").read_text())["zarr_format"] == 2
    group = zarr.open_group(str(path), mode="r")
    np.testing.assert_array_equal(group["meta/episode_ends"][:], np.cumsum(lengths))
    np.testing.assert_array_equal(group["data/timestamp"][:], np.concatenate([episode(i)["timestamp"] for i in range(3)]))
    with ReplayBuffer.open(path) as rb:  # read-only reopen
        assert_episodes_intact(rb, 3)
        with pytest.raises(ReplayBufferError, match="read-only"):
            rb.add_episode(episode(3))


def test_drop_last_episode_then_append(tmp_path):
    with make_buffer(tmp_path / "rb.zarr", 3) as rb:
        rb.drop_last_episode()
        assert_episodes_intact(rb, 2)
        assert all(rb._data[k].shape[0] == rb.n_steps for k in rb.keys())
        rb.add_episode(episode(2))
        assert_episodes_intact(rb, 3)
        for _ in range(3):
            rb.drop_last_episode()
        assert rb.n_episodes == 0 and rb.n_steps == 0
        with pytest.raises(IndexError, match="no episode to drop"):
            rb.drop_last_episode()


def test_bad_episodes_are_rejected_with_clear_errors(tmp_path):
    with make_buffer(tmp_path / "rb.zarr", 1) as rb:
        good = episode(1)
        with pytest.raises(ReplayBufferError, match="same number of steps"):
            rb.add_episode({**good, "action": good["action"][:-1]})
        with pytest.raises(ReplayBufferError, match="missing \\['image'\\]"):
            rb.add_episode({k: v for k, v in good.items() if k != "image"})
        with pytest.raises(ReplayBufferError, match="step shape"):
            rb.add_episode({**good, "action": good["action"][:, :1]})
        with pytest.raises(ReplayBufferError, match="cannot store float64 values in a uint8"):
            rb.add_episode({**good, "image": good["image"].astype(np.float64)})
        with pytest.raises(ReplayBufferError, match="empty episode"):
            rb.add_episode({k: v[:0] for k, v in good.items()})
        assert_episodes_intact(rb, 1)


def test_open_errors_and_single_writer_lock(tmp_path):
    with pytest.raises(ReplayBufferError, match="no replay buffer"):
        ReplayBuffer.open(tmp_path / "missing.zarr")
    (tmp_path / "not_zarr").mkdir()
    (tmp_path / "not_zarr" / "file.txt").write_text("x")
    with pytest.raises(ReplayBufferError, match="not a"):
        ReplayBuffer.open(tmp_path / "not_zarr")
    path = tmp_path / "rb.zarr"
    with make_buffer(path, 1):
        with pytest.raises(ReplayBufferError, match=f"open for writing by pid {os.getpid()}"):
            ReplayBuffer.open(path, mode="a")
        with pytest.raises(ReplayBufferError, match="already exists"):
            ReplayBuffer.create(path)
        with ReplayBuffer.open(path) as reader:  # readers never wait for the writer
            assert reader.n_episodes == 1
    with ReplayBuffer.open(path, mode="r+") as rb:  # lock released on close
        assert rb.n_episodes == 1
    with ReplayBuffer.create(path, overwrite=True) as rb:
        assert rb.n_episodes == 0 and rb.keys() == []


# -- crash recovery: a real process killed at chosen points ------------------------------------------------
def run_writer(path: Path, n: int, pause: str | None = None) -> subprocess.Popen:
    args = [sys.executable, str(WRITER), str(path), str(n)] + ([pause] if pause else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("pause", ["in-shared-chunk", "before-commit", "mid-commit"])
def test_sigkill_mid_write_keeps_earlier_episodes(tmp_path, caplog, pause):
    path = tmp_path / "rb.zarr"
    proc = run_writer(path, 4, pause)
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.strip() == "paused":
            break
    proc.kill()
    proc.wait(10)
    assert lines == ["saved 0", "saved 1", "saved 2", "paused"]
    if pause == "in-shared-chunk":
        assert list(path.rglob("*.partial")), "the writer should have left a half-written chunk file"
    with ReplayBuffer.open(path) as rb:  # read-only: ignores the incomplete episode
        assert_episodes_intact(rb, 3)
    caplog.set_level(logging.WARNING)
    with ReplayBuffer.open(path, mode="r+") as rb:
        assert_episodes_intact(rb, 3)
        assert "recovered to the last complete episode (3 episodes" in caplog.text
        assert all(rb._data[k].shape[0] == rb.n_steps for k in rb.keys())  # trailing rows truncated
        assert not list(path.rglob("*.partial"))
        rb.add_episode(episode(3))
        assert_episodes_intact(rb, 4)


def test_sigkill_at_random_moments(tmp_path):
    """Kill a writer that appends as fast as it can at random moments, several times; nothing committed is lost."""
    path = tmp_path / "rb.zarr"
    rng = random.Random(0)
    committed = 0
    for _ in range(4):
        proc = run_writer(path, 1000)
        target = committed + 2
        for line in proc.stdout:
            if line.startswith("saved") and int(line.split()[1]) + 1 >= target:
                break
        threading.Event().wait(rng.uniform(0.0, 0.03))
        proc.kill()
        proc.wait(10)
        with ReplayBuffer.open(path) as rb:
            assert rb.n_episodes >= target  # every printed "saved" is durable ...
            assert_episodes_intact(rb, rb.n_episodes)  # ... and every episode is exactly what was written
            committed = rb.n_episodes


def test_stale_end_of_dropped_episode_is_never_resurrected(tmp_path):
    """After a drop, a crash between growing episode_ends and writing the new end must not revive the old end."""
    path = tmp_path / "rb.zarr"
    with make_buffer(path, 3) as rb:
        rb.drop_last_episode()
    # Simulate the crash state by hand: longer new-episode rows fully written, episode_ends grown, slot unwritten.
    group = zarr.open_group(str(path), mode="r+")
    longer = {k: np.concatenate([v, v]) for k, v in episode(2).items()}
    for key, values in longer.items():
        arr = group[f"data/{key}"]
        n = arr.shape[0]
        arr.resize((n + len(values), *values.shape[1:]))
        arr[n:] = values
    group["meta/episode_ends"].resize((3,))
    with ReplayBuffer.open(path, mode="r+") as rb:
        assert_episodes_intact(rb, 2)


# -- full disk and Ctrl-C, injected at every file write of one episode --------------------------------------
class FailingPuts:
    """Run ``action`` at zarr's ``at``-th file write (``once``) or at every write from it on.

    The default action raises ENOSPC, like a full disk; an action that returns lets the write go ahead.
    """

    def __init__(self, monkeypatch, at: int, once: bool, action=None):
        self.original, self.at, self.once, self.count = zarr_local._put, at, once, 0
        self.action = action or self.disk_full
        self.lock = threading.Lock()
        monkeypatch.setattr(zarr_local, "_put", self)

    @staticmethod
    def disk_full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __call__(self, path, value, exclusive=False):
        with self.lock:
            i, self.count = self.count, self.count + 1
        if i == self.at or (i > self.at and not self.once):
            self.action()
        return self.original(path, value, exclusive)


def count_puts(tmp_path, monkeypatch) -> int:
    with make_buffer(tmp_path / "count.zarr", 2) as rb:
        counter = FailingPuts(monkeypatch, at=10**9, once=True)
        rb.add_episode(episode(2))
        monkeypatch.setattr(zarr_local, "_put", counter.original)
    return counter.count


@pytest.mark.parametrize("once", [True, False], ids=["transient", "disk-stays-full"])
def test_disk_full_at_any_write_keeps_earlier_episodes(tmp_path, monkeypatch, once):
    n_puts = count_puts(tmp_path, monkeypatch)
    assert n_puts >= 8  # 4 keys (metadata + chunk each) + episode_ends (metadata + chunk)
    base = tmp_path / "base.zarr"
    make_buffer(base, 2).close()
    for at in range(n_puts):
        path = tmp_path / f"rb{at}.zarr"
        shutil.copytree(base, path)
        rb = ReplayBuffer.open(path, mode="r+")
        failing = FailingPuts(monkeypatch, at, once)
        with pytest.raises(EpisodeWriteError, match=r"episode 2 was lost \(disk full\); the 2 episode\(s\) saved before it .* are intact"):
            rb.add_episode(episode(2))
        assert_episodes_intact(rb, 2)
        monkeypatch.setattr(zarr_local, "_put", failing.original)  # space freed
        rb.close()
        with ReplayBuffer.open(path, mode="r+") as rb:
            assert_episodes_intact(rb, 2)
            rb.add_episode(episode(2))
            assert_episodes_intact(rb, 3)


def test_ctrl_c_during_save_is_held_until_the_episode_is_complete(tmp_path, monkeypatch):
    n_puts = count_puts(tmp_path, monkeypatch)
    for at in (0, n_puts // 2, n_puts - 1):
        path = tmp_path / f"rb{at}.zarr"
        rb = make_buffer(path, 2)
        # The SIGINT arrives while zarr is writing; it must surface only after the episode is whole.
        FailingPuts(monkeypatch, at, once=True, action=lambda: os.kill(os.getpid(), signal.SIGINT))
        with pytest.raises(KeyboardInterrupt):
            rb.add_episode(episode(2))
        assert_episodes_intact(rb, 3)
        rb.close()
        with ReplayBuffer.open(path) as reopened:
            assert_episodes_intact(reopened, 3)


def test_the_originals_api_in_memory_and_on_disk(tmp_path):
    """The original ReplayBuffer's commonly used calls, with its semantics, on both backends."""
    mem = ReplayBuffer.create_empty_numpy()
    assert (mem.backend, mem.n_episodes, mem.n_steps, mem.keys()) == ("numpy", 0, 0, [])
    for i in range(3):
        mem.extend(episode(i))
    lengths = [len(episode(i)["action"]) for i in range(3)]
    assert mem.episode_lengths.tolist() == lengths and mem.n_steps == sum(lengths)
    assert mem.get_episode_idxs().tolist() == sum(([i] * n for i, n in enumerate(lengths)), [])
    assert "action" in mem and "nothing" not in mem and sorted(mem.data) == mem.keys()
    np.testing.assert_array_equal(mem["timestamp"], np.concatenate([episode(i)["timestamp"] for i in range(3)]))
    window = mem.get_steps_slice(lengths[0] - 2, lengths[0] + 3)
    np.testing.assert_array_equal(window["action"][2], episode(1)["action"][0])
    last = mem.pop_episode()
    np.testing.assert_array_equal(last["image"], episode(2)["image"])
    assert mem.n_episodes == 2 and mem.meta["episode_ends"].tolist() == np.cumsum(lengths[:2]).tolist()
    mem.extend(episode(2))

    # Out to disk through the crash-safe writer, with the original's per-key chunks and compressor names.
    mem.save_to_path(tmp_path / "rb.zarr", chunks={"image": (7, 32, 32, 3)}, compressors={"action": "disk"})
    disk = ReplayBuffer.create_from_path(tmp_path / "rb.zarr")
    assert disk.backend == "zarr" and disk.n_episodes == 3
    assert disk.get_chunks()["image"] == (7, 32, 32, 3) and disk.chunk_size == disk.get_chunks()["action"][0]
    assert disk.get_compressors()["action"].cname == "zstd"
    assert disk.get_compressors()["image"] is not None  # not named: zarr's default compressor, never none
    with make_buffer(tmp_path / "plain.zarr", 1) as plain:  # no compressors given at all: the default too
        assert all(codec is not None for codec in plain.get_compressors().values())
    assert_episodes_intact(disk, 3)
    # What the original's ReplayBuffer reads: a plain zarr v2 group.
    raw = zarr.open_group(str(tmp_path / "rb.zarr"), mode="r", zarr_format=2)
    assert raw["meta/episode_ends"][:].tolist() == np.cumsum(lengths).tolist()

    # Back into memory: complete episodes only, even when an interrupted write left rows behind.
    with ReplayBuffer.open(tmp_path / "rb.zarr", "r+") as rb:
        rb._data["action"].resize((rb.n_steps + 5, 2))  # as if an episode died before its commit
    partial = ReplayBuffer.open(tmp_path / "rb.zarr", "r")
    assert partial["action"].shape[0] == sum(lengths)  # never the uncommitted rows
    loaded = ReplayBuffer.copy_from_path(tmp_path / "rb.zarr", keys=["action", "timestamp"])
    assert loaded.backend == "numpy" and loaded.keys() == ["action", "timestamp"] and loaded.n_steps == sum(lengths)
    from_store = ReplayBuffer.copy_from_store(zarr.open_group(str(tmp_path / "rb.zarr"), mode="r").store)
    assert_episodes_intact(from_store, 3)
    with pytest.raises(ReplayBufferError, match="no chunks"):
        loaded.get_chunks()


def test_set_chunks_and_set_compressors_rewrite_arrays_in_place(tmp_path, caplog):
    """The original's in-place rechunk/recompress: data, attributes and later appends unchanged."""
    with make_buffer(tmp_path / "rb.zarr", 3) as rb:
        rb.attrs["note"] = {"kept": True}
        rb._data["image"].attrs["unit"] = "rgb"
        before = {k: tuple(c) for k, c in rb.get_chunks().items()}
        rb.set_chunks({"image": (5, 32, 32, 3), "action": before["action"]})  # action: already so, left alone
        assert rb.get_chunks()["image"] == (5, 32, 32, 3) and rb.get_chunks()["action"] == before["action"]
        rb.set_compressors({"action": "disk", "timestamp": None})
        assert rb.get_compressors()["action"].cname == "zstd" and rb.get_compressors()["timestamp"] is None
        caplog.set_level(logging.WARNING)
        rb.set_chunks({"no_such_key": (4,)})  # skipped, as in the original, but said
        assert "no_such_key" in caplog.text
        with pytest.raises(ReplayBufferError, match="do not fit"):
            rb.set_chunks({"image": (5, 32)})
        assert_episodes_intact(rb, 3)
        rb.add_episode(episode(3))
        assert_episodes_intact(rb, 4)
    with ReplayBuffer.open(tmp_path / "rb.zarr") as rb:
        assert rb.get_chunks()["image"] == (5, 32, 32, 3) and rb.attrs["note"] == {"kept": True}
        assert dict(rb._data["image"].attrs) == {"unit": "rgb"}
        assert_episodes_intact(rb, 4)
        with pytest.raises(ReplayBufferError, match="read-only"):
            rb.set_chunks({"image": (6, 32, 32, 3)})
    assert not (tmp_path / "rb.zarr" / ".rewrite").exists()
    with pytest.raises(ReplayBufferError, match="no chunks"):
        ReplayBuffer.create_empty_numpy().set_chunks({"image": (5, 32, 32, 3)})


@pytest.mark.parametrize("crash_at_rename", [1, 2])
def test_a_rewrite_interrupted_at_any_rename_loses_nothing(tmp_path, monkeypatch, crash_at_rename):
    """Killed before the swap (rename 1) the old array stays; killed between the two renames the next
    write-mode open finishes the swap, and a read-only open refuses with one clear error."""
    make_buffer(tmp_path / "rb.zarr", 3).close()
    real_rename, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == crash_at_rename:
            raise KeyboardInterrupt  # as abrupt as it gets from inside the process
        real_rename(src, dst)

    with ReplayBuffer.open(tmp_path / "rb.zarr", "r+") as rb:
        old_chunks = rb.get_chunks()["image"]
        monkeypatch.setattr(os, "rename", rename)
        with pytest.raises(KeyboardInterrupt):
            rb.set_chunks({"image": (5, 32, 32, 3)})
        monkeypatch.setattr(os, "rename", real_rename)
    if crash_at_rename == 2:
        assert not (tmp_path / "rb.zarr" / "data" / "image").exists()
        with pytest.raises(ReplayBufferError, match="interrupted"):
            ReplayBuffer.open(tmp_path / "rb.zarr", "r")
    with ReplayBuffer.open(tmp_path / "rb.zarr", "r+") as rb:
        assert rb.get_chunks()["image"] == (old_chunks if crash_at_rename == 1 else (5, 32, 32, 3))
        assert_episodes_intact(rb, 3)
    assert not (tmp_path / "rb.zarr" / ".rewrite").exists()
