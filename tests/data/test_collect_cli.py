"""End to end on the simulated Push-T rig through the CLI: ``robot-stack collect`` with the scripted teleop,
driven by keys on stdin and killed mid-episode, then ``robot-stack replay`` of a saved episode.

Replay tolerance (stated): after the first 0.6 s (the recording may start mid-motion, the replay starts at
rest) the reproduced TCP positions stay within 3 mm (p95) of the recorded ones on the simulated UR5.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dataset_checks import assert_video_matches
from robot_stack.data.dataset import EpisodeDataset

FPS = 10


@pytest.fixture
def sim_rig_file(sim_rig) -> Path:
    return sim_rig(camera={"resolution": [96, 96], "fps": FPS})


class Cli:
    """A ``robot-stack`` subprocess whose stdout lines can be awaited and whose stdin takes keys."""

    def __init__(self, *args: str, log: Path):
        self.stderr = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "robot_stack", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting with {prefix!r}; stderr:\n{Path(self.stderr.name).read_text()[-3000:]}")

    def key(self, key: str) -> None:
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()

    def kill_main_process(self) -> None:
        """SIGKILL the collect process alone (a crash); its device processes must stop by themselves."""
        self.proc.kill()
        self.proc.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)  # any process of the session left?
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(self.proc.pid, signal.SIGKILL)
        raise AssertionError("device processes kept running after the collect process was killed")


def test_collect_discard_kill_reopen_and_replay(tmp_path, sim_rig_file):
    out = tmp_path / "dataset"
    cli = Cli("collect", "--rig", str(sim_rig_file), "--out", str(out), "--teleop", "scripted", "--manual",
              "--no-preview", log=tmp_path / "collect.log")
    try:
        cli.expect("keys:", timeout=60)
        for k in range(3):
            cli.key("c")
            cli.expect(f"recording episode {k}")
            time.sleep(1.2)
            cli.key("s")
            cli.expect(f"saved episode {k}")
        cli.key("x")  # discard the last saved episode
        cli.expect("dropped saved episode 2")
        cli.key("c")
        cli.expect("recording episode 2")
        time.sleep(0.8)
        cli.kill_main_process()  # mid-episode
    finally:
        if cli.proc.poll() is None:
            os.killpg(cli.proc.pid, signal.SIGKILL)

    with EpisodeDataset.open(out, mode="r+") as ds:  # write mode: recovers, removes the killed episode's files
        assert ds.n_episodes == 2
        assert sorted(p.name for p in ds.video_root.iterdir()) == ["0", "1"]
        rb = ds.replay_buffer
        assert all(n == rb.n_steps for n in (rb._data[k].shape[0] for k in rb.keys()))
        for index in range(2):
            ep = rb.get_episode(index)
            n = len(ep["timestamp"])
            assert 9 <= n <= 16, f"episode {index}: {n} steps for ~1.2 s at 10 Hz"
            assert all(len(v) == n for v in ep.values())
            assert np.all(np.diff(ep["timestamp"]) > 0)
            assert_video_matches(ds.video_path(index, 0), float(ep["timestamp"][0]),
                                 float(ep["timestamp"][-1]), FPS, slack=0.2)

    replay = subprocess.run([sys.executable, "-m", "robot_stack", "replay", "--dataset", str(out), "--episode", "1",
                             "--rig", str(sim_rig_file), "--max-error", "3"], capture_output=True, text=True,
                            timeout=120)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "Tracking error after the first 0.6 s" in replay.stdout and "0 rejected commands" in replay.stdout
