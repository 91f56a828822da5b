"""``MetricsLog``: a training run's scalars in its folder, for people to look at.

Two copies of the same numbers, both appended as training goes::

    OUT/metrics.jsonl      one JSON object per line: {"step": int, "time": unix s, "<tag>": value, ...}
    OUT/tensorboard/       TensorBoard event files (``tensorboard --logdir OUT``)

Tags: ``train/loss`` (mean over the logging window), ``train/lr``, ``train/grad_norm`` (before clipping,
mean over the window), ``train/samples_per_s``, ``train/epoch``, ``val/loss``, ``eval/success_rate`` (the
trainer's lockstep rollouts). A value that is not finite is written as ``null`` in the JSON lines and left
out of TensorBoard (which would draw it as a spike).

Resuming continues both: TensorBoard purges the events an interrupted run wrote after the step it resumes
from, and ``read_metrics`` keeps, for each step, the line written last, so a resumed run's curve is the one
the report draws. A line cut short by a crash is skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import IO, Any, Mapping

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class MetricsLog:
    """Appends scalars to ``run_dir/metrics.jsonl`` and ``run_dir/tensorboard/``; ``close()`` when done.

    ``resume_step``: the step a resumed run continues from (TensorBoard drops later events of the run that
    was interrupted); None for a new run.
    """

    def __init__(self, run_dir: str | Path, resume_step: int | None = None):
        # Imported here: tensorboard is heavy and only training needs it.
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
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
        for tag, value in values.items():
            if math.isfinite(value):
                self._writer.add_scalar(tag, value, int(step))

    def close(self) -> None:
        """Flush and close both files (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer.close()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
