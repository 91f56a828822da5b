"""Training loop: AdamW + warmup/cosine LR, EMA, gradient clipping, validation, checkpoints, resume.

Output folder::

    OUT/latest.ckpt                                   everything needed to resume (incl. optimizer)
    OUT/epoch=0012-step=0000340-val_loss=0.0123.ckpt  the ``top_k`` best by validation loss (weights only;
                                                      by train loss when there is no validation split)
    OUT/epoch=0040-step=0005480-success=0.900.ckpt    with a rollout ``evaluator``: the ``top_k`` best by
                                                      success rate instead (ties: the later one)
    OUT/metrics.jsonl, OUT/tensorboard/               losses, learning rate, gradient norm, samples/s and
                                                      rollout success rate (``robot_stack.policy.metrics``;
                                                      with ``wandb``, also OUT/wandb/)

Rollout evaluation (like the original's env runner): given ``evaluator(policy, timing) -> success rate``
(``timing``: the dataset's ``TimingConvention``, which the rollouts must execute actions with) and
``eval_every`` epochs, the EMA policy is rolled out every ``eval_every`` epochs (and at the end); the
success rates are logged, kept in ``train_state["eval_history"]`` as ``[step, rate]`` pairs (the
learning curve) and rank the kept checkpoints. The evaluator comes from above (the CLI builds one on the
lockstep simulator), so this module needs nothing from the robot side.

Determinism: with the same seed, dataset and device, runs are identical. The data order of epoch ``e``
is drawn from ``seed + e``, and the torch RNG (noise, diffusion steps, crops) is saved in every
checkpoint, so a run resumed from a checkpoint written at an epoch end continues exactly as if it had
never stopped. A run interrupted mid-epoch (Ctrl-C) saves ``latest.ckpt`` at the current step; resuming
it restarts that epoch's data from the beginning, with the step count continuing, and still ends at the
planned total number of steps (where the learning-rate schedule ends).

Several processes (``torchrun``, ``robot_stack.policy.distributed``): the policy is wrapped in
``DistributedDataParallel``; ``training.batch_size`` stays the global batch (each of the N ranks takes
``batch_size / N`` of it, dealt from the same per-epoch permutation as ``DistributedSampler`` deals, so a
step sees the samples a single process would); the frame cache is built by rank 0 while the others wait;
validation sums over all ranks' shares; rank 0 alone writes checkpoints, metrics and progress, runs the
rollout evaluation and logs losses averaged over the ranks. Every rank draws its own diffusion noise
(seeded from the seed and its rank), so a distributed run is statistically, not bitwise, the single one.
"""

from __future__ import annotations

import gc
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from robot_stack.config import ConfigError
from robot_stack.data.timing_convention import TimingConvention
from robot_stack.policy.checkpoint import load_checkpoint, load_state_dict_checked, make_convention, save_checkpoint
from robot_stack.policy.config import TaskConfig, task_config_from_dict, task_config_to_dict
from robot_stack.policy.dataset import SequenceDataset, load_replay_data, split_episodes
from robot_stack.policy.diffusion_policy import DiffusionPolicy
from robot_stack.policy.distributed import DistributedContext
from robot_stack.policy.ema import EMA
from robot_stack.policy.metrics import MetricsLog, WandbOptions

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")  # the training step's forward pass

LATEST = "latest.ckpt"


