"""``robot-stack view DATASET``: a recorded dataset in the Rerun viewer (cameras, action vs measured pose,
gripper and scene state, episode boundaries; see ``robot_stack.data.viewer``).

Examples::

    robot-stack view runs/demos                      # spawn a viewer with every episode
    robot-stack view runs/demos --episode 3 --episode 4
    robot-stack view runs/demos --save demos.rrd      # headless: write a file, open it with `rerun demos.rrd`
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("view", help="show a dataset in the Rerun viewer (or save an .rrd)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="dataset folder (with replay_buffer.zarr)")
    parser.add_argument("--episode", type=int, action="append", help="episode to show (repeatable; default all)")
    parser.add_argument("--save", type=Path, help="write a Rerun .rrd file instead of spawning the viewer")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_stack.data.viewer import view_dataset

    count = view_dataset(args.dataset, args.episode, args.save)
    where = f"saved to {args.save} (open it with `rerun {args.save}`)" if args.save else "sent to the viewer"
    print(f"{count} episode(s) of {args.dataset} {where}", flush=True)
    return 0
