"""Latency calibration: the estimators on exact synthetic signals, the simulated rig's known latencies
recovered through the running processes, the calibration file and eval's use of it."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from robot_stack.config import ConfigError
from robot_stack.data.replay import move_to
from robot_stack.rig import load_rig, start_rig
from robot_stack.rig.latency import (
    CameraLatency,
    InferenceLatency,
    LatencyCalibration,
    image_features,
    load_latency,
    save_latency,
    sweep,
    timestamp_offset,
    tracking_lag,
    triangle,
)
from robot_stack.runtime import RecordStream, now

CHECKPOINT = str(Path(__file__).resolve().parents[2] / "checkpoints" / "push_t_lowdim_sim.ckpt")
TOLERANCE = 0.005  # s: what the calibration must recover the simulated latencies to


def _disc_frames(positions: np.ndarray, size=(60, 80)) -> np.ndarray:
    """A bright disc at column 40 + 600 * x on a dark background, one frame per position."""
    rows, cols = np.mgrid[: size[0], : size[1]]
    return np.stack([np.where((rows - 30) ** 2 + (cols - 40 - 600 * x) ** 2 < 36, 220, 30) for x in positions]
                    ).astype(np.uint8)[..., None].repeat(3, axis=-1)


def test_tracking_lag_of_a_delayed_and_of_a_first_order_lagging_arm():
    t = np.arange(0.0, 6.0, 0.002)
    assert tracking_lag(0.0, 0.03, 2.0, t, triangle(t - 0.07, 0.03, 2.0)) == pytest.approx(0.07, abs=1e-9)
    lagging, x = [], 0.0  # a first-order lag (servoL's model) with time constant 0.05 s
    for target in triangle(t, 0.03, 2.0):
        x += (target - x) * 0.002 / 0.05
        lagging.append(x)
    # this discrete filter (it sees each target on the step it is set) lags a ramp by tau - h exactly
    assert tracking_lag(0.0, 0.03, 2.0, t, np.array(lagging)) == pytest.approx(0.05 - 0.002, abs=1e-4)


def test_timestamp_offset_of_frames_showing_the_arm_late_and_the_fit_of_unrelated_frames():
    t = np.arange(0.0, 6.0, 0.002)
    x = triangle(t, 0.03, 2.0)
    stamps = np.arange(0.4, 5.6, 1 / 30)
    frames = _disc_frames(np.interp(stamps - 0.023, t, x))  # each image shows the arm 23 ms before its stamp
    offset, fit = timestamp_offset(stamps, image_features(frames), t, x)
    assert offset == pytest.approx(0.023, abs=2e-3) and fit > 0.99  # a hard-edged disc: whole-pixel steps
    noise = np.random.default_rng(0).integers(0, 255, frames.shape, dtype=np.uint8)
    assert timestamp_offset(stamps, image_features(noise), t, x)[1] < 0.9


def test_calibration_file_round_trip_and_a_bad_value_named(tmp_path):
    calibration = LatencyCalibration("rig_a", 0.004, 0.008, 0.1, {"top": CameraLatency(0.04, 0.01, 0.999)},
                                     InferenceLatency(0.07, 0.09, 0.11, 30), "test")
    save_latency(calibration, tmp_path / "latency.yaml")
    assert load_latency(tmp_path / "latency.yaml") == calibration
    data = yaml.safe_load((tmp_path / "latency.yaml").read_text())
    data["tracking_lag"] = -1.0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="latencies must be finite"):
        load_latency(tmp_path / "bad.yaml")


def _camera_truth(frames: dict, scene: dict, robot_times: np.ndarray, robot_x: np.ndarray, table_x: float) -> float:
    """The twin's true timestamp offset of a camera: each frame shows the scene record published last before
    its capture, whose tip is where the arm was ``scene lag`` before that record (tip vs arm: exact numbers)."""
    tip_x = scene["pusher_xy"][:, 0] + table_x
    scene_lag, fit = timestamp_offset(scene["timestamp"], tip_x[:, None], robot_times, robot_x)
    assert fit > 0.999
    shown = np.searchsorted(scene["timestamp"], frames["timestamp"], side="right") - 1
    valid = shown >= 0
    content = scene["timestamp"][shown[valid]] - scene_lag
    return float(np.mean(frames["timestamp"][valid] - content))


def test_the_simulated_rig_latencies_are_recovered(sim_rig, cli, tmp_path):
    rig_path = sim_rig(cameras=[{"name": "top", "driver": "sim", "resolution": [160, 120], "fps": 30, "sim_latency": 0.03},
                                {"name": "oblique", "driver": "sim", "resolution": [160, 120], "fps": 30,
                                 "sim_latency": 0.07}])
    data = yaml.safe_load(rig_path.read_text())
    data["robot"]["lookahead_time"] = 0.06  # servoL time constant 0.06 * 300 / gain
    rig_path.write_text(yaml.safe_dump(data))
    rig = load_rig(rig_path)
    tau = rig.robot.lookahead_time * 300 / rig.robot.gain
    with start_rig(rig) as running:
        centre = np.array(running.robot.get_state()["actual_tcp_pose"])
        centre[:2] = rig.scene.table_center
        centre[2] = rig.scene.table_z + rig.scene.contact_height + 0.02
        move_to(running.robot.client, centre)
        streams = {c.config.name: RecordStream(c.frames, now(), ("receive_timestamp", "color")) for c in running.cameras}
        streams["scene"] = RecordStream(running.scene.state, now(), ("pusher_xy",))
        t0, states, records = sweep(running.robot.client, centre, 0.03, 2.0, 3, streams)
    times, x = states["timestamp"], states["actual_tcp_pose"][:, 0]
    # the arm: servoL's time constant plus the servo target's hold over one cycle (half a period on average)
    assert tracking_lag(t0, 0.03, 2.0, times, x - centre[0]) == pytest.approx(tau + 0.5 / rig.robot.frequency,
                                                                              abs=TOLERANCE)
    for camera in rig.cameras:
        frames = records[camera.name]
        truth = _camera_truth(frames, records["scene"], times, x, rig.scene.table_center[0])
        offset, fit = timestamp_offset(frames["timestamp"], image_features(frames["color"]), times, x)
        assert fit > 0.99
        assert offset == pytest.approx(truth, abs=TOLERANCE), camera.name
        # The median: on a loaded machine a few frames are published late (the camera process woke late).
        transport = float(np.median(frames["receive_timestamp"] - frames["timestamp"]))
        assert transport == pytest.approx(camera.sim_latency, abs=2e-3)

    # The command end to end: the file, and eval using it.
    out = tmp_path / "latency.yaml"
    result = cli.run("calibrate", "latency", "--rig", str(rig_path), "--out", str(out), "--cycles", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    calibration = load_latency(out)
    assert calibration.rig == rig.name and set(calibration.cameras) == {"top", "oblique"}
    assert calibration.tracking_lag == pytest.approx(tau + 0.5 / rig.robot.frequency, abs=TOLERANCE)
    # the queue hop plus the wait for the next cycle (the max depends on the machine's load, the mean hardly)
    assert 0 < calibration.command_latency < 1 / rig.robot.frequency + TOLERANCE
    assert calibration.command_latency_max >= calibration.command_latency
    # both cameras show the same scene: their latencies differ by the simulated difference
    cams = calibration.cameras
    assert cams["oblique"].latency - cams["top"].latency == pytest.approx(0.04, abs=TOLERANCE)
    assert 0 <= cams["top"].latency - 0.03 < 0.02  # the scene's own lag on top: one physics tick and a cycle


def test_eval_takes_its_robot_latency_from_the_calibration_and_refuses_another_rigs(sim_rig, cli, tmp_path):
    rig_path = sim_rig()
    eval_args = ("eval", "--rig", str(rig_path), "--checkpoint", CHECKPOINT, "--lockstep", "--episodes", "1",
                 "--workers", "1", "--max-duration", "1")
    save_latency(LatencyCalibration("test_pusht", 0.004, 0.009, 0.1, inference=InferenceLatency(0.05, 0.06, 0.07, 30)),
                 tmp_path / "ours.yaml")
    result = cli.run(*eval_args, "--latency", str(tmp_path / "ours.yaml"), "--json", str(tmp_path / "eval.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "robot latency 9.0 ms" in result.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["inference_latency"] == pytest.approx(0.05)
    save_latency(LatencyCalibration("another_rig", 0.004, 0.009, 0.1), tmp_path / "other.yaml")
    cli.one_line_error(cli.run(*eval_args, "--latency", str(tmp_path / "other.yaml")), 2, "another_rig", "test_pusht")
    cli.one_line_error(cli.run(*eval_args, "--latency", str(tmp_path / "missing.yaml")), 2, "missing.yaml",
                       "calibrate latency")


def test_a_latency_file_beside_the_camera_calibrations_is_not_taken_for_a_camera(tmp_path):
    import shutil

    from robot_stack.hardware.camera import load_rig_calibration

    shipped = Path(__file__).resolve().parents[2] / "calibration" / "sim_pusht"
    shutil.copytree(shipped, tmp_path / "sim_pusht")
    save_latency(LatencyCalibration("sim_pusht", 0.004, 0.008, 0.1), tmp_path / "sim_pusht" / "latency.yaml")
    assert sorted(load_rig_calibration("sim_pusht", tmp_path)) == ["oblique", "top"]