@dataclass
class TrainResult:
    global_step: int
    epoch: int  # number of completed epochs
    train_loss: float  # mean over the last epoch
    val_loss: float | None  # last validation loss
    best: list[tuple[float, str]] = field(default_factory=list)  # (metric, file name), best first


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup to ``base_lr`` then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def resolve_device(name: str) -> torch.device:
    """A torch device from a CLI string, with an actionable error if it is not available."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device: unknown device {name!r}; use cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}); use cpu")
    return device


class Trainer:
    """Trains a policy from ``cfg`` on the dataset at ``dataset`` into ``out_dir``.

    With ``resume=True`` and an existing ``out_dir/latest.ckpt``, the policy, optimizer, EMA, RNG,
    step/epoch counters, data split and top-k list come from it, and so does the config: ``cfg`` (may be
    None) only supplies ``training.num_epochs`` / ``max_steps`` (to extend a run) and ``num_workers``.
    """

    def __init__(
        self,
        cfg: TaskConfig | None,
        dataset: str | Path,
        out_dir: str | Path,
        device: str = "cpu",
        resume: bool = False,
        show_progress: bool = True,
        evaluator: Callable[[DiffusionPolicy, TimingConvention], float] | None = None,
        eval_every: int = 10,
        dist: DistributedContext | None = None,
        wandb: WandbOptions | None = None,
        precision: str = "fp32",
        compile: bool = False,
    ):
        """``dist``: this process's place among several (``torchrun``; its process group already started).
        ``wandb``: also log the metrics to Weights & Biases (rank 0). ``precision="bf16"``: the training
        step's forward pass under bf16 autocast (weights, optimizer, EMA and validation stay float32);
        ``compile``: ``torch.compile`` the networks being trained. Both are for GPUs and off by default."""
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        self.wandb = wandb
        self.dist = dist if dist is not None else DistributedContext()
        if eval_every < 1:
            raise ConfigError(f"rollout evaluation every {eval_every} epochs: must be >= 1")
        self.evaluator = evaluator
        self.eval_every = eval_every
        self.eval_history: list[tuple[int, float]] = []
        self.out_dir = Path(out_dir)
        self.device = self.dist.device(resolve_device(device))
        if precision == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"--precision bf16: {torch.cuda.get_device_name(self.device)} has no bfloat16 "
                              "support; train in fp32")
        self.precision = precision
        self.show_progress = show_progress and self.dist.is_main
        resume_payload = None
        latest = self.out_dir / LATEST
        if resume and latest.is_file():
            resume_payload = load_checkpoint(latest)
            stored = task_config_from_dict(resume_payload["config"])
            if cfg is not None:  # where to stop and how to load data may change; nothing else
                stored.training.num_epochs = cfg.training.num_epochs
                stored.training.max_steps = cfg.training.max_steps
                stored.training.num_workers = cfg.training.num_workers
            cfg = stored
        elif resume:
            log.warning("--resume: no %s yet, starting a new run", latest)
        elif latest.is_file():
            raise ConfigError(f"{self.out_dir} already holds a training run ({LATEST}); pass --resume or use a new --out")
        if cfg is None:
            raise ConfigError(f"no task config given and no run to resume in {self.out_dir}")
        self.cfg = cfg
        tcfg = cfg.training
        if tcfg.batch_size % self.dist.world_size:
            raise ConfigError(f"training.batch_size {tcfg.batch_size} is the global batch: it must divide evenly "
                              f"over the {self.dist.world_size} processes")
        self.batch_size = tcfg.batch_size // self.dist.world_size  # this rank's share of each step
        _seed_everything(tcfg.seed)

        if not self.dist.is_main:
            self.dist.barrier()  # rank 0 builds the frame cache first; the others then just open it
        data = load_replay_data(dataset, cfg.policy, tcfg.cache_dir, self.show_progress)
        if self.dist.is_main:
            self.dist.barrier()
        if resume_payload is not None:
            train_eps, val_eps = resume_payload["train_state"]["train_episodes"], resume_payload["train_state"]["val_episodes"]
            if max(train_eps + val_eps) >= data.n_episodes:
                raise ConfigError(f"{dataset} has fewer episodes than the run being resumed was trained on")
        else:
            train_eps, val_eps = split_episodes(data.n_episodes, tcfg.val_ratio, tcfg.seed, tcfg.max_train_episodes)
        self.scene_seeds = list(data.scene_seeds.values())
        # Travels into every checkpoint: eval/serve execute actions with the timing the data was made with.
        self.timing = data.timing
        self.convention = make_convention(data.timing, data.camera_setup)
        log.info("dataset %s: %s", dataset, data.timing.describe())
        self.train_set = SequenceDataset(data, cfg.policy, train_eps)
        self.val_set = SequenceDataset(data, cfg.policy, val_eps) if val_eps else None
        short = self.train_set.sampler.too_short + (self.val_set.sampler.too_short if self.val_set else [])
        if short:
            log.warning("%d episode(s) shorter than %d steps are skipped: %s", len(short),
                        cfg.policy.horizon - cfg.policy.n_obs_steps - cfg.policy.n_action_steps + 2, sorted(short))
        if len(self.train_set) == 0:
            raise ConfigError(f"{dataset}: training episodes are shorter than the policy needs (horizon {cfg.policy.horizon})")
        log.info("dataset %s: %d train episodes (%d samples), %d val episodes", dataset, len(train_eps), len(self.train_set), len(val_eps))

        self.policy = DiffusionPolicy(cfg.policy)
        rows = data.episode_rows(train_eps)
        self.policy.fit_normalizer({k: v[rows] for k, v in data.low_dim.items()}, data.action[rows])
        self.policy.to(self.device)
        # DDP averages the gradients over the ranks in backward (and starts every rank from rank 0's weights)
        self.model: torch.nn.Module = self.policy
        if self.dist.enabled:
            self.model = DistributedDataParallel(self.policy, device_ids=[self.device.index]
                                                 if self.device.type == "cuda" else None)
        self.ema = EMA(self.policy, tcfg.ema_power, tcfg.ema_max_decay) if tcfg.ema else None
        if compile:  # after the EMA copy: validation and checkpoints use plain modules with the same weights
            self.policy.compile_networks()
        # fused: one kernel over all parameters instead of a Python loop (the step 2x faster for small models)
        self.optimizer = torch.optim.AdamW(_param_groups(self.policy, tcfg.weight_decay), lr=tcfg.lr,
                                           betas=tuple(tcfg.betas), fused=True)
        self.global_step = 0
        self.epoch = 0
        self.best: list[tuple[float, str]] = []
        self.val_loss: float | None = None
        self.metrics: MetricsLog | None = None
        self._resumed = resume_payload is not None
        if resume_payload is not None:
            self._restore(resume_payload)
        if self.dist.rank:  # its own diffusion noise (resumed runs restore rank 0's stream first)
            torch.manual_seed(tcfg.seed + 7919 * self.dist.rank + self.global_step)

    def release_distributed(self) -> None:
        """Drop the DistributedDataParallel wrapper. Call it before the process group is destroyed: a gloo
        reducer torn down after its group (or after a peer exited) can wait forever for the peer."""
        if self.model is not self.policy:
            self.model = self.policy
            gc.collect()  # the wrapper's reference cycles go now, not at some later collection

    @property
    def steps_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.train_set) / self.dist.world_size)
        return math.ceil(per_rank / self.batch_size)

    @property
    def total_steps(self) -> int:
        t = self.cfg.training
        steps = t.num_epochs * self.steps_per_epoch
        return min(steps, t.max_steps) if t.max_steps is not None else steps

    def run(self) -> TrainResult:
        """Train until ``num_epochs`` or ``max_steps``; returns the final counters and losses."""
        t = self.cfg.training
        train_loss = float("nan")
        main = self.dist.is_main
        self.metrics = (MetricsLog(self.out_dir, resume_step=self.global_step if self._resumed else None,
                                   wandb=self.wandb, config=task_config_to_dict(self.cfg)) if main
                        else _NoMetrics())
        bar = tqdm(total=self.total_steps, initial=min(self.global_step, self.total_steps), desc="train",
                   unit="step", disable=not self.show_progress, dynamic_ncols=True)
        self._window = _Window()
        try:
            while self.epoch < t.num_epochs and self.global_step < self.total_steps:
                train_loss, complete = self._train_epoch(bar)
                if complete:
                    self.epoch += 1
                last = self.epoch >= t.num_epochs or self.global_step >= self.total_steps
                if self.val_set is not None and (self.epoch % t.val_every_epochs == 0 or last):
                    self.val_loss = self.validate()
                    self.metrics.log(self.global_step, {"val/loss": self.val_loss})
                log.info("epoch %d step %d: train loss %.5f, val loss %s", self.epoch, self.global_step, train_loss,
                         "n/a" if self.val_loss is None else f"{self.val_loss:.5f}")
                evaluated = self.evaluator is not None and (self.epoch % self.eval_every == 0 or last)
                if evaluated and main:
                    self._evaluate()
                if not main:
                    continue  # the other ranks go on to the next epoch; DDP waits for rank 0 there
                if evaluated or (self.evaluator is None and (self.epoch % t.checkpoint_every_epochs == 0 or last)):
                    self._checkpoint(train_loss)
                elif self.epoch % t.checkpoint_every_epochs == 0:
                    self._save_latest(train_loss)
        except KeyboardInterrupt:
            if main:
                log.warning("interrupted: saving %s at step %d", self.out_dir / LATEST, self.global_step)
                self._save_latest(train_loss)
            raise
        finally:
            bar.close()
            self.metrics.close()
        return TrainResult(self.global_step, self.epoch, train_loss, self.val_loss, list(self.best))

    def _train_epoch(self, bar: tqdm) -> tuple[float, bool]:
        """One pass over the training set (or until max_steps); returns (mean loss, epoch completed)."""
        t = self.cfg.training
        self.policy.train()
        losses = []
        complete = True
        for batch in self._loader(self.train_set, shuffle=True, seed=t.seed + self.epoch, pad=True):
            if self.global_step >= self.total_steps:
                complete = False
                break
            lr = lr_at(self.global_step, t.lr, t.warmup_steps, self.total_steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                loss = self.model(_to(batch, self.device))  # mse_loss runs in float32 under autocast
            if not torch.isfinite(loss):
                raise RuntimeError(f"training diverged at step {self.global_step}: loss is {loss.item()}; lower training.lr")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip_norm is not None:  # the norm before clipping, as logged
                grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), t.grad_clip_norm)
            else:
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.policy.parameters() if p.grad is not None])
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.policy)
            self.global_step += 1
            losses.append(loss.item())
            self._window.add(losses[-1], float(grad_norm), len(batch["action"]))
            if self.global_step % t.log_every_steps == 0:  # every rank gets here at the same step
                scalars = self._window.flush()
                world = self.dist.world_size
                loss_sum, samples = self.dist.sum(scalars["train/loss"], scalars["train/samples_per_s"])
                scalars.update({"train/loss": loss_sum / world, "train/samples_per_s": samples})
                self.metrics.log(self.global_step, {**scalars, "train/lr": lr, "train/epoch": self.epoch})
            bar.update(1)
            bar.set_postfix(epoch=self.epoch, loss=f"{losses[-1]:.4f}", lr=f"{lr:.2e}")
        total, count = self.dist.sum(float(np.sum(losses)), float(len(losses)))
        return (total / count if count else float("nan")), complete

    def _evaluate(self) -> None:
        model = self.ema.ema_model if self.ema is not None else self.policy
        was_training = model.training
        model.eval()
        rng = torch.get_rng_state()  # rollouts draw noise: keep training's random stream as it was
        try:
            rate = float(self.evaluator(model, self.timing))
        finally:
            torch.set_rng_state(rng)
            model.train(was_training)
        self.eval_history.append((self.global_step, rate))
        self.metrics.log(self.global_step, {"eval/success_rate": rate})
        log.info("epoch %d step %d: rollout success rate %.3f", self.epoch, self.global_step, rate)

    @torch.no_grad()
    def validate(self) -> float:
        """Mean denoising loss on the validation episodes, EMA weights, fixed noise (comparable across epochs)."""
        model = self.ema.ema_model if self.ema is not None else self.policy
        model.eval()
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.training.seed + self.dist.rank)
        total, count = 0.0, 0
        for batch in self._loader(self.val_set, shuffle=False, seed=0, pad=False):
            batch = _to(batch, self.device)
            n = batch["action"].shape[0]
            total += model.compute_loss(batch, generator=gen).item() * n
            count += n
        total, count = self.dist.sum(total, count)  # every rank's share of the validation episodes
        return total / max(count, 1)

    def _loader(self, dataset: SequenceDataset, shuffle: bool, seed: int, pad: bool) -> Iterable[dict]:
        """This rank's batches of one pass over ``dataset`` (a permutation drawn from ``seed`` when shuffling)."""
        t = self.cfg.training
        n = len(dataset)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy() if shuffle else np.arange(n)
        order = self.dist.shard(order, pad)
        if t.num_workers == 0:  # in this process: whole batches gathered at once (SequenceDataset.get_batch)
            return (dataset.get_batch(order[i : i + self.batch_size]) for i in range(0, len(order), self.batch_size))
        return DataLoader(
            Subset(dataset, order.tolist()),
            batch_size=self.batch_size,
            shuffle=False,  # the order above is already this epoch's
            num_workers=t.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    # ---- checkpoints ----
    def _state_dicts(self, with_optimizer: bool) -> dict:
        states = {"model": self.policy.state_dict()}
        if self.ema is not None:
            states["ema_model"] = self.ema.ema_model.state_dict()
        if with_optimizer:
            states["optimizer"] = self.optimizer.state_dict()
        return states

    def _train_state(self, train_loss: float) -> dict:
        return {
            "global_step": self.global_step,
            "epoch": self.epoch,
            "train_loss": train_loss,
            "val_loss": self.val_loss,
            "ema_step": self.ema.step if self.ema is not None else 0,
            "train_episodes": list(self.train_set.episodes),
            # The simulated scenes trained on (every episode, validation too): evaluation avoids them.
            "scene_seeds": sorted(set(self.scene_seeds)),
            "val_episodes": list(self.val_set.episodes) if self.val_set is not None else [],
            "best": [[m, name] for m, name in self.best],
            "eval_history": [[s, r] for s, r in self.eval_history],
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else torch.zeros(0, dtype=torch.uint8),
        }

    def _save_latest(self, train_loss: float) -> None:
        save_checkpoint(self.out_dir / LATEST, self.cfg, self._state_dicts(True), self._train_state(train_loss),
                        self.convention)

    def _checkpoint(self, train_loss: float) -> None:
        if self.evaluator is not None:
            # Ranked by success; among equal rates the later (more trained) checkpoint comes first.
            rate = self.eval_history[-1][1]
            metric, label = -rate - 1e-9 * self.global_step, f"success={rate:.3f}"
        else:
            name_, metric = ("val_loss", self.val_loss) if self.val_loss is not None else ("train_loss", train_loss)
            label = f"{name_}={metric:.6f}"
        name = f"epoch={self.epoch:04d}-step={self.global_step:07d}-{label}.ckpt"
        k = self.cfg.training.top_k
        if math.isfinite(metric) and (len(self.best) < k or metric < self.best[-1][0]):
            save_checkpoint(self.out_dir / name, self.cfg, self._state_dicts(False), self._train_state(train_loss),
                            self.convention)
            self.best = sorted([*self.best, (metric, name)])
            for _, dropped in self.best[k:]:
                (self.out_dir / dropped).unlink(missing_ok=True)
            self.best = self.best[:k]
        # latest last: its top-k list then matches the files on disk.
        self._save_latest(train_loss)

    def _restore(self, payload: dict) -> None:
        states, ts = payload["state_dicts"], payload["train_state"]
        load_state_dict_checked(self.policy, states["model"], "resume")
        if self.ema is not None and "ema_model" in states:
            load_state_dict_checked(self.ema.ema_model, states["ema_model"], "resume (EMA)")
            self.ema.step = int(ts["ema_step"])
        self.optimizer.load_state_dict(states["optimizer"])
        self.global_step, self.epoch = int(ts["global_step"]), int(ts["epoch"])
        self.val_loss = ts["val_loss"]
        self.best = [(float(m), str(n)) for m, n in ts["best"]]
        self.eval_history = [(int(s), float(r)) for s, r in ts.get("eval_history", [])]
        torch.set_rng_state(ts["torch_rng"])
        if self.device.type == "cuda" and ts["cuda_rng"].numel():
            torch.cuda.set_rng_state(ts["cuda_rng"], self.device)
        log.info("resumed %s at epoch %d, step %d", self.out_dir / LATEST, self.epoch, self.global_step)


class _NoMetrics:
    """What ranks other than 0 log to: nothing (rank 0 writes the run's metrics)."""

    def log(self, step: int, scalars: dict) -> None:
        pass

    def close(self) -> None:
        pass


class _Window:
    """Training scalars since the last log line: mean loss and gradient norm, samples per second."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._start = time.perf_counter()
        self._losses: list[float] = []
        self._norms: list[float] = []
        self._samples = 0

    def add(self, loss: float, grad_norm: float, samples: int) -> None:
        self._losses.append(loss)
        self._norms.append(grad_norm)
        self._samples += samples

    def flush(self) -> dict[str, float]:
        now = time.perf_counter()
        out = {"train/loss": float(np.mean(self._losses)), "train/grad_norm": float(np.mean(self._norms)),
               "train/samples_per_s": self._samples / max(now - self._start, 1e-9)}
        self._reset()
        return out


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices/kernels only: not on biases, norms or position embeddings."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.endswith("pos_emb") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _to(batch: dict, device: torch.device) -> dict:
    return {
        "obs": {k: v.to(device, non_blocking=True) for k, v in batch["obs"].items()},
        "action": batch["action"].to(device, non_blocking=True),
    }


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False

