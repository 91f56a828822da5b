"""Diffusion Policy inference latency and training throughput.

Measures ``predict_action`` latency (median and p99 over repeated calls, batch 1) for the paper-size
CNN (U-Net) and transformer policies with 1 and 2 cameras at 96x96 and 240x320, sampled with DPM-Solver++ 4,
DDIM 8, DDIM 16 and DDPM 100 steps; then training throughput (samples/s) for the same model/camera/resolution
grid. Inputs are random tensors of the right shapes (no dataset needed). Runs on CPU, and on CUDA when
available.

    python benchmarks/inference.py            # full run (20 timed calls per configuration)
    python benchmarks/inference.py --quick    # a few calls per configuration; minutes on a laptop CPU
    python benchmarks/inference.py --device cuda --json results.json
    python benchmarks/inference.py --options --threads 1   # the speed levers, see below
    python benchmarks/inference.py --breakdown --threads 1 # where a chunk's time goes

``--options`` measures instead the levers for a faster chunk, on the shipped low-dim Push-T checkpoint
(whose closed-loop success per sampler is in the README) and on the paper-size U-Net with one 96x96
camera: per sampler (DDIM 16, DDIM 8, DPM-Solver++ 8 and 4) and per execution option (eager: under
``torch.no_grad``, as robot_stack ran it before ``predict_action`` moved to inference mode;
``inference_mode``: ``predict_action`` as it runs now; ``torch.compile`` of the encoder and noise network
and channels-last convolutions for image policies, each alone under ``no_grad``; on CUDA also bf16
autocast and CUDA graphs through ``torch.compile(mode="reduce-overhead")``, on top of inference mode): the
ms per chunk, its ratio to eager DDIM 16 (which is as fast as LeRobot's DDIM 16: 1491 and 1494 ms side by
side), and the max abs difference of the actions from the eager run of the same sampler with the same
noise (0 up to float rounding for the options that should be exact).
``--breakdown`` splits a chunk as ``predict_action`` runs it into the observation encoder, the noise
network's calls and the rest (the Python denoising loop, the sampler's update, checks and
unnormalization): the rest bounds what a denoising loop without per-step Python overhead could save.

Prints Markdown tables. Numbers depend heavily on the machine and its load: record them with the CPU/GPU
model, the torch thread count and whether anything else was running.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np
import torch

from robot_stack.policy.checkpoint import load_policy
from robot_stack.policy.config import load_task_config
from robot_stack.policy.diffusion_policy import DiffusionPolicy

SHIPPED_LOWDIM = Path(__file__).resolve().parents[1] / "checkpoints" / "push_t_lowdim_sim.ckpt"
OPTION_SAMPLERS = [("ddim", 16), ("ddim", 8), ("dpmsolver", 8), ("dpmsolver", 4)]

RESOLUTIONS = {"96x96": ((96, 96), (84, 84)), "240x320": ((240, 320), (216, 288))}  # image, crop (H, W)
SAMPLERS = [("dpmsolver", 4), ("ddim", 8), ("ddim", 16), ("ddpm", 100)]


def build_policy(model: str, cameras: int, resolution: str, device: torch.device,
                 task: str = "mug_flip") -> DiffusionPolicy:
    """A default-size (paper) policy; ``mug_flip``: 6-D pose observation and action, like the real-robot
    tasks; ``push_t``: 2-D, the config LeRobot's Push-T Diffusion Policy has."""
    image, crop = RESOLUTIONS[resolution]
    cfg = load_task_config(
        task,
        {"policy": {"model": model, "cameras": list(range(cameras)), "image_size": list(image), "vision": {"crop_size": list(crop)}}},
    )
    return DiffusionPolicy(cfg.policy).to(device)


