"""``robot-stack train``: train a Diffusion Policy on a recorded dataset.

Examples::

    robot-stack train --dataset data/pusht --config push_t --out runs/pusht
    robot-stack train --dataset data/mugs --config my_task.yaml --out runs/mugs --device cuda --steps 200000
    robot-stack train --dataset data/pusht --out runs/pusht --resume --epochs 800   # continue / extend
    torchrun --nproc_per_node=4 -m robot_stack train --dataset data/pusht --config push_t --out runs/pusht

Writes ``OUT/latest.ckpt`` (resumable) and the best ``top_k`` checkpoints by validation loss; load one
for inference with ``robot_stack.policy.load_policy``. Metrics: ``OUT/metrics.jsonl`` and
``OUT/tensorboard/`` always, a Weights & Biases run with ``--wandb offline|online``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from robot_stack.config import ConfigError, load_dataclass
from robot_stack.policy.config import BUILTIN_TASKS, TaskConfig, load_task_config, merge_dicts
from robot_stack.sim.pusht.config import SELECTION_SEED_START

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a Diffusion Policy on a recorded dataset",
        description="Train a Diffusion Policy (U-Net or transformer) on a recorded dataset "
        "(DATASET/replay_buffer.zarr + DATASET/videos/). Checkpoints go to --out.",
    )
    parser.add_argument("--dataset", required=True, type=Path, help="dataset folder (contains replay_buffer.zarr/)")
    parser.add_argument(
        "--config",
        help=f"task config: {', '.join(BUILTIN_TASKS)} or a path to a .yaml file (optional with --resume: "
        "the run's stored config is used)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder for checkpoints")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--epochs", type=_positive, help="number of epochs (default: the config's training.num_epochs)")
    stop.add_argument("--steps", type=_positive, help="number of optimizer steps instead of epochs")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:<index> or auto (cuda if available; default)")
    parser.add_argument("--seed", type=int, help="random seed (default: the config's training.seed)")
    parser.add_argument("--batch-size", type=_positive, help="override training.batch_size")
    parser.add_argument("--num-workers", type=int, help="override training.num_workers (data loading processes)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest.ckpt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for log files)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: the forward pass under bfloat16 autocast (for GPUs; usually slower on CPU); "
                        "default fp32")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the networks (for GPUs; the first steps take minutes to compile)")
    parser.add_argument("--wandb", choices=["offline", "online"],
                        help="also log the metrics to Weights & Biases (needs robot_stack[wandb]); offline writes "
                        "OUT/wandb/ with no network, upload it later with `wandb sync`")
    parser.add_argument("--wandb-project", default="robot_stack", help="W&B project (default robot_stack)")
    rollouts = parser.add_argument_group(
        "rollout evaluation", "every --eval-every epochs, roll the EMA policy out on the lockstep simulator, log "
        "the success rate and keep the best checkpoints by it (seeds from --eval-seed: neither the demos' nor "
        "eval's held-out ones)")
    rollouts.add_argument("--eval-rig", help="simulated Push-T rig to roll out on (e.g. sim_pusht); off by default")
    rollouts.add_argument("--eval-every", type=_positive, default=10, help="epochs between rollouts (default 10)")
    rollouts.add_argument("--eval-episodes", type=_positive, default=10, help="episodes per rollout (default 10)")
    rollouts.add_argument("--eval-seed", type=int, default=SELECTION_SEED_START,
                          help=f"first scene seed of the rollouts (default {SELECTION_SEED_START})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: torch/diffusers model code is not needed for `robot-stack --help`.
    import torch

    from robot_stack.policy.checkpoint import load_checkpoint
    from robot_stack.policy.distributed import DistributedContext
    from robot_stack.policy.metrics import WandbOptions
    from robot_stack.policy.trainer import LATEST, Trainer, resolve_device

    training: dict = {}
    if args.epochs is not None:
        training.update(num_epochs=args.epochs, max_steps=None)
    if args.steps is not None:
        training.update(max_steps=args.steps, num_epochs=10**9)  # steps decide when to stop
    if args.num_workers is not None:
        training["num_workers"] = args.num_workers
    latest = args.out / LATEST
    if args.resume and latest.is_file():
        if args.seed is not None or args.batch_size is not None:
            raise ConfigError("--seed and --batch-size cannot change when resuming; the run keeps its own")
        if args.config is not None:
            log.warning("--config %s ignored: resuming with the config stored in %s", args.config, latest)
        stored = load_checkpoint(latest)["config"]
        cfg = load_dataclass(TaskConfig, merge_dicts(stored, {"training": training}))
    elif args.config is None:
        raise ConfigError("--config is required (a built-in task name or a .yaml path) unless --resume finds a run in --out")
    else:
        for key, value in (("seed", args.seed), ("batch_size", args.batch_size)):
            if value is not None:
                training[key] = value
        cfg = load_task_config(args.config, {"training": training})
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dist = DistributedContext.from_environment()  # several processes when started by torchrun
    evaluator = _rollout_evaluator(args, cfg) if args.eval_rig else None
    dist.start(dist.device(resolve_device(device)))
    trainer = None
    try:
        trainer = Trainer(cfg, args.dataset, args.out, device=device, resume=args.resume,
                          show_progress=not args.no_progress, evaluator=evaluator, eval_every=args.eval_every,
                          dist=dist, wandb=WandbOptions(args.wandb, args.wandb_project) if args.wandb else None,
                          precision=args.precision, compile=args.compile)
        result = trainer.run()
        trainer.release_distributed()
        dist.barrier()  # every rank done before the group goes away
    finally:
        if trainer is not None:
            trainer.release_distributed()
        dist.stop()
    if not dist.is_main:
        return 0
    best = f", best {result.best[0][1]}" if result.best else ""
    val = "" if result.val_loss is None else f", val loss {result.val_loss:.5f}"
    ranks = f" x {dist.world_size} processes" if dist.enabled else ""
    print(
        f"trained {result.global_step} steps ({result.epoch} epochs) on {trainer.device}{ranks}: "
        f"train loss {result.train_loss:.5f}{val}; checkpoints in {args.out}{best}"
    )
    return 0


def _rollout_evaluator(args: argparse.Namespace, cfg: TaskConfig):
    """The success rate of a policy on the lockstep simulator (the rig named by --eval-rig)."""
    from robot_stack.cli.eval import DEFAULT_FREQUENCY
    from robot_stack.rig import load_rig
    from robot_stack.server.executor import ExecutorConfig
    from robot_stack.server.lockstep_eval import LockstepEvalConfig, success_rate_evaluator
    from robot_stack.server.rollout import RolloutConfig
    from robot_stack.sim.lockstep import LockstepRig

    rig = load_rig(args.eval_rig)
    if rig.scene is None:
        raise ConfigError(f"--eval-rig {args.eval_rig}: rollouts need a simulated Push-T rig (a scene: section)")
    config = LockstepEvalConfig(None, LockstepRig(rig.robot, rig.scene, tuple(rig.cameras), rig.name),
                                # dt and action timing: the dataset's, set at each rollout by the evaluator
                                ExecutorConfig(dt=1.0 / DEFAULT_FREQUENCY),
                                RolloutConfig(max_duration=rig.scene.time_limit), rig.planar_z)
    return success_rate_evaluator(config, range(args.eval_seed, args.eval_seed + args.eval_episodes))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
