"""``robot-stack report RUN``: a training run's curves as one PNG, for people without TensorBoard.

Examples::

    robot-stack report runs/push_t_lowdim                    # writes runs/push_t_lowdim/report.png
    robot-stack report runs/push_t_lowdim --out curves.png

Panels (from ``RUN/metrics.jsonl``, see ``robot_stack.policy.metrics``): train and validation loss (log
scale), learning rate, gradient norm, and the lockstep rollout success rate when the run had one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robot_stack.config import ConfigError

# (panel title, tags drawn in it, log-scale y)
_PANELS = (
    ("loss", ("train/loss", "val/loss"), True),
    ("learning rate", ("train/lr",), False),
    ("gradient norm (before clipping)", ("train/grad_norm",), True),
    ("rollout success rate", ("eval/success_rate",), False),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="draw a training run's curves (loss, learning rate, success rate) into a PNG",
        description="Render RUN/metrics.jsonl (written by `robot-stack train`) as curves in one PNG.",
    )
    parser.add_argument("run", type=Path, help="training run folder (the --out of `robot-stack train`)")
    parser.add_argument("--out", type=Path, help="PNG to write (default: RUN/report.png)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_stack.policy.metrics import METRICS_FILE, read_metrics

    try:
        metrics = read_metrics(args.run)
    except FileNotFoundError:
        raise ConfigError(f"{args.run} has no {METRICS_FILE}: give the --out folder of a `robot-stack train` run "
                          "(runs trained before metrics were logged have none)") from None
    panels = [(title, [t for t in tags if metrics.get(t)], log_y) for title, tags, log_y in _PANELS]
    panels = [p for p in panels if p[1]]
    if not panels:
        raise ConfigError(f"{args.run / METRICS_FILE} holds no training metrics yet (train for at least "
                          "training.log_every_steps steps)")
    out = args.out or args.run / "report.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    _draw(panels, metrics, out, str(args.run))
    print(f"wrote {out} ({', '.join(t for _, tags, _ in panels for t in tags)})")
    return 0


def _draw(panels, metrics, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: works on machines without a display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), sharex=True, squeeze=False)
    for ax, (name, tags, log_y) in zip(axes[:, 0], panels):
        for tag in tags:
            steps, values = zip(*metrics[tag])
            style = "o-" if len(steps) < 50 else "-"  # sparse series (validation, rollouts) show their points
            ax.plot(steps, values, style, label=tag, markersize=3)
        if log_y and all(v > 0 for tag in tags for _, v in metrics[tag]):
            ax.set_yscale("log")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
    axes[-1, 0].set_xlabel("optimizer step")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
