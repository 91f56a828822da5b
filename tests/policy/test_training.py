"""Training loop: overfitting, checkpoints (save/load/top-k), resume, determinism, interruption."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from robot_stack.config import ConfigError
from robot_stack.policy.checkpoint import export_for_inference, load_checkpoint, load_policy
from robot_stack.policy.checkpoint import main as checkpoint_main
from robot_stack.policy.config import load_task_config, merge_dicts
from robot_stack.policy.trainer import LATEST, Trainer, lr_at, resolve_device


def make_config(tiny_overrides_for, model: str = "unet", cameras=None, **training):
    return load_task_config("push_t", merge_dicts(tiny_overrides_for(model, cameras), {"training": training}))


def dataset_loss(trainer: Trainer) -> float:
    """Denoising loss over the whole training set, eval mode, fixed noise (averaged over 4 draws)."""
    trainer.policy.eval()
    batch = next(iter(DataLoader(trainer.train_set, batch_size=len(trainer.train_set))))
    with torch.no_grad():
        return float(np.mean([trainer.policy.compute_loss(batch, torch.Generator().manual_seed(s)).item() for s in range(4)]))


@pytest.mark.parametrize("model, steps", [("unet", 300), ("transformer", 400)])
def test_overfits_a_handful_of_trajectories(model: str, steps: int, tmp_path: Path, tiny_overrides_for,
                                            dataset_writer, make_line_episodes) -> None:
    root = dataset_writer(tmp_path / "ds", make_line_episodes(n=4), cameras=(0,))
    cfg = make_config(tiny_overrides_for, model, batch_size=32, max_steps=steps, num_epochs=10_000, lr=2e-3,
                      val_ratio=0.0, ema=False, checkpoint_every_epochs=10_000)
    trainer = Trainer(cfg, root, tmp_path / "out", show_progress=False)
    before = dataset_loss(trainer)
    result = trainer.run()
    after = dataset_loss(trainer)
    assert result.global_step == steps
    assert before / after > 10, f"loss only went from {before:.4f} to {after:.4f}"


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path: Path, tiny_overrides_for, line_dataset: Path) -> None:
    cfg = make_config(tiny_overrides_for, num_epochs=2, top_k=1)
    trainer = Trainer(cfg, line_dataset, tmp_path / "out", show_progress=False)
    result = trainer.run()
    out = tmp_path / "out"
    # top-k keeps only the best epoch (by validation loss); latest is always there
    ckpts = sorted(p.name for p in out.glob("*.ckpt"))
    assert LATEST in ckpts and len(ckpts) == 2 and result.best[0][1] in ckpts
    payload = torch.load(out / LATEST, weights_only=True)  # shareable: no pickled objects
    assert payload["train_state"]["global_step"] == result.global_step
    assert payload["config"]["policy"]["horizon"] == cfg.policy.horizon
    assert "optimizer" in payload["state_dicts"]
    assert "optimizer" not in torch.load(out / result.best[0][1], weights_only=True)["state_dicts"]

    policy = load_policy(out / LATEST, device="cpu")
    assert not policy.training
    assert (policy.n_obs_steps, policy.n_action_steps, policy.horizon) == (2, 8, 16)
    batch = next(iter(DataLoader(trainer.train_set, batch_size=4)))
    expected = trainer.ema.ema_model.eval().predict_action(batch["obs"], generator=torch.Generator().manual_seed(7))
    got = policy.predict_action(batch["obs"], generator=torch.Generator().manual_seed(7))
    assert torch.equal(got["action_pred"], expected["action_pred"])
    raw = load_policy(out / LATEST, use_ema=False)
    assert torch.equal(raw.normalizer.params_dict["action"]["scale"], trainer.policy.normalizer.params_dict["action"]["scale"])
    assert not torch.equal(raw.model.final_conv[1].weight, policy.model.final_conv[1].weight)  # EMA differs from raw

    # The inference-only export keeps the EMA weights (same predictions) and drops the rest.
    exported = export_for_inference(out / LATEST, tmp_path / "small.ckpt")
    assert exported.stat().st_size < 0.6 * (out / LATEST).stat().st_size
    assert list(torch.load(exported, weights_only=True)["state_dicts"]) == ["model"]
    slim = load_policy(exported).predict_action(batch["obs"], generator=torch.Generator().manual_seed(7))
    assert torch.equal(slim["action_pred"], expected["action_pred"])
    assert load_policy(exported).steps_per_inference is None  # the config's: the whole chunk

    # How the exported policy is run by default can be set; the weights stay the same, a bad value is refused.
    assert checkpoint_main([str(out / LATEST), str(tmp_path / "spi4.ckpt"), "--steps-per-inference", "4"]) is None
    four = load_policy(tmp_path / "spi4.ckpt")
    assert four.steps_per_inference == 4
    assert torch.equal(four.predict_action(batch["obs"], generator=torch.Generator().manual_seed(7))["action_pred"],
                       expected["action_pred"])
    assert four.chunking is None  # not chosen: switch
    assert checkpoint_main([str(out / LATEST), str(tmp_path / "ens.ckpt"), "--chunking", "ensemble"]) is None
    assert load_policy(tmp_path / "ens.ckpt").chunking == "ensemble"
    assert checkpoint_main([str(out / LATEST), str(tmp_path / "dpm.ckpt"), "--sampler", "dpmsolver",
                            "--inference-steps", "4"]) is None
    dpm = load_policy(tmp_path / "dpm.ckpt")
    assert (dpm.sampler_name, dpm.num_inference_steps) == ("dpmsolver", 4)
    with pytest.raises(SystemExit) as exit_info:
        checkpoint_main([str(out / LATEST), str(tmp_path / "spi9.ckpt"), "--steps-per-inference", "9"])
    assert exit_info.value.code == 2 and not (tmp_path / "spi9.ckpt").exists()


def interrupt_at_call(trainer: Trainer, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the ``n``-th training step raise KeyboardInterrupt (as Ctrl-C would)."""
    real_loss = trainer.policy.compute_loss
    calls = []

    def loss(batch, generator=None):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real_loss(batch, generator)

    monkeypatch.setattr(trainer.policy, "compute_loss", loss)


