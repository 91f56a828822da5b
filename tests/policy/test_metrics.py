"""``MetricsLog``: a run resumed after a crash continues its curves without the interrupted run's tail."""

import math

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from robot_stack.policy.metrics import METRICS_FILE, MetricsLog, read_metrics


def test_a_resumed_run_supersedes_what_the_crashed_run_logged_after_its_checkpoint(tmp_path, caplog):
    with MetricsLog(tmp_path) as first:  # crashed after step 5; its last checkpoint was at step 3
        for step in range(1, 6):
            first.log(step, {"train/loss": float(step), "val/loss": math.nan})
    with open(tmp_path / METRICS_FILE, "a") as f:
        f.write('{"step": 6, "train/lo')  # the line being written when it died
    with MetricsLog(tmp_path, resume_step=3) as resumed:
        for step in (4, 5, 6):
            resumed.log(step, {"train/loss": 10.0 * step})

    metrics = read_metrics(tmp_path)
    assert metrics["train/loss"] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0), (5, 50.0), (6, 60.0)]
    assert "val/loss" not in metrics  # not finite: null in the file, never a number
    assert any("line 6" in r.getMessage() for r in caplog.records)  # the cut line is reported, not parsed

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == metrics["train/loss"]
    assert "val/loss" not in events.Tags()["scalars"]
