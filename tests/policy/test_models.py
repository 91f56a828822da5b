"""Network shapes, observation checks, scheduler choices and parameter naming of the policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.config import ConfigError
from robot_stack.policy.config import load_task_config, merge_dicts
from robot_stack.policy.diffusion_policy import DiffusionPolicy
from robot_stack.policy.noise_schedulers import inference_scheduler
from robot_stack.policy.obs_encoder import center_crop, random_crop
from robot_stack.policy.resnet import ResNetEncoder, keypoint_grid
from robot_stack.policy.transformer import TransformerForDiffusion
from robot_stack.policy.unet import ConditionalUnet1D


IMAGE = 32  # conftest's synthetic image size


def obs_batch(policy: DiffusionPolicy, batch: int = 3, low_dim_extra: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        key: torch.rand((batch, policy.n_obs_steps, *shape[:-1], shape[-1] + (low_dim_extra if len(shape) == 1 else 0)), generator=g)
        for key, shape in policy.obs_shapes.items()
    }


@pytest.mark.parametrize("model", ["unet", "transformer"])
@pytest.mark.parametrize("cameras", [[0], [0, 1]])
def test_predict_action_shapes(model: str, cameras: list[int], tiny_config) -> None:
    policy = DiffusionPolicy(tiny_config(model=model, cameras=cameras).policy).eval()
    assert policy.obs_shapes == {**{f"camera_{c}": (3, IMAGE, IMAGE) for c in cameras}, "robot_eef_pose": (2,)}
    out = policy.predict_action(obs_batch(policy, batch=3))
    assert out["action_pred"].shape == (3, policy.horizon, 2)
    assert out["action"].shape == (3, policy.n_action_steps, 2)
    start = policy.n_obs_steps - 1
    assert torch.equal(out["action"], out["action_pred"][:, start : start + policy.n_action_steps])
    # training loss is a finite scalar with gradients reaching the image encoder
    policy.train()
    batch = {"obs": obs_batch(policy), "action": torch.rand(3, policy.horizon, 2)}
    loss = policy.compute_loss(batch)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert policy.obs_encoder.key_model_map["camera_0"].conv1.weight.grad.abs().sum() > 0


def test_training_works_after_inference(tiny_config) -> None:
    """predict_action runs in inference mode; nothing it caches (the spatial-softmax grid) may break the
    training steps that follow it, as they do after each in-training rollout."""
    keypoint_grid.cache_clear()  # made first under inference mode, as in a fresh process
    policy = DiffusionPolicy(tiny_config(cameras=[0]).policy).eval()
    assert policy.cfg.vision.pool == "spatial_softmax"
    out = policy.predict_action(obs_batch(policy))
    assert out["action"].is_inference()
    policy.train()
    loss = policy.compute_loss({"obs": obs_batch(policy), "action": torch.rand(3, policy.horizon, 2)})
    loss.backward()
    assert torch.isfinite(loss) and policy.obs_encoder.key_model_map["camera_0"].conv1.weight.grad.abs().sum() > 0


def test_network_shapes_for_task_defaults() -> None:
    """The paper-size networks build from the shipped configs and map shapes correctly."""
    cfg = load_task_config("mug_flip").policy
    unet = ConditionalUnet1D(input_dim=6, global_cond_dim=20, cfg=cfg.unet)
    x = torch.randn(2, 16, 6)
    assert unet(x, torch.tensor([3, 7]), torch.randn(2, 20)).shape == (2, 16, 6)
    tf = TransformerForDiffusion(6, 20, horizon=16, n_obs_steps=2, cfg=cfg.transformer)
    assert tf(x, torch.tensor(5), torch.randn(2, 2, 20)).shape == (2, 16, 6)
    resnet = ResNetEncoder(pool="avg")
    assert resnet(torch.rand(1, 3, 96, 96)).shape == (1, 512)
    assert ResNetEncoder()(torch.rand(1, 3, 96, 96)).shape == (1, 64)


def test_shared_vision_model_matches_per_camera_layout(tiny_config) -> None:
    cfg = tiny_config(cameras=[0, 1], vision={"share_model": True}).policy
    policy = DiffusionPolicy(cfg).eval()
    assert list(policy.obs_encoder.key_model_map.keys()) == ["rgb"]
    obs = obs_batch(policy, batch=2)
    flat = {k: v[:, 0] for k, v in obs.items()}
    feats = policy.obs_encoder(flat)
    backbone = policy.obs_encoder.key_model_map["rgb"]
    d = backbone.out_dim
    cam1 = backbone(center_crop(flat["camera_1"], (28, 28)))
    assert torch.allclose(feats[:, d : 2 * d], cam1, atol=1e-5)
    assert torch.equal(feats[:, 2 * d :], flat["robot_eef_pose"])


def test_low_dim_inputs_use_leading_columns(tiny_config) -> None:
    policy = DiffusionPolicy(tiny_config().policy).eval()
    obs = obs_batch(policy, batch=2, low_dim_extra=4)  # 6-D poses for a 2-D low-dim config
    trimmed = {**obs, "robot_eef_pose": obs["robot_eef_pose"][..., :2]}
    a = policy.predict_action(obs, generator=torch.Generator().manual_seed(0))["action"]
    b = policy.predict_action(trimmed, generator=torch.Generator().manual_seed(0))["action"]
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda o: o.pop("camera_0"), "missing keys"),
        (lambda o: o.__setitem__("camera_0", o["camera_0"][:, :1]), "expected shape"),
        (lambda o: o.__setitem__("camera_0", o["camera_0"][..., :20]), "expected shape"),
        (lambda o: o.__setitem__("robot_eef_pose", o["robot_eef_pose"][..., :1]), "expected shape"),
        (lambda o: o["robot_eef_pose"].__setitem__((0, 0, 0), float("nan")), "NaN or inf"),
        (lambda o: o.__setitem__("camera_0", o["camera_0"] * 255), r"\[0, 1\]"),
        (lambda o: o.__setitem__("camera_0", (o["camera_0"] * 255).to(torch.uint8)), "uint8"),
        (lambda o: o.__setitem__("robot_eef_pose", o["robot_eef_pose"][:1]), "batch size"),
    ],
)
def test_bad_observations_are_refused(mutate, message: str, tiny_config) -> None:
    policy = DiffusionPolicy(tiny_config().policy).eval()
    obs = obs_batch(policy)
    mutate(obs)
    with pytest.raises(ValueError, match=message):
        policy.predict_action(obs)


def test_numpy_observations_are_accepted(tiny_config) -> None:
    policy = DiffusionPolicy(tiny_config().policy).eval()
    obs = {k: v.numpy() for k, v in obs_batch(policy, batch=1).items()}
    assert policy.predict_action(obs)["action"].shape == (1, policy.n_action_steps, 2)


@pytest.mark.parametrize("sampler, steps", [("ddim", 4), ("ddim", 16), ("ddpm", 100), ("dpmsolver", 4)])
def test_sampler_choices(sampler: str, steps: int, tiny_config) -> None:
    policy = DiffusionPolicy(tiny_config().policy).eval()
    policy.configure_inference(sampler, steps)
    assert type(policy.sampler).__name__ == {"ddim": "DDIMScheduler", "ddpm": "DDPMScheduler",
                                             "dpmsolver": "DPMSolverMultistepScheduler"}[sampler]
    assert len(policy.sampler.timesteps) == steps
    calls = []
    hook = policy.model.register_forward_hook(lambda *_: calls.append(1))
    obs = obs_batch(policy, batch=2)
    a = policy.predict_action(obs, generator=torch.Generator().manual_seed(3))["action"]
    b = policy.predict_action(obs, generator=torch.Generator().manual_seed(3))["action"]
    hook.remove()
    assert len(calls) == 2 * steps  # one network evaluation per denoising step
    assert torch.equal(a, b)  # a seeded generator makes sampling reproducible (DPM-Solver's state is reset)


@pytest.mark.parametrize("steps", [4, 8, 16, 50, 100])
def test_dpm_solver_visits_ddims_timesteps_and_clips_as_ddim_does(steps: int, tiny_config) -> None:
    cfg = tiny_config().policy.noise_scheduler
    ddim, dpm = inference_scheduler(cfg, "ddim", steps), inference_scheduler(cfg, "dpmsolver", steps)
    assert dpm.timesteps.tolist() == ddim.timesteps.tolist()  # from ~T down to 0 for every step count
    assert dpm.config.thresholding == cfg.clip_sample
    x0 = torch.linspace(-3, 3, 32).reshape(2, 8, 2)
    assert torch.equal(dpm._threshold_sample(x0.clone()), x0.clamp(-1, 1))  # the clip DDIM applies
    policy = DiffusionPolicy(tiny_config(cameras=[]).policy).eval()
    policy.configure_inference("dpmsolver", steps)
    assert torch.isfinite(policy.predict_action(obs_batch(policy, batch=1))["action"]).all()


def test_ddim_shares_the_training_noise_schedule(tiny_config) -> None:
    cfg = tiny_config().policy.noise_scheduler
    ddpm, ddim = inference_scheduler(cfg, "ddpm", 100), inference_scheduler(cfg, "ddim", 8)
    assert ddpm.config.beta_schedule == "squaredcos_cap_v2" and ddpm.config.num_train_timesteps == 100
    assert torch.allclose(ddpm.alphas_cumprod, ddim.alphas_cumprod)
    assert torch.allclose(ddpm.alphas_cumprod, inference_scheduler(cfg, "dpmsolver", 4).alphas_cumprod)
    with pytest.raises(ValueError, match="num_inference_steps"):
        inference_scheduler(cfg, "ddim", 101)
    with pytest.raises(ValueError, match="unknown sampler"):
        inference_scheduler(cfg, "euler", 8)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
def test_prediction_type_sets_the_training_target(prediction_type: str, tiny_config) -> None:
    policy = DiffusionPolicy(tiny_config(noise_scheduler={"prediction_type": prediction_type}).policy)
    batch = {"obs": obs_batch(policy, batch=4), "action": torch.rand(4, policy.horizon, 2) * 2 - 1}
    seen = {}
    policy.model.register_forward_hook(lambda m, args, out: seen.update(pred=out))
    loss = policy.compute_loss(batch, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    action = policy.normalizer.normalize("action", batch["action"])
    noise = torch.randn(action.shape, generator=gen)
    target = noise if prediction_type == "epsilon" else action
    assert torch.allclose(loss, torch.mean((seen["pred"] - target) ** 2))


def test_crops() -> None:
    img = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).reshape(2, 3, 10, 12)
    assert torch.equal(center_crop(img, (6, 8)), img[..., 2:8, 2:10])
    # torchvision's offsets, round((H - h) / 2) half to even: 3 -> 2 (not 1), 7 -> 4, 1 -> 0, 5 -> 2.
    for extra, top in ((3, 2), (7, 4), (1, 0), (5, 2), (2, 1)):
        tall = torch.arange(20 + extra, dtype=torch.float32).reshape(1, 1, 20 + extra, 1).expand(1, 1, -1, 4)
        assert center_crop(tall, (20, 4))[0, 0, 0, 0].item() == top, extra
    torch.manual_seed(0)
    crops = random_crop(img, (6, 8))
    assert crops.shape == (2, 3, 6, 8)
    for n in range(2):  # each crop is a contiguous window of its own image
        top, left = divmod(int(crops[n, 0, 0, 0].item() - img[n, 0, 0, 0].item()), 12)
        assert torch.equal(crops[n], img[n, :, top : top + 6, left : left + 8])


def test_parameter_names_follow_the_original_implementation(tiny_config) -> None:
    """State-dict keys match the original Diffusion Policy module layout (spot checks)."""
    cfg = tiny_config(vision={"pool": "avg", "stage_blocks": [2, 2, 2, 2]}).policy
    keys = set(DiffusionPolicy(cfg).state_dict())
    expected = [
        "obs_encoder.key_model_map.camera_0.conv1.weight",
        "obs_encoder.key_model_map.camera_0.bn1.weight",  # GroupNorm under BatchNorm's name
        "obs_encoder.key_model_map.camera_0.layer2.0.downsample.0.weight",
        "obs_encoder.key_model_map.camera_0.layer4.1.bn2.bias",
        "model.diffusion_step_encoder.1.weight",
        "model.down_modules.0.0.blocks.0.block.0.weight",
        "model.down_modules.0.0.cond_encoder.1.weight",
        "model.down_modules.0.0.residual_conv.weight",
        "model.down_modules.0.2.conv.weight",
        "model.mid_modules.1.blocks.1.block.1.bias",
        "model.up_modules.0.2.conv.weight",
        "model.final_conv.0.block.0.weight",
        "model.final_conv.1.weight",
        "normalizer.params_dict.action.scale",
        "normalizer.params_dict.action.input_stats.min",
        "normalizer.params_dict.camera_0.offset",
    ]
    assert not [k for k in expected if k not in keys]
    assert not [k for k in keys if "key_model_map.camera_0.fc" in k]  # avg pool: no projection
    tf_keys = set(DiffusionPolicy(tiny_config(model="transformer").policy).state_dict())
    for key in ["model.input_emb.weight", "model.pos_emb", "model.cond_obs_emb.weight", "model.cond_pos_emb",
                "model.encoder.0.weight", "model.decoder.layers.1.multihead_attn.in_proj_weight", "model.ln_f.weight",
                "model.head.bias", "model.mask", "model.memory_mask"]:
        assert key in tf_keys, key


def test_transformer_causal_masks(tiny_config) -> None:
    tf = TransformerForDiffusion(2, 4, horizon=6, n_obs_steps=2, cfg=tiny_config(model="transformer").policy.transformer)
    allowed = tf.mask == 0
    assert torch.equal(allowed, torch.tril(torch.ones(6, 6, dtype=torch.bool)))
    mem = tf.memory_mask == 0  # memory: [step token, obs 0, obs 1]
    assert mem[:, 0].all() and mem[0].tolist() == [True, True, False] and mem[1:].all()


@pytest.mark.parametrize(
    "override, message",
    [
        ({"horizon": 10}, "divisible by 4"),
        ({"n_action_steps": 16}, "horizon"),
        ({"steps_per_inference": 9}, "steps_per_inference"),
        ({"steps_per_inference": 0}, "steps_per_inference"),
        ({"vision": {"crop_size": [40, 40]}}, "larger than image_size"),
        ({"action": []}, "action"),
        ({"unet": {"down_dims": [30, 64]}}, "n_groups"),
        ({"model": "mlp"}, "must be one of"),
        ({"vision": {"stage_blocks": [1, 1, 1, 1]}}, "spatial softmax needs at least 2x2"),
        ({"vision": {"stage_blocks": [1, 1, 1, 1, 1]}}, "1 to 4 stages"),
    ],
)
def test_invalid_configs_are_rejected(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        base = {"policy": {"image_size": [32, 32], "vision": {"crop_size": [28, 28], "stage_blocks": [1, 1]}}}
        load_task_config("push_t", merge_dicts(base, {"policy": override}))


def test_unknown_task_config_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="push_t, push_t_small, push_t_lowdim, push_t_lowdim_small, mug_flip, sauce"):
        load_task_config("pushT")


def test_builtin_task_configs() -> None:
    push_t, mug, sauce = (load_task_config(n).policy for n in ("push_t", "mug_flip", "sauce"))
    assert push_t.action_dim == 2 and mug.action_dim == 6 and sauce.action_dim == 6
    # 6-DoF tasks learn rotations in the 6-D representation: 9 network columns for a 6-D pose
    assert mug.model_action_dim == 9 and sauce.model_action_dim == 9 and push_t.model_action_dim == 2
    assert all(f.rotation == "rotation_6d" for f in (*mug.low_dim, *sauce.low_dim))
    assert mug.camera_keys == ["camera_0", "camera_1"]
    assert tuple(mug.unet.down_dims) == (256, 512, 1024) and mug.unet.kernel_size == 5
    assert mug.transformer.n_layer == 8 and mug.transformer.n_emb == 256
    assert (mug.horizon, mug.n_obs_steps, mug.n_action_steps) == (16, 2, 8)
    gripper = load_task_config("sauce", {"policy": {"action": [{"key": "action", "dims": 6}, {"key": "gripper", "dims": 1}]}})
    assert gripper.policy.action_dim == 7
    assert np.isclose(load_task_config("push_t").training.lr, 1e-4)


@pytest.mark.parametrize("sampler, steps", [("ddim", 8), ("ddpm", 100), ("dpmsolver", 4)])
def test_inpainting_keeps_the_committed_actions_and_is_plain_sampling_without_a_plan(sampler, steps, tiny_config):
    policy = DiffusionPolicy(tiny_config(cameras=[]).policy).eval()
    xy = np.random.default_rng(0).uniform([0.2, -0.25], [0.7, 0.25], size=(64, 2))
    policy.fit_normalizer({"robot_eef_pose": xy}, xy)  # raw actions differ from normalized ones
    policy.configure_inference(sampler, steps)
    obs = obs_batch(policy, batch=2)

    def sample(**kw):
        return policy.predict_action(obs, generator=torch.Generator().manual_seed(7), **kw)["action"]

    plain = sample()
    assert torch.equal(sample(planned=None), plain)
    assert torch.equal(sample(planned=torch.zeros(2, 0, 2)), plain)  # nothing planned

    planned = torch.tensor([[0.30, 0.10], [0.31, 0.11], [0.32, 0.12], [0.33, 0.13], [0.34, 0.14]]).repeat(2, 1, 1)
    guided = sample(planned=planned, committed_steps=3)
    torch.testing.assert_close(guided[:, :3], planned[:, :3], atol=1e-5, rtol=0)  # committed: kept exactly
    assert torch.isfinite(guided).all() and not torch.allclose(guided[:, 3:], plain[:, 3:])
    torch.testing.assert_close(sample(planned=planned)[:, :5], planned, atol=1e-5, rtol=0)  # all committed


def test_inpainting_refuses_malformed_plans(tiny_config):
    policy = DiffusionPolicy(tiny_config(cameras=[]).policy).eval()
    obs = obs_batch(policy, batch=2)
    room = policy.horizon - policy.n_obs_steps + 1
    for planned, committed, message in [
        (torch.zeros(1, 3, 2), None, "shape"),  # batch of 1 for 2 observations
        (torch.zeros(2, 3, 3), None, "shape"),  # 3-D actions for a 2-D policy
        (torch.zeros(2, room + 1, 2), None, "shape"),  # beyond the horizon
        (torch.full((2, 3, 2), float("nan")), None, "NaN"),
        (torch.zeros(2, 3, 2), 4, "committed_steps"),
    ]:
        with pytest.raises(ValueError, match=message):
            policy.predict_action(obs, planned=planned, committed_steps=committed)


def test_few_step_dpm_solver_samples_what_ddim_16_does_with_the_shipped_policy():
    """On trained weights, DPM-Solver++ with 4 steps lands where DDIM with 16 does (same noise), within a
    centimetre or two; a mis-set schedule puts it metres off the table."""
    from pathlib import Path

    from robot_stack.policy.checkpoint import load_policy

    policy = load_policy(Path(__file__).resolve().parents[2] / "checkpoints" / "push_t_lowdim_sim.ckpt")
    obs = {k: torch.full((1, policy.n_obs_steps, *s), 0.1) for k, s in policy.obs_shapes.items()}

    def sample(sampler, steps):
        policy.configure_inference(sampler, steps)
        return policy.predict_action(obs, generator=torch.Generator().manual_seed(0))["action"]

    reference, fast = sample("ddim", 16), sample("dpmsolver", 4)
    assert (fast - reference).abs().max() < 0.02