def test_resume_extends_a_finished_run_and_continues_the_step_count(tmp_path: Path, tiny_overrides_for,
                                                                    line_dataset: Path) -> None:
    first = Trainer(make_config(tiny_overrides_for, num_epochs=2), line_dataset, tmp_path / "out", show_progress=False)
    steps_per_epoch = first.steps_per_epoch
    assert first.run().global_step == 2 * steps_per_epoch
    resumed = Trainer(make_config(tiny_overrides_for, num_epochs=4), line_dataset, tmp_path / "out", resume=True,
                      show_progress=False)
    assert (resumed.global_step, resumed.epoch) == (2 * steps_per_epoch, 2)
    result = resumed.run()
    assert (result.global_step, result.epoch) == (4 * steps_per_epoch, 4)
    assert load_checkpoint(tmp_path / "out" / LATEST)["train_state"]["global_step"] == 4 * steps_per_epoch


def test_run_resumed_at_an_epoch_end_is_identical_to_an_uninterrupted_one(tmp_path: Path, tiny_overrides_for,
                                                                          line_dataset: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(tiny_overrides_for, num_epochs=4)
    straight = Trainer(cfg, line_dataset, tmp_path / "a", show_progress=False)
    full = straight.run()
    stopped = Trainer(cfg, line_dataset, tmp_path / "b", show_progress=False)
    interrupt_at_call(stopped, 2 * stopped.steps_per_epoch + 1, monkeypatch)  # first step of epoch 2
    with pytest.raises(KeyboardInterrupt):
        stopped.run()
    resumed = Trainer(cfg, line_dataset, tmp_path / "b", resume=True, show_progress=False)
    assert (resumed.global_step, resumed.epoch) == (2 * resumed.steps_per_epoch, 2)
    second = resumed.run()
    assert (second.global_step, second.epoch) == (full.global_step, 4)
    # seeded data order per epoch + restored RNG/optimizer/EMA: bit-identical to never stopping
    for key, value in straight.policy.state_dict().items():
        assert torch.equal(value, resumed.policy.state_dict()[key]), key
    for key, value in straight.ema.ema_model.state_dict().items():
        assert torch.equal(value, resumed.ema.ema_model.state_dict()[key]), key
    assert second.val_loss == full.val_loss


def test_interrupt_mid_epoch_saves_latest_and_resume_continues(tmp_path: Path, tiny_overrides_for, line_dataset: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(tiny_overrides_for, num_epochs=3)
    trainer = Trainer(cfg, line_dataset, tmp_path / "out", show_progress=False)
    interrupt_at_call(trainer, 3, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    state = load_checkpoint(tmp_path / "out" / LATEST)["train_state"]
    assert (state["global_step"], state["epoch"]) == (2, 0)
    resumed = Trainer(cfg, line_dataset, tmp_path / "out", resume=True, show_progress=False)
    assert resumed.global_step == 2
    result = resumed.run()
    # the step count keeps going from 2 (the interrupted epoch's data restarts from its beginning) and the
    # run ends at its planned number of steps, where the learning-rate schedule ends
    assert result.global_step == 3 * resumed.steps_per_epoch
    assert load_checkpoint(tmp_path / "out" / LATEST)["train_state"]["global_step"] == result.global_step


def test_existing_run_needs_resume_and_max_steps_stops_mid_epoch(tmp_path: Path, tiny_overrides_for,
                                                                  line_dataset: Path) -> None:
    cfg = make_config(tiny_overrides_for, num_epochs=50, max_steps=3)
    result = Trainer(cfg, line_dataset, tmp_path / "out", show_progress=False).run()
    assert result.global_step == 3 and result.epoch == 0
    with pytest.raises(ConfigError, match="--resume"):
        Trainer(cfg, line_dataset, tmp_path / "out", show_progress=False)
    longer = Trainer(make_config(tiny_overrides_for, num_epochs=50, max_steps=5), line_dataset, tmp_path / "out",
                     resume=True, show_progress=False).run()
    assert longer.global_step == 5


def test_learning_rate_schedule() -> None:
    assert lr_at(0, 1.0, 10, 110) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 10, 110) == pytest.approx(1.0)
    assert lr_at(60, 1.0, 10, 110) == pytest.approx(0.5)  # halfway through the cosine
    assert lr_at(110, 1.0, 10, 110) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(0, 1.0, 0, 10) == pytest.approx(1.0)


def test_foreign_or_missing_checkpoints_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "nope.ckpt")
    pickled = tmp_path / "pickled.ckpt"
    pickled.write_bytes(pickle.dumps({"cfg": ConfigError("x")}, protocol=2))
    with pytest.raises(ConfigError, match="not a robot_stack checkpoint"):
        load_policy(pickled)
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ConfigError, match="format tag"):
        load_policy(tmp_path / "other.ckpt")


