"""CPU priorities: each device process (and the video encoder thread) gets its role's nice level, or says
in one line why it could not."""

import logging
import os
import threading

import numpy as np
import pytest
from runtime_procs import IdleBackground, IdleControl

from robot_stack.data.video_recorder import VideoRecorder
from robot_stack.runtime import SharedMemoryRingBuffer, now, scheduling
from robot_stack.runtime.scheduling import PRIORITIES, may_raise_priority, set_priority


def test_device_processes_get_their_roles_nice_level(no_leaked_segments):
    with IdleBackground("idle_background") as low, IdleControl("idle_control") as high:
        assert os.getpriority(os.PRIO_PROCESS, low.pid) == PRIORITIES["background"] == 10
        expected = PRIORITIES["control"] if may_raise_priority() else os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, high.pid) == expected


def test_a_priority_that_cannot_be_raised_is_kept_and_named_in_one_line(monkeypatch, caplog):
    def refuse(which, who, value):
        raise PermissionError("Operation not permitted")

    monkeypatch.setattr(scheduling.os, "setpriority", refuse)
    result = {}
    worker = threading.Thread(target=lambda: result.update(level=set_priority("control", "process 'robot'")))
    worker.start()
    worker.join()
    assert result["level"] == os.getpriority(os.PRIO_PROCESS, 0)  # unchanged
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and "process 'robot'" in lines[0] and "CAP_SYS_NICE" in lines[0]
    with pytest.raises(ValueError, match="unknown priority role"):
        set_priority("urgent", "x")


def test_the_video_recorders_encoder_thread_runs_at_background_priority(tmp_path, no_leaked_segments):
    spec = {"color": ((32, 32, 3), np.uint8), "timestamp": ((), np.float64), "frame_number": ((), np.int64),
            "dropped_frames": ((), np.int64)}
    buffer = SharedMemoryRingBuffer.create(spec, 16)
    try:
        recorder = VideoRecorder(buffer, tmp_path / "0.mp4", fps=30, t_start=now() - 1.0).start()
        for i in range(3):
            buffer.put({"color": np.full((32, 32, 3), 40 * i, np.uint8), "timestamp": now(), "frame_number": i + 1,
                        "dropped_frames": 0})
        deadline = now() + 5.0
        while recorder.frames < 3 and now() < deadline:
            threading.Event().wait(0.01)
        (encoder,) = [t for t in threading.enumerate() if t.name == f"video-{tmp_path / '0.mp4'}"]
        assert os.getpriority(os.PRIO_PROCESS, encoder.native_id) == PRIORITIES["background"]
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) != PRIORITIES["background"]  # only it
        assert recorder.stop().frames == 3
    finally:
        buffer.close()


def test_what_setup_built_is_frozen_out_of_the_collectors_generations(no_leaked_segments):
    from runtime_procs import FreezeReporter

    with FreezeReporter() as proc:
        deadline = now() + 10.0
        while proc.result.count == 0 and now() < deadline:
            threading.Event().wait(0.01)
        assert int(proc.result.get()["frozen"]) > 1000  # the imported modules' objects, at least


def test_default_pinning_gives_the_servo_loop_a_core_of_its_own_from_four_cores_on(monkeypatch, capsys):
    from robot_stack.cli import main
    from robot_stack.runtime import scheduling

    assert scheduling.default_cpus([0, 1, 2]) == {}  # too few cores to set one aside
    assert scheduling.default_cpus([0, 1, 2, 3]) == {"control": (3,), "policy": (2,), "device": (0, 1),
                                                      "background": (0, 1)}
    eight = scheduling.default_cpus(range(8))
    assert eight["control"] == (7,) and eight["policy"] == (4, 5, 6) and eight["device"] == (0, 1, 2, 3)
    assert all(7 not in cores for role, cores in eight.items() if role != "control")
    assert scheduling.rig_cpus({}) == {}  # the rig turned pinning off
    assert scheduling.rig_cpus({"control": (1,)}) == {"control": (1,)}  # the rig's own wins

    monkeypatch.setattr(scheduling, "available_cores", lambda: list(range(8)))
    main(["doctor", "--rig", "sim_pusht"])
    assert "pinning (default for 8 cores): control -> [7], policy -> [4, 5, 6]" in capsys.readouterr().out
