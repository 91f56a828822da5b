"""``robot-stack dataset check|export|import``: inspect a dataset, or convert it to and from LeRobot's format.

Examples::

    robot-stack dataset check runs/demos     # exit 0: consistent; 1: problems found (listed); 2: no dataset
    robot-stack dataset export runs/demos --format lerobot --out runs/demos_lerobot --task "push the T"
    robot-stack dataset import runs/demos_lerobot --out runs/demos_again

``check`` changes nothing: a corrupt ``episode_ends`` is reported, never repaired (see
``robot_stack.data.check``). ``export``/``import`` write a new folder (``robot_stack.data.lerobot_format``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dataset", help="inspect a recorded dataset; export/import LeRobot datasets",
                                   description="Inspect a recorded dataset, or convert it to and from a "
                                   "LeRobotDataset (v3.0).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="episodes, lengths, video frames vs timestamps, and any inconsistency",
        description="List the episodes (steps, duration, seed, per-camera video frames vs timestamps) and every "
        "inconsistency; exit 1 if there is one.")
    check.add_argument("dataset", type=Path, help="dataset folder (with replay_buffer.zarr)")
    check.set_defaults(func=run_check)
    export = actions.add_parser(
        "export", help="write a dataset in another format (LeRobotDataset v3.0)",
        description="Write DATASET as a LeRobotDataset v3.0 in a new folder: parquet steps, one video frame per "
        "step (the frame training uses), meta/ with LeRobot's standard feature names.")
    export.add_argument("dataset", type=Path, help="robot_stack dataset folder (with replay_buffer.zarr)")
    export.add_argument("--format", choices=("lerobot",), default="lerobot", help="output format (default: lerobot)")
    export.add_argument("--out", type=Path, required=True, help="new folder for the exported dataset")
    export.add_argument("--task", help="natural-language task of the episodes (default: the dataset folder's name)")
    export.add_argument("--robot-type", default="ur5", help="LeRobot's robot_type field (default: ur5)")
    export.set_defaults(func=run_export)
    imp = actions.add_parser(
        "import", help="read a LeRobotDataset v3.0 into robot_stack's layout",
        description="Read the LeRobotDataset v3.0 folder SOURCE into a new robot_stack dataset.")
    imp.add_argument("source", type=Path, help="LeRobotDataset folder (with meta/info.json)")
    imp.add_argument("--out", type=Path, required=True, help="new folder for the robot_stack dataset")
    imp.set_defaults(func=run_import)


def run_check(args: argparse.Namespace) -> int:
    from robot_stack.data.check import check_dataset

    report = check_dataset(args.dataset)
    print(report.render(), flush=True)
    return 0 if report.ok else 1


def run_export(args: argparse.Namespace) -> int:
    from robot_stack.data.lerobot_format import export_lerobot

    summary = export_lerobot(args.dataset, args.out, task=args.task, robot_type=args.robot_type)
    print(f"exported {summary.episodes} episodes ({summary.frames} frames at {summary.fps} fps) to {summary.path}",
          flush=True)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from robot_stack.data.lerobot_format import import_lerobot

    summary = import_lerobot(args.source, args.out)
    print(f"imported {summary.episodes} episodes ({summary.steps} steps, cameras {list(summary.cameras)}) into "
          f"{summary.path}", flush=True)
    return 0
