"""`robot-stack train` end to end on a tiny synthetic dataset."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
import torch
import yaml

from robot_stack.cli import main
from robot_stack.policy import load_policy
from robot_stack.policy.checkpoint import load_checkpoint
from robot_stack.policy.config import merge_dicts, read_yaml
from robot_stack.policy.config import _builtin_path as builtin_config_path


def write_task_yaml(path: Path, tiny_overrides_for) -> Path:
    data = merge_dicts(read_yaml(builtin_config_path("push_t")), tiny_overrides_for("transformer", [0]))
    data["name"] = "tiny_push_t"
    path.write_text(yaml.safe_dump(data))
    return path


def test_train_resume_and_load(tmp_path: Path, line_dataset: Path, tiny_overrides_for, capsys) -> None:
    config = write_task_yaml(tmp_path / "tiny.yaml", tiny_overrides_for)
    out = tmp_path / "run"
    args = ["train", "--dataset", str(line_dataset), "--config", str(config), "--out", str(out), "--device", "cpu",
            "--no-progress"]
    assert main([*args, "--epochs", "2", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "trained 8 steps (2 epochs) on cpu" in printed and "val loss" in printed
    payload = load_checkpoint(out / "latest.ckpt")
    assert payload["config"]["name"] == "tiny_push_t" and payload["config"]["training"]["seed"] == 3
    assert len(list(out.glob("epoch=*.ckpt"))) == 2

    # resume without --config: the stored config is used, more epochs extend the run
    assert main(["train", "--dataset", str(line_dataset), "--out", str(out), "--resume", "--epochs", "3",
                 "--no-progress", "--device", "cpu"]) == 0
    assert "trained 12 steps (3 epochs)" in capsys.readouterr().out
    assert len(list(out.glob("epoch=*.ckpt"))) == 2  # top_k: 2

    policy = load_policy(out / "latest.ckpt")
    obs = {"camera_0": torch.rand(1, 2, 3, 32, 32), "robot_eef_pose": torch.rand(1, 2, 6)}
    assert policy.predict_action(obs)["action"].shape == (1, 8, 2)
    assert policy.cfg.model == "transformer"

    # --steps stops mid-epoch; data loading in a worker process works
    steps_run = ["train", "--dataset", str(line_dataset), "--config", str(config), "--out", str(tmp_path / "steps")]
    assert main([*steps_run, "--steps", "3", "--num-workers", "1", "--no-progress", "--device", "cpu"]) == 0
    assert "trained 3 steps (0 epochs)" in capsys.readouterr().out


def test_user_errors_are_reported_without_traceback(tmp_path: Path, line_dataset: Path, tiny_overrides_for, capsys) -> None:
    config = write_task_yaml(tmp_path / "tiny.yaml", tiny_overrides_for)
    base = ["train", "--dataset", str(line_dataset), "--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu"]
    assert main(base) == 2
    assert "--config is required" in capsys.readouterr().err
    assert main([*base, "--config", "pushT"]) == 2
    assert "push_t, push_t_small, push_t_lowdim, push_t_lowdim_small, mug_flip, sauce" in capsys.readouterr().err
    assert main(["train", "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), "--config", str(config)]) == 2
    assert "no replay buffer" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "policy": {"action": [{"key": "action", "dims": 2}], "horizon": 15}}))
    assert main([*base, "--config", str(bad)]) == 2
    assert "horizon (15)" in capsys.readouterr().err
    assert main([*base, "--config", str(config), "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main([*base, "--config", str(config), "--epochs", "1"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*base, "--resume", "--seed", "5"]) == 2
    assert "cannot change" in capsys.readouterr().err


def test_training_writes_metrics_tensorboard_and_a_report(tmp_path: Path, line_dataset: Path, tiny_overrides_for,
                                                          capsys) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from robot_stack.policy.metrics import read_metrics

    config = write_task_yaml(tmp_path / "tiny.yaml", tiny_overrides_for)
    data = yaml.safe_load(config.read_text())
    data["training"]["log_every_steps"] = 2
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    args = ["train", "--dataset", str(line_dataset), "--out", str(out), "--device", "cpu", "--no-progress",
            "--wandb", "offline"]
    assert main([*args, "--config", str(config), "--epochs", "2"]) == 0  # 4 steps per epoch
    assert main([*args, "--resume", "--epochs", "3"]) == 0
    capsys.readouterr()

    metrics = read_metrics(out)
    assert [s for s, _ in metrics["train/loss"]] == [2, 4, 6, 8, 10, 12]  # one line per 2 steps, resume continues
    assert all(v > 0 for _, v in metrics["train/loss"] + metrics["train/grad_norm"] + metrics["train/samples_per_s"])
    assert [s for s, _ in metrics["val/loss"]] == [4, 8, 12]  # every epoch
    lrs = [v for _, v in metrics["train/lr"]]
    assert lrs[0] > 0 and lrs[-1] < max(lrs)  # warmup then cosine decay

    events = EventAccumulator(str(out / "tensorboard")).Reload()
    assert {"train/loss", "train/lr", "train/grad_norm", "val/loss"} <= set(events.Tags()["scalars"])
    tb_loss = {e.step: e.value for e in events.Scalars("train/loss")}
    assert sorted(tb_loss) == [2, 4, 6, 8, 10, 12]
    assert tb_loss[12] == pytest.approx(metrics["train/loss"][-1][1], rel=1e-6)

    # W&B offline: the resumed run continues the same W&B run, with the same numbers
    run_id = (out / "wandb_run_id").read_text().strip()
    files = sorted((out / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(files) == 2
    records = [r for f in files for r in read_wandb_records(f)]
    runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert {r.run_id for r in runs} == {run_id} and {r.project for r in runs} == {"robot_stack"}
    assert any(item.key == "policy" for item in runs[0].config.update)  # the task config travels with the run
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    wandb_loss = [(h["trainer/step"], h["train/loss"]) for h in history if "train/loss" in h]
    assert [s for s, _ in wandb_loss] == [s for s, _ in metrics["train/loss"]]
    assert [v for _, v in wandb_loss] == pytest.approx([v for _, v in metrics["train/loss"]], rel=1e-6)
    assert [h["trainer/step"] for h in history if "val/loss" in h] == [4, 8, 12]

    assert main(["report", str(out)]) == 0
    png = out / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "train/loss" in capsys.readouterr().out


def read_wandb_records(path: Path) -> list:
    """The protobuf records of a W&B ``.wandb`` transaction log (wandb has no public reader): a 7-byte file
    header, then a LevelDB-style log of 32 KiB blocks whose records are split into fragments, each with a
    7-byte header (crc32 u32, length u16, type u8: 1 whole, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack_from("<IHB", data, pos)
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_without_the_package_is_one_clear_line(tmp_path: Path, line_dataset: Path, tiny_overrides_for,
                                                      capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    config = write_task_yaml(tmp_path / "tiny.yaml", tiny_overrides_for)
    assert main(["train", "--dataset", str(line_dataset), "--out", str(tmp_path / "run"), "--config", str(config),
                 "--device", "cpu", "--no-progress", "--epochs", "1", "--wandb", "offline"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'robot_stack[wandb]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "latest.ckpt").exists()


def test_report_names_a_folder_without_metrics(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl" in err and str(tmp_path) in err and len(err.strip().splitlines()) == 1
