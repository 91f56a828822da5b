import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import shm_segments
from runtime_procs import Idle

from robot_stack.runtime import ProcessFailed, Supervisor


def test_start_ready_stop_and_buffers_released(no_leaked_segments):
    dev = Idle("idle")
    assert not dev.is_ready
    with dev:
        assert dev.is_ready
        time.sleep(0.05)
        assert dev.buffer.count > 0  # the child writes into the parent-created buffer
    assert not dev.is_alive()
    assert dev.exitcode == 0


def test_setup_failure_raises_with_child_error(no_leaked_segments):
    dev = Idle("camera_0", fail_in_setup=True)
    with pytest.raises(ProcessFailed) as info:
        dev.start()
    assert info.value.name == "camera_0"
    assert "camera serial 1234 not found" in info.value.error


def test_supervisor_stops_everything_when_one_process_dies(no_leaked_segments):
    procs = [Idle("robot"), Idle("camera", fail_after=0.3), Idle("policy")]
    with Supervisor(procs) as sup:
        deadline = time.monotonic() + 10
        while sup.running and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ProcessFailed, match="process 'camera': ValueError: simulated device crash") as info:
            sup.check()
        assert "simulated device crash" in info.value.error
        for proc in procs:
            proc.join(5)
            assert not proc.is_alive(), f"{proc.name} still running after a peer died"


def test_supervisor_reports_killed_process(no_leaked_segments):
    procs = [Idle("robot"), Idle("camera")]
    with Supervisor(procs) as sup:
        os.kill(procs[0].pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while sup.running and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ProcessFailed, match="process 'robot': exited unexpectedly with code -9"):
            sup.check()
        procs[1].join(5)
        assert not procs[1].is_alive()


def test_supervisor_start_failure_stops_the_started_ones(no_leaked_segments):
    procs = [Idle("robot"), Idle("camera", fail_in_setup=True), Idle("policy")]
    with pytest.raises(ProcessFailed, match="camera"):
        Supervisor(procs).start()
    assert not procs[0].is_alive()
    assert procs[2].pid is None  # never started


def _run_script(body: str, **kwargs) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from runtime_procs import Idle
        from robot_stack.runtime import Supervisor
        if __name__ == "__main__":
        """
    ) + textwrap.indent(textwrap.dedent(body), "    ")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if text in line:
            return line
    raise AssertionError(f"script never printed {text!r}")


def test_ctrl_c_stops_children_and_releases_shared_memory():
    before = shm_segments()
    script = _run_script(
        """
        import os
        procs = [Idle("a"), Idle("b")]
        with Supervisor(procs):
            print("PIDS", *[p.pid for p in procs], flush=True)
            while True:
                time.sleep(0.05)
        """
    )
    pids = [int(p) for p in _wait_for_line(script, "PIDS").split()[1:]]
    assert len(shm_segments() - before) == 2
    script.send_signal(signal.SIGINT)
    script.wait(20)
    assert "KeyboardInterrupt" in script.stderr.read()
    for pid in pids:
        assert not _pid_alive(pid)
    assert shm_segments() - before == set()


def test_exception_in_parent_releases_shared_memory():
    before = shm_segments()
    script = _run_script(
        """
        with Supervisor([Idle("a")]):
            raise RuntimeError("boom")
        """
    )
    script.wait(20)
    assert script.returncode == 1
    assert shm_segments() - before == set()


def test_children_exit_and_memory_is_reclaimed_when_parent_is_killed():
    before = shm_segments()
    script = _run_script(
        """
        procs = [Idle("a")]
        with Supervisor(procs):
            print("PIDS", procs[0].pid, flush=True)
            time.sleep(60)
        """
    )
    (pid,) = [int(p) for p in _wait_for_line(script, "PIDS").split()[1:]]
    script.kill()
    script.wait(10)
    deadline = time.monotonic() + 10
    while (_pid_alive(pid) or shm_segments() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid), "child kept running after its parent was killed"
    # multiprocessing's resource tracker unlinks what a SIGKILLed process could not.
    assert shm_segments() - before == set()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its dead parent's reaper) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
