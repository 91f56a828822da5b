"""``MetricsLog``: a training run's scalars in its folder, for people to look at.

Two copies of the same numbers, both appended as training goes, and optionally a third::

    OUT/metrics.jsonl      one JSON object per line: {"step": int, "time": unix s, "<tag>": value, ...}
    OUT/tensorboard/       TensorBoard event files (``tensorboard --logdir OUT``)
    OUT/wandb/             with ``WandbOptions``: a Weights & Biases run (offline: ``wandb sync OUT/wandb/offline-run-*``)

Tags: ``train/loss`` (mean over the logging window), ``train/lr``, ``train/grad_norm`` (before clipping,
mean over the window), ``train/samples_per_s``, ``train/epoch``, ``val/loss``, ``eval/success_rate`` (the
trainer's lockstep rollouts). A value that is not finite is written as ``null`` in the JSON lines and left
out of TensorBoard (which would draw it as a spike).

Resuming continues both: TensorBoard purges the events an interrupted run wrote after the step it resumes
from, and ``read_metrics`` keeps, for each step, the line written last, so a resumed run's curve is the one
the report draws. A line cut short by a crash is skipped with a warning. W&B continues the same run (its id
is kept in ``OUT/wandb_run_id``); W&B cannot purge, so there the steps an interrupted run logged after its
checkpoint appear twice (every point is logged against ``trainer/step``, never dropped as out of order).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Mapping

from robot_stack.config import ConfigError

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
WANDB_RUN_ID_FILE = "wandb_run_id"
WANDB_STEP = "trainer/step"  # the x axis of every W&B chart


@dataclass(frozen=True)
class WandbOptions:
    """Where a run's metrics go in Weights & Biases. ``mode``: ``offline`` (files only, no network; upload
    later with ``wandb sync``) or ``online``."""

    mode: str = "offline"
    project: str = "robot_stack"

    def __post_init__(self) -> None:
        if self.mode not in ("offline", "online"):
            raise ConfigError(f"--wandb {self.mode!r}: use offline or online")


class MetricsLog:
    """Appends scalars to ``run_dir/metrics.jsonl`` and ``run_dir/tensorboard/``; ``close()`` when done.

    ``resume_step``: the step a resumed run continues from (TensorBoard drops later events of the run that
    was interrupted); None for a new run. ``wandb``: also log to Weights & Biases, with ``config`` (the run's
    settings, a plain dict) attached to the W&B run.
    """

    def __init__(self, run_dir: str | Path, resume_step: int | None = None, wandb: WandbOptions | None = None,
                 config: Mapping[str, Any] | None = None):
        # Imported here: tensorboard is heavy and only training needs it.
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # first: if W&B cannot start, nothing is left open
        self._wandb = _start_wandb(self.run_dir, wandb, config) if wandb is not None else None
        path = self.run_dir / METRICS_FILE
        cut_short = path.is_file() and path.stat().st_size > 0 and _last_byte(path) != b"\n"
        self._file: IO[str] | None = open(path, "a", encoding="utf-8")
        if cut_short:  # a crash mid-line: end that line, or the next record would be glued onto it
            self._file.write("\n")
        # purge_step drops events at and after it: the resumed step's own events are the checkpoint's, kept
        purge = None if resume_step is None else resume_step + 1
        self._writer = SummaryWriter(str(self.run_dir / TENSORBOARD_DIR), purge_step=purge, flush_secs=10)

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record ``scalars`` (tag -> number) at optimizer step ``step``."""
        if self._file is None:
            raise RuntimeError("MetricsLog is closed")
        values = {tag: float(v) for tag, v in scalars.items()}
        record: dict[str, Any] = {"step": int(step), "time": round(time.time(), 3)}
        record.update({tag: (v if math.isfinite(v) else None) for tag, v in values.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()  # a crash loses at most the line being written
        finite = {tag: v for tag, v in values.items() if math.isfinite(v)}
        for tag, value in finite.items():
            self._writer.add_scalar(tag, value, int(step))
        if self._wandb is not None and finite:
            self._wandb.log({WANDB_STEP: int(step), **finite})

    def close(self) -> None:
        """Flush and close both files (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer.close()
            if self._wandb is not None:
                self._wandb.finish()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _start_wandb(run_dir: Path, options: WandbOptions, config: Mapping[str, Any] | None) -> Any:
    """A W&B run writing under ``run_dir/wandb``; the same W&B run again when the training run is resumed."""
    try:
        import wandb  # optional dependency
    except ImportError:
        raise ConfigError("--wandb needs the wandb package: pip install 'robot_stack[wandb]' (or drop --wandb; "
                          "TensorBoard and metrics.jsonl are always written)") from None
    id_file = run_dir / WANDB_RUN_ID_FILE
    run_id = id_file.read_text().strip() if id_file.is_file() else None
    if not run_id:
        run_id = secrets.token_hex(6)  # W&B run ids: lowercase letters and digits
        id_file.write_text(run_id + "\n")
    try:
        run = wandb.init(project=options.project, dir=str(run_dir), mode=options.mode, id=run_id, resume="allow",
                         name=run_dir.name, config=dict(config or {}), reinit="create_new",
                         # console="off": the trainer's own log and progress bar stay on the terminal only
                         settings=wandb.Settings(console="off", silent=True))
    except Exception as e:  # wandb raises many kinds (no login, no network, server refused)
        raise ConfigError(f"--wandb {options.mode}: W&B could not start ({type(e).__name__}: {e}); "
                          "use --wandb offline and `wandb sync` later") from None
    run.define_metric(WANDB_STEP)
    run.define_metric("*", step_metric=WANDB_STEP)
    return run


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1)


def read_metrics(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every tag's ``[(step, value), ...]`` from ``run_dir/metrics.jsonl``, by step; for a step logged more than
    once (a resumed run), the last line wins. ``FileNotFoundError`` if the run has no metrics file."""
    path = Path(run_dir) / METRICS_FILE
    latest: dict[str, dict[int, float]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                step = int(record["step"])
            except (ValueError, KeyError, TypeError):
                log.warning("%s line %d is not a complete metrics record (cut short by a crash?); skipped", path, number)
                continue
            for tag, value in record.items():
                if tag not in ("step", "time") and isinstance(value, (int, float)):
                    latest.setdefault(tag, {})[step] = float(value)
    return {tag: sorted(points.items()) for tag, points in latest.items()}
