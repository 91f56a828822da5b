"""``robot-stack dataset check DATASET``: report a dataset's episodes and every inconsistency in it.

Examples::

    robot-stack dataset check runs/demos     # exit 0: consistent; 1: problems found (listed); 2: no dataset

Nothing is changed: a corrupt ``episode_ends`` is reported, never repaired (see ``robot_stack.data.check``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dataset", help="inspect a recorded dataset",
                                   description="Inspect a recorded dataset (read-only).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="episodes, lengths, video frames vs timestamps, and any inconsistency",
        description="List the episodes (steps, duration, seed, per-camera video frames vs timestamps) and every "
        "inconsistency; exit 1 if there is one.")
    check.add_argument("dataset", type=Path, help="dataset folder (with replay_buffer.zarr)")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from robot_stack.data.check import check_dataset

    report = check_dataset(args.dataset)
    print(report.render(), flush=True)
    return 0 if report.ok else 1
