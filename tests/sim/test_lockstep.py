"""The lockstep twin of the sim_pusht rig: the runtime's parts in simulated time, deterministic, with the
runtime's timing model (servo cycles, command hop, camera grid and latency)."""

import numpy as np
import pytest

from robot_stack.config import ConfigError
from robot_stack.rig import load_rig
from robot_stack.runtime import SharedMemoryRingBuffer, StaleDataError
from robot_stack.runtime.record_buffer import RecordBuffer
from robot_stack.sim.lockstep import LockstepPushT, check_lockstep_rig

RIG = load_rig("sim_pusht")


def _sim(**kw) -> LockstepPushT:
    return LockstepPushT(RIG.robot, RIG.scene, RIG.cameras, **kw)


def _push(sim: LockstepPushT, steps: int = 30) -> list[np.ndarray]:
    """Drive the tip on a fixed path; returns the block pose after each 0.1 s step."""
    start = sim.arm.get_state()["actual_tcp_pose"].copy()
    poses = []
    for k in range(steps):
        target = start.copy()
        target[:2] += [0.004 * k, 0.003 * k]
        target[2] = RIG.planar_z
        sim.schedule_waypoint(target, sim.now() + 0.2)
        sim.advance(0.1)
        poses.append(sim.scene.get_state()["block_pose"].copy())
    return poses


def test_an_episode_is_deterministic_for_its_seed():
    runs = []
    for _ in range(2):
        sim = _sim(seed=7)
        sim.scene.reset(7)
        runs.append((_push(sim), sim.arm.get_state()["actual_tcp_pose"], sim.cameras[0].get()["color"]))
    np.testing.assert_array_equal(np.array(runs[0][0]), np.array(runs[1][0]))
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    other = _sim(seed=8)
    assert not np.array_equal(other.scene.reset(8)["block_pose"], _sim(seed=7).scene.reset(7)["block_pose"])


def test_servo_scene_and_cameras_keep_the_runtime_timing():
    sim = _sim()
    t0 = sim.now()
    sim.advance(1.0)
    robot = sim.robot_state.get_since(t0)
    assert np.allclose(np.diff(robot["timestamp"]), 1.0 / RIG.robot.frequency)  # one record per servo cycle
    scene = sim.scene_state.get_since(t0)
    assert np.allclose(np.diff(scene["timestamp"]), 1.0 / RIG.scene.physics_hz)
    for cam, buf in zip(RIG.cameras, sim.cameras):
        frames = buf.get_since(t0)
        assert np.allclose(np.diff(frames["timestamp"]), 1.0 / cam.fps)  # the capture grid
        # readable sim_latency after capture: the newest frame is at least that old
        assert np.allclose(frames["receive_timestamp"] - frames["timestamp"], cam.sim_latency)
        assert sim.now() - frames["timestamp"][-1] >= cam.sim_latency - 1e-9
        assert frames["color"][0].shape == (cam.image_size[1], cam.image_size[0], 3)


def test_a_waypoint_takes_effect_at_the_next_servo_cycle_and_the_tip_lags():
    sim = _sim()
    start = sim.arm.get_state()["actual_tcp_pose"].copy()
    target = start.copy()
    target[0] += 0.05
    sim.schedule_waypoint(target, sim.now() + 0.4)
    commanded = sim.arm.get_state()["commanded_pose"][0]
    assert sim.servo.trajectory(sim.now() + 0.4)[0] == pytest.approx(commanded)  # queued, not applied yet
    sim.advance(1.0 / RIG.robot.frequency)
    assert sim.servo.trajectory(sim.now() + 0.4)[0] == pytest.approx(target[0], abs=1e-6)  # applied this cycle
    sim.advance(2.0 / RIG.robot.frequency)
    assert sim.arm.get_state()["commanded_pose"][0] > commanded
    sim.advance(0.4)
    lag = target[0] - sim.arm.get_state()["actual_tcp_pose"][0]
    assert lag > 1e-3  # the arm trails its command (servoL lookahead), as in the runtime
    sim.advance(1.0)
    assert abs(target[0] - sim.arm.get_state()["actual_tcp_pose"][0]) < 1e-3


def test_reset_applies_at_the_next_physics_tick():
    sim = _sim()
    episode = int(sim.scene.get_state()["episode"])
    state = sim.scene.reset(42)
    assert int(state["episode"]) == episode + 1 and int(state["seed"]) == 42


def test_only_simulated_push_t_rigs_run_in_lockstep():
    real = load_rig("ur5_cb3_example")
    with pytest.raises(ConfigError, match="runs simulated Push-T rigs only.*no scene.*driver is 'rtde'"):
        check_lockstep_rig(real.name, real.robot, real.scene, real.cameras)


def test_record_buffer_reads_like_the_shared_memory_ring_buffer():
    spec = {"x": ((2,), np.float64), "timestamp": ((), np.float64)}
    local, shared = RecordBuffer(spec, 8), SharedMemoryRingBuffer.create(spec, 8)
    try:
        for buf in (local, shared):
            with pytest.raises(StaleDataError):
                buf.get()
        for i in range(13):  # laps the capacity
            for buf in (local, shared):
                buf.put({"x": [i, -i], "timestamp": 0.5 * i})
        assert local.count == shared.count == 13
        for read in (lambda b: b.get(), lambda b: b.get_last_k(5), lambda b: b.get_since(4.2)):
            a, b = read(local), read(shared)
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        # the shared buffer keeps one slot of slack; both return the newest records after t
        assert list(local.get_since(0.0)["timestamp"])[-3:] == [5.0, 5.5, 6.0]
    finally:
        shared.close()
