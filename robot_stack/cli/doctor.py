"""``robot-stack doctor [--rig R]``: can this machine hold a rig's timing? Prints what it finds and the fix.

Examples::

    robot-stack doctor                      # cores and the CPU priority each part of a rig would get
    robot-stack doctor --rig sim_pusht      # plus that rig's rates and CPU pinning

Exit code 0 when nothing needs fixing, 1 with warnings (each names its fix), 2 for a bad ``--rig``.
"""

from __future__ import annotations

import argparse
import os

# Below this many cores the servo loop, the policy and the cameras share cores: timing then depends on the
# priorities (and a busy machine shows it as late cycles and stale actions).
_COMFORTABLE_CORES = 4
_ROLE_PARTS = {"control": "robot controller (servo loop, RTDE)", "policy": "policy process",
               "device": "cameras, teleop, simulated scene", "background": "video encoding"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check whether this machine can hold a rig's timing (cores, priorities, pinning)",
        description="Print the cores, the CPU priority each part of a rig gets here, and (with --rig) the "
        "rig's rates and pinning, with the fix for every warning.",
    )
    parser.add_argument("--rig", help="rig YAML path or shipped rig name (optional)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_stack.runtime import scheduling
    from robot_stack.runtime.scheduling import PRIORITIES, may_raise_priority

    warnings: list[str] = []
    rig = None
    if args.rig:
        from robot_stack.rig import load_rig

        rig = load_rig(args.rig)  # ConfigError: one line, exit 2
    cores = scheduling.available_cores()
    print(f"cores: {len(cores)} usable ({', '.join(map(str, cores))})")
    if len(cores) < _COMFORTABLE_CORES:
        warnings.append(f"only {len(cores)} cores: the servo loop, the policy and the cameras share them; keep other "
                        "work off this machine while the arm moves, and keep the priorities above at 'ok'")
    may_raise = may_raise_priority()
    for role, nice in PRIORITIES.items():
        got = nice if nice >= os.getpriority(os.PRIO_PROCESS, 0) or may_raise else os.getpriority(os.PRIO_PROCESS, 0)
        status = "ok" if got == nice else f"stays at nice {got}"
        print(f"priority {role:<10} nice {nice:>3}  {status:<16} {_ROLE_PARTS[role]}")
    if not may_raise:
        warnings.append("the robot controller and the policy run at normal priority: raising it needs CAP_SYS_NICE "
                        "or `ulimit -e` >= 30; see the README's 'Real-time setup'")
    if rig is not None:
        robot = rig.robot
        print(f"rig {rig.name}: servo loop {robot.frequency:g} Hz ({robot.driver}), {len(rig.cameras)} camera(s)"
              + "".join(f", {c.name} {c.resolution[0]}x{c.resolution[1]}@{c.fps}" for c in rig.cameras))
        pinning = scheduling.rig_cpus(rig.cpus)
        if pinning:
            source = "the rig's cpus:" if rig.cpus is not None else f"default for {len(cores)} cores"
            print(f"pinning ({source}): " + ", ".join(f"{role} -> {list(c)}" for role, c in pinning.items()))
            control = set(pinning.get("control", ()))
            shared = sorted(r for r, c in pinning.items() if r != "control" and control & set(c))
            if shared:
                warnings.append(f"the control role shares cores with {', '.join(shared)}: give it a core of its own "
                                "in the rig's cpus:")
        else:
            why = "the rig's cpus: is empty" if rig.cpus is not None else f"none by default below " \
                f"{scheduling.DEFAULT_PINNING_CORES} cores"
            print(f"pinning: none ({why})")
    for line in warnings:
        print(f"warning: {line}")
    print("ok: nothing to fix" if not warnings else f"{len(warnings)} warning(s)")
    return 1 if warnings else 0
