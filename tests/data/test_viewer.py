"""``robot-stack view DATASET --save FILE.rrd``: the saved recording opens with Rerun's own loader and holds
the cameras, action vs measured pose, scene state and the episode boundaries."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_stack.config import ConfigError
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.viewer import view_dataset


def _rerun(*args: str) -> subprocess.CompletedProcess:
    """Rerun's own command line (installed with rerun-sdk next to this interpreter)."""
    exe = Path(sys.executable).with_name("rerun")
    exe = str(exe) if exe.exists() else shutil.which("rerun")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "RERUN_ANALYTICS": "0"})


def test_the_saved_recording_opens_with_rerun_and_holds_every_stream(recorded, tmp_path, cli):
    out = tmp_path / "demos.rrd"
    result = cli.run("view", str(recorded), "--save", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 episode(s)" in result.stdout and out.stat().st_size > 10_000
    verify = _rerun("rrd", "verify", str(out))
    assert verify.returncode == 0, verify.stderr[-2000:]
    printed = _rerun("rrd", "print", str(out))
    assert printed.returncode == 0, printed.stderr[-2000:]
    chunks = re.findall(r"with (\d+) rows .* - (/\S+) - data columns: \[([^\]]*)\]", printed.stdout)
    entities = {path for _, path, _ in chunks}
    for path in ("/cameras/top", "/cameras/oblique", "/pose/x/action", "/pose/x/tcp", "/pose/y/action",
                 "/scene/coverage", "/scene/success", "/episodes"):
        assert path in entities, (path, sorted(entities))
    # each episode's video once, and one frame reference per recorded video frame of both episodes
    videos = [int(n) for n, path, cols in chunks if path == "/cameras/top" and "AssetVideo" in cols]
    frames = sum(int(n) for n, path, cols in chunks if path == "/cameras/top" and "VideoFrameReference" in cols)
    with EpisodeDataset.open(recorded) as dataset:
        expected = sum(len(np.load(dataset.timestamps_path(e, 0))) for e in range(2))
        steps = dataset.replay_buffer.n_steps
    assert sum(videos) == 2 and frames == expected
    assert sum(int(n) for n, path, _ in chunks if path == "/pose/x/action") == steps
    assert sum(int(n) for n, path, _ in chunks if path == "/episodes") == 2


def test_bad_requests_name_what_to_fix(recorded, tmp_path):
    with pytest.raises(ConfigError, match="has episodes 0..1"):
        view_dataset(recorded, [5], tmp_path / "x.rrd", show_progress=False)
    with pytest.raises(ConfigError, match="replay_buffer.zarr"):
        view_dataset(tmp_path / "nowhere", None, tmp_path / "x.rrd", show_progress=False)


def _entities(rrd: Path) -> dict[str, int]:
    """Rows per entity path in a saved recording, read with Rerun's own loader."""
    verify = _rerun("rrd", "verify", str(rrd))
    assert verify.returncode == 0, verify.stderr[-2000:]
    printed = _rerun("rrd", "print", str(rrd))
    assert printed.returncode == 0, printed.stderr[-2000:]
    rows: dict[str, int] = {}
    for n, path in re.findall(r"with (\d+) rows .* - (/\S+) - data columns", printed.stdout):
        rows[path] = rows.get(path, 0) + int(n)
    return rows


def test_collect_streams_the_live_rig_to_rerun(tmp_path, cli):
    out = tmp_path / "live.rrd"
    result = cli.run("collect", "--rig", "sim_pusht", "--teleop", "scripted", "--episodes", "1", "--max-duration",
                     "2", "--keep-failed", "--out", str(tmp_path / "demos"), "--no-preview", "--rerun", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _entities(out)
    for path in ("/cameras/top", "/cameras/oblique", "/pose/x/tcp", "/pose/x/target", "/scene/coverage", "/status"):
        assert rows.get(path, 0) > 0, (path, sorted(rows))
    # the arm at its servo rate (125 Hz) over the 2 s episode and the set-up around it; cameras at most 10 fps
    assert rows["/pose/x/tcp"] >= 250 and 10 <= rows["/cameras/top"] <= 10 * 30


def test_live_streaming_refuses_what_it_cannot_do(cli, tmp_path):
    cli.one_line_error(cli.run("eval", "--rig", "sim_pusht_state", "--checkpoint", "checkpoints/push_t_lowdim_sim.ckpt",
                               "--lockstep", "--rerun", str(tmp_path / "x.rrd")), 2, "--lockstep runs none")
    cli.one_line_error(cli.run("collect", "--rig", "sim_pusht", "--teleop", "scripted", "--out", str(tmp_path / "d"),
                               "--rerun", "localhost:9876"), 2, "--rerun", "rerun+http")
    cli.one_line_error(cli.run("collect", "--rig", "sim_pusht", "--teleop", "scripted", "--out", str(tmp_path / "d"),
                               "--rerun", str(tmp_path / "missing" / "x.rrd")), 2, "folder does not exist")