def test_unavailable_devices_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("gpu0")
    assert resolve_device("cpu") == torch.device("cpu")


def test_rollout_evaluation_ranks_checkpoints_and_keeps_the_learning_curve(tmp_path: Path, tiny_overrides_for,
                                                                          line_dataset: Path) -> None:
    rates = iter([0.2, 0.6, 0.4, 0.6])
    seen = []

    def evaluator(policy, timing) -> float:
        seen.append((policy.training, timing.action_delay_steps))
        return next(rates)

    cfg = make_config(tiny_overrides_for, num_epochs=4, top_k=2)
    trainer = Trainer(cfg, line_dataset, tmp_path / "out", show_progress=False, evaluator=evaluator, eval_every=1)
    trainer.run()
    # The EMA policy, in eval mode, with the dataset's timing (line_dataset records none: the original's, 0).
    assert seen == [(False, 0)] * 4
    history = load_checkpoint(tmp_path / "out" / LATEST)["train_state"]["eval_history"]
    steps = trainer.steps_per_epoch
    assert history == [[steps, 0.2], [2 * steps, 0.6], [3 * steps, 0.4], [4 * steps, 0.6]]
    kept = sorted(p.name for p in (tmp_path / "out").glob("epoch=*.ckpt"))
    # The two best by success; of the two at 0.6 the later ranks first.
    assert [name for _, name in trainer.best] == [kept[1], kept[0]]
    assert kept[0].startswith("epoch=0002") and kept[1].startswith("epoch=0004") and "success=0.600" in kept[1]


