"""Helpers shared by every test folder.

RealSense: tests marked ``realsense`` (and modules that ``pytest.importorskip("pyrealsense2")``) need the
library and its ``libusb-1.0``; on a machine without them they are skipped, so the suite runs on a fresh
machine. CI sets
``ROBOT_STACK_REQUIRE_REALSENSE=1`` (after installing libusb) so that they can never be skipped silently.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REQUIRE_REALSENSE_ENV = "ROBOT_STACK_REQUIRE_REALSENSE"
# The CLI's log line format (robot_stack.cli.main): "2026-01-01 12:00:00,123 MainProcess name LEVEL: msg".
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL): ")


@functools.lru_cache(maxsize=1)
def realsense_unavailable() -> str | None:
    """Why pyrealsense2 cannot load here, or None when it can."""
    try:
        importlib.import_module("pyrealsense2")
    except ImportError as exc:
        return str(exc)
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "realsense: needs pyrealsense2 and libusb-1.0 (skipped without them)")
    if os.environ.get(REQUIRE_REALSENSE_ENV) and realsense_unavailable():
        raise pytest.UsageError(f"${REQUIRE_REALSENSE_ENV} is set but pyrealsense2 cannot load: "
                                f"{realsense_unavailable()}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("realsense") and realsense_unavailable():
        pytest.skip(f"pyrealsense2 cannot load here ({realsense_unavailable()})")


@pytest.fixture(scope="session")
def no_realsense_env(tmp_path_factory) -> dict[str, str]:
    """Environment for a subprocess in which ``import pyrealsense2`` fails exactly as on a machine without
    libusb (a shim package first on PYTHONPATH; spawned children inherit it)."""
    shim = tmp_path_factory.mktemp("no_libusb") / "pyrealsense2"
    shim.mkdir()
    (shim / "__init__.py").write_text(
        'raise ImportError("libusb-1.0.so.0: cannot open shared object file: No such file or directory")\n')
    path = os.pathsep.join(p for p in (str(shim.parent), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """``python -m robot_stack ARGS`` in a subprocess (stdin closed), as a user runs it."""
    return subprocess.run([sys.executable, "-m", "robot_stack", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd, stdin=subprocess.DEVNULL)


def error_lines(stderr: str) -> list[str]:
    """The lines of a CLI's stderr that are not log records: its error report."""
    return [line for line in stderr.splitlines() if line.strip() and not _LOG_LINE.match(line)]


@pytest.fixture
def cli():
    """``run_cli`` as a fixture, plus ``cli.one_line_error(result, code, *fragments)``."""

    class Cli:
        run = staticmethod(run_cli)

        @staticmethod
        def one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
            assert result.returncode == code, (result.returncode, result.stderr[-3000:])
            lines = error_lines(result.stderr)
            assert len(lines) == 1, f"expected one error line, got {lines}"
            assert "Traceback" not in result.stderr, result.stderr[-3000:]
            for fragment in fragments:
                assert fragment in lines[0], (fragment, lines[0])
            return lines[0]

    return Cli()


def write_sim_rig(folder: Path, camera: dict | None = None, **sections) -> Path:
    """A small simulated Push-T rig file: sim_ur5's arm, sim_pusht's scene, one simulated ``top`` camera
    (``camera`` updates its entry), scripted planar teleop; ``sections`` replace whole sections (e.g.
    ``cameras=[]``)."""
    configs = ROOT / "hardware_configs"
    rig = {"name": "test_pusht",
           "robot": yaml.safe_load((configs / "sim_ur5.yaml").read_text())["robot"],
           "scene": yaml.safe_load((configs / "sim_pusht.yaml").read_text())["scene"],
           "cameras": [{"name": "top", "driver": "sim", "resolution": [160, 120], "fps": 20, **(camera or {})}],
           "teleop": {"profile": "scripted", "mode": "planar"}}
    rig.update(sections)
    path = folder / f"rig_{len(list(folder.glob('rig_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(rig))
    return path


@pytest.fixture
def sim_rig(tmp_path):
    """``write_sim_rig`` into the test's tmp_path: ``sim_rig(camera={...}, cameras=[...], ...)`` -> path."""
    return functools.partial(write_sim_rig, tmp_path)


def poll_until(predicate, timeout: float = 3.0, poll: float = 0.01) -> bool:
    """Call ``predicate`` every ``poll`` s until it is true or ``timeout`` s passed; return its last result
    (so ``assert wait_for(...)`` fails with the condition, not with a sleep long enough for a busy machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


@pytest.fixture
def wait_for():
    """``poll_until``, for tests that wait for a process or a robot to reach a state."""
    return poll_until