def random_obs(policy: DiffusionPolicy, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.rand((batch, policy.n_obs_steps, *shape), device=device) for k, shape in policy.obs_shapes.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, n: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def bench_inference(device: torch.device, quick: bool) -> list[dict]:
    rows = []
    for model in ("unet", "transformer"):
        for cameras in (1, 2):
            for resolution in RESOLUTIONS:
                policy = build_policy(model, cameras, resolution, device).eval()
                obs = random_obs(policy, 1, device)
                for sampler, steps in SAMPLERS:
                    policy.configure_inference(sampler, steps)
                    n = (2 if steps > 16 else 5) if quick else 20
                    times = time_calls(lambda: policy.predict_action(obs), n, warmup=1, device=device)
                    row = {
                        "device": device.type, "model": model, "cameras": cameras, "resolution": resolution,
                        "sampler": f"{sampler.upper()} {steps}", "n": n,
                        "median_ms": 1e3 * statistics.median(times), "p99_ms": 1e3 * float(np.percentile(times, 99)),
                    }
                    rows.append(row)
                    print(_row(row), flush=True)
                del policy
    return rows


def bench_training(device: torch.device, quick: bool, batch: int) -> list[dict]:
    rows = []
    for model in ("unet", "transformer"):
        for cameras in (1, 2):
            for resolution in RESOLUTIONS:
                policy = build_policy(model, cameras, resolution, device).train()
                opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
                data = {"obs": random_obs(policy, batch, device),
                        "action": torch.rand(batch, policy.horizon, policy.action_dim, device=device)}

                def step() -> None:
                    loss = policy.compute_loss(data)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                n = 2 if quick else 10
                times = time_calls(step, n, warmup=1, device=device)
                row = {"device": device.type, "model": model, "cameras": cameras, "resolution": resolution,
                       "batch": batch, "n": n, "samples_per_s": batch / statistics.median(times),
                       "params_m": sum(p.numel() for p in policy.parameters()) / 1e6}
                rows.append(row)
                print(f"| {row['device']} | {model} | {cameras} | {resolution} | {batch} | {row['params_m']:.1f} "
                      f"| {row['samples_per_s']:.1f} | {n} |", flush=True)
                del policy, opt
    return rows


def _options(policy: DiffusionPolicy, device: torch.device) -> dict[str, tuple[DiffusionPolicy, Callable[[], ContextManager], bool]]:
    """Execution options: name -> (the policy to call, a context to call it in, whether it should be exact).
    The context ``torch.no_grad`` means: call ``predict_action`` without its inference-mode decorator."""
    plain, no_grad = contextlib.nullcontext, torch.no_grad
    options = {"eager": (policy, no_grad, True), "inference_mode": (policy, plain, True)}
    compiled = copy.deepcopy(policy)
    compiled.compile_networks()
    options["compile"] = (compiled, no_grad, True)
    if policy.cfg.camera_keys:  # the 1-D U-Net has no 2-D convolutions to lay out channels last
        options["channels_last"] = (copy.deepcopy(policy).to(memory_format=torch.channels_last), no_grad, True)
    if device.type == "cuda":
        options["bf16_autocast"] = (policy, lambda: torch.autocast("cuda", dtype=torch.bfloat16), False)
        graphs = copy.deepcopy(policy)
        graphs.compile_networks(mode="reduce-overhead")  # inductor captures the networks in CUDA graphs
        options["cuda_graphs"] = (graphs, plain, True)
    return options


def _option_configs(device: torch.device) -> dict[str, DiffusionPolicy]:
    """The two policies the speed levers are measured on, in eval mode."""
    return {"push_t_lowdim (shipped)": load_policy(SHIPPED_LOWDIM, device).eval(),
            "paper U-Net, 1 camera 96x96 (push_t)": build_policy("unet", 1, "96x96", device, "push_t").eval()}


def bench_options(device: torch.device, quick: bool) -> list[dict]:
    """ms per chunk per sampler and execution option, against eager DDIM 16 (see the module docstring)."""
    rows = []
    for name, policy in _option_configs(device).items():
        torch.manual_seed(0)
        obs = random_obs(policy, 1, device)
        n = 3 if quick else (10 if policy.cfg.camera_keys else 20)
        reference: dict[tuple[str, int], torch.Tensor] = {}
        baseline_ms = None
        for option, (runner, context, exact) in _options(policy, device).items():
            for sampler, steps in OPTION_SAMPLERS:
                runner.configure_inference(sampler, steps)
                predict = (DiffusionPolicy.predict_action.__wrapped__.__get__(runner) if context is torch.no_grad
                           else runner.predict_action)

                def call() -> torch.Tensor:
                    with context():
                        gen = torch.Generator(device=device).manual_seed(0)
                        return predict(obs, generator=gen)["action_pred"].float()

                warmup = 2 if option in ("compile", "cuda_graphs") else 1  # the first calls compile
                times = time_calls(call, n, warmup=warmup, device=device)
                actions = call()
                ms = 1e3 * statistics.median(times)
                if option == "eager":
                    reference[sampler, steps] = actions
                    if (sampler, steps) == ("ddim", 16):
                        baseline_ms = ms
                row = {"device": device.type, "config": name, "sampler": f"{sampler} {steps}", "option": option,
                       "n": n, "median_ms": ms, "ratio_to_eager_ddim16": ms / baseline_ms,
                       "max_abs_diff": float((actions - reference[sampler, steps]).abs().max()), "exact": exact}
                rows.append(row)
                print(f"| {device.type} | {name} | {row['sampler']} | {option} | {ms:.1f} | "
                      f"{row['ratio_to_eager_ddim16']:.2f} | {row['max_abs_diff']:.1e}{'' if exact else ' (approximate)'} "
                      f"| {n} |", flush=True)
    return rows


def bench_breakdown(device: torch.device, quick: bool) -> list[dict]:
    """Where a chunk's time goes: encoder, noise network, and the rest (the loop around them)."""
    rows = []
    for name, policy in _option_configs(device).items():
        obs = random_obs(policy, 1, device)
        spent = {"encoder": 0.0, "network": 0.0}
        started: dict[str, float] = {}

        def timed(module: torch.nn.Module, part: str) -> None:
            def pre(*_: object) -> None:
                _sync(device)
                started[part] = time.perf_counter()

            def post(*_: object) -> None:
                _sync(device)
                spent[part] += time.perf_counter() - started[part]
            module.register_forward_pre_hook(pre)
            module.register_forward_hook(post)

        timed(policy.obs_encoder, "encoder")
        timed(policy.model, "network")
        n = 3 if quick else 10
        for sampler, steps in OPTION_SAMPLERS:
            policy.configure_inference(sampler, steps)
            policy.predict_action(obs)  # warm-up
            spent.update(encoder=0.0, network=0.0)
            total = sum(time_calls(lambda: policy.predict_action(obs), n, warmup=0, device=device))
            row = {"device": device.type, "config": name, "sampler": f"{sampler} {steps}", "n": n,
                   "total_ms": 1e3 * total / n, "encoder_ms": 1e3 * spent["encoder"] / n,
                   "network_ms": 1e3 * spent["network"] / n}
            row["rest_ms"] = row["total_ms"] - row["encoder_ms"] - row["network_ms"]
            rows.append(row)
            print(f"| {device.type} | {name} | {row['sampler']} | {row['total_ms']:.1f} | {row['encoder_ms']:.1f} | "
                  f"{row['network_ms']:.1f} | {row['rest_ms']:.1f} ({100 * row['rest_ms'] / row['total_ms']:.1f} %) "
                  f"| {n} |", flush=True)
    return rows


def _row(r: dict) -> str:
    return (f"| {r['device']} | {r['model']} | {r['cameras']} | {r['resolution']} | {r['sampler']} "
            f"| {r['median_ms']:.1f} | {r['p99_ms']:.1f} | {r['n']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (p99 is then close to the max)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: CPU, plus CUDA if present")
    parser.add_argument("--train-batch", type=int, help="training batch size (default 64, or 8 with --quick on CPU)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--options", action="store_true",
                        help="measure only the speed levers (samplers x execution options, see above)")
    parser.add_argument("--breakdown", action="store_true",
                        help="measure only where a chunk's time goes (encoder, network, the loop around them)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write all results to this JSON file")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] if args.device in ("auto", "cpu") else []
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {platform.processor() or platform.machine()}"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    torch.manual_seed(0)
    modes = {"options": ("| device | config | sampler | option | median ms | x eager DDIM 16 | max abs diff vs eager | n |",
                         bench_options),
             "breakdown": ("| device | config | sampler | chunk ms (mean) | encoder ms | network ms | rest ms | n |",
                           bench_breakdown)}
    for mode, (header, bench) in modes.items():
        if getattr(args, mode):
            print(f"\n{header}\n|---|---|---|---|---|---|---|---|")
            rows = [row for device in devices for row in bench(device, args.quick)]
            if args.json:
                args.json.write_text(json.dumps({mode: rows}, indent=2))
            return
    results: dict = {"inference": [], "training": []}
    print("\n| device | model | cameras | resolution | sampler | median ms | p99 ms | n |\n|---|---|---|---|---|---|---|---|")
    for device in devices:
        results["inference"] += bench_inference(device, args.quick)
    if not args.skip_training:
        print("\n| device | model | cameras | resolution | batch | params (M) | samples/s | n |\n|---|---|---|---|---|---|---|---|")
        for device in devices:
            batch = args.train_batch or (8 if args.quick and device.type == "cpu" else 64)
            results["training"] += bench_training(device, args.quick, batch)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