def test_checkpoints_carry_the_datasets_timing_convention(tmp_path: Path, tiny_overrides_for, dataset_writer,
                                                         make_line_episodes, original_layout_writer, caplog) -> None:
    """Recorded convention -> into every checkpoint (and its inference export); none -> the original's (logged)."""
    from robot_stack.data.dataset import EpisodeDataset

    cameras = [{"name": "top", "driver": "sim", "resolution": [32, 32], "crop": None, "image_size": [32, 32],
                "fps": 10}]
    ours = dataset_writer(tmp_path / "ours", make_line_episodes(n=2, length=12), cameras=(0,))
    with EpisodeDataset.open(ours, "a") as dataset:
        dataset.replay_buffer.attrs["timing_convention"] = {"dt": 0.1, "action_delay_steps": 2}
        dataset.replay_buffer.attrs["cameras"] = cameras
    cfg = make_config(tiny_overrides_for, num_epochs=1, val_ratio=0.0)
    Trainer(cfg, ours, tmp_path / "run1", show_progress=False).run()
    expected = {"timing": {"dt": 0.1, "action_delay_steps": 2}, "cameras": cameras}
    assert load_checkpoint(tmp_path / "run1" / LATEST)["convention"] == expected
    export_for_inference(tmp_path / "run1" / LATEST, tmp_path / "small.ckpt")
    assert load_checkpoint(tmp_path / "small.ckpt")["convention"] == expected

    original = original_layout_writer(tmp_path / "original", make_line_episodes(n=2, length=12))
    with caplog.at_level("INFO"):
        Trainer(cfg, original, tmp_path / "run2", show_progress=False).run()
    assert "records no action-timing convention: using the original Diffusion Policy's" in caplog.text
    assert load_checkpoint(tmp_path / "run2" / LATEST)["convention"] == {
        "timing": {"dt": pytest.approx(0.1), "action_delay_steps": 0}, "cameras": None}


def test_bf16_training_follows_the_fp32_run(tmp_path: Path, tiny_overrides_for, line_dataset: Path) -> None:
    cfg = make_config(tiny_overrides_for, max_steps=4, num_epochs=100, val_ratio=0.0)
    reference = Trainer(cfg, line_dataset, tmp_path / "fp32", show_progress=False)
    expected = reference.run()
    result = Trainer(cfg, line_dataset, tmp_path / "bf16", show_progress=False, precision="bf16").run()
    assert result.global_step == expected.global_step == 4
    assert result.train_loss == pytest.approx(expected.train_loss, rel=2e-2)  # bf16: ~3 significant digits
    # weights, EMA and checkpoints stay float32
    saved = load_checkpoint(tmp_path / "bf16" / LATEST)["state_dicts"]
    for name in ("model", "ema_model"):
        assert all(v.dtype == torch.float32 for v in saved[name].values() if v.is_floating_point()), name


def test_compiled_training_computes_what_eager_training_does(tmp_path: Path, tiny_overrides_for,
                                                             line_dataset: Path) -> None:
    # no camera: a compiled random crop would draw other random numbers than eager, making runs incomparable
    cfg = make_config(tiny_overrides_for, cameras=[], max_steps=3, num_epochs=100, val_ratio=0.0)
    reference = Trainer(cfg, line_dataset, tmp_path / "eager", show_progress=False)
    expected = reference.run()
    compiled = Trainer(cfg, line_dataset, tmp_path / "compiled", show_progress=False, compile=True)
    result = compiled.run()
    assert result.train_loss == pytest.approx(expected.train_loss, rel=1e-4)  # the same sums, reordered
    # compiled in place: the checkpoint has the eager module's keys and loads into a plain policy
    saved = load_checkpoint(tmp_path / "compiled" / LATEST)["state_dicts"]["model"]
    for key, value in reference.policy.state_dict().items():
        assert torch.allclose(saved[key], value, rtol=1e-3, atol=1e-5), key
    assert saved.keys() == reference.policy.state_dict().keys()


def test_unknown_training_precision_is_a_config_error(tmp_path: Path, tiny_overrides_for, line_dataset: Path) -> None:
    with pytest.raises(ConfigError, match="precision 'fp16'"):
        Trainer(make_config(tiny_overrides_for), line_dataset, tmp_path / "out", precision="fp16")
