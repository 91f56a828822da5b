"""A regular install works, not only `pip install -e`: the built wheel, installed into a fresh virtual
environment outside the source tree, carries every file the CLI loads (task configs, teleop profiles, rigs,
calibration) and runs the main job's first step on the shipped sim_pusht rig, given by name."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a wheel is built from (the rest of the checkout, e.g. .venv or runs/, stays out of the copy).
SOURCES = ("robot_stack", "hardware_configs", "teleop", "calibration", "setup.py", "setup.cfg", "pyproject.toml",
           "README.md")


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-4000:])
    return result


def test_the_wheel_installs_and_runs_outside_the_source_tree(tmp_path, no_realsense_env):
    source = tmp_path / "source"
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, source)
    (wheel,) = wheels.glob("robot_stack-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    # The dependencies come from this test's environment (a path entry, so its editable robot_stack finder
    # is not activated); robot_stack itself only from the wheel.
    fresh_site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (fresh_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(python, "-m", "pip", "install", "--no-deps", "-q", wheel)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**no_realsense_env, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    where = _run(python, "-c", "import robot_stack; print(robot_stack.__file__)", cwd=work, env=env).stdout
    assert where.startswith(str(fresh_site)), where

    assert "usage: robot-stack" in _run(venv / "bin" / "robot-stack", "--help", cwd=work, env=env).stdout
    assert "--config" in _run("robot-stack", "train", "--config", "push_t", "--help", cwd=work, env=env).stdout
    loaded = _run(python, "-c", "\n".join([
        "from robot_stack.policy.config import BUILTIN_TASKS, load_task_config",
        "from robot_stack.hardware.teleop import load_profile",
        "from robot_stack.hardware.camera import load_rig_calibration",
        "from robot_stack.resources import shipped_rigs",
        "from robot_stack.rig import load_rig",
        "print([load_task_config(t).policy.horizon for t in BUILTIN_TASKS])",
        "print([load_profile(p).device for p in ('spacemouse', 'keyboard', 'scripted')])",
        "print(sorted(load_rig_calibration('sim_pusht')), shipped_rigs(), load_rig('sim_pusht').name)",
    ]), cwd=work, env=env).stdout.splitlines()
    assert loaded[1] == "['spacemouse', 'keyboard', 'scripted']"
    assert loaded[2] == "['oblique', 'top'] ['sim_pusht', 'sim_pusht_state', 'sim_ur5', 'sim_ur5_gripper', 'ur5_cb3_example', 'ur5_cb3_robotiq_example', 'ur5_cb3_wsg_example'] sim_pusht"

    _run("robot-stack", "collect", "--rig", "sim_pusht", "--teleop", "scripted", "--episodes", "1",
         "--max-duration", "2", "--keep-failed", "--out", "demos", "--no-preview", cwd=work, env=env)
    report = _run("robot-stack", "dataset", "check", "demos", cwd=work, env=env).stdout
    assert "1 episode(s)" in report and report.strip().endswith("consistent")
