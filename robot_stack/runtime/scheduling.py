"""CPU priorities: the parts that move the arm keep their timing when the machine is busy.

Each process (or thread) says what it is, and gets the matching nice level where the user may set it:

    control     -10   the robot controller's servo loop and RTDE I/O
    policy       -5   the policy process (inference latency decides how many actions go stale)
    device        0   cameras, teleop, the simulated scene
    background   10   video encoding, previews: what may fall behind without harm

Raising priority (a negative nice) needs ``CAP_SYS_NICE`` or an ``RLIMIT_NICE`` (``ulimit -e``) allowing it;
without either, the process keeps its level and logs one line saying so and how to allow it. Lowering is
always allowed. Nice levels rather than SCHED_FIFO: a real-time class lets a spinning bug lock a core,
and on a shared 2-core machine the fair scheduler with nice weights (-10 gets ~9x the CPU share of 0 under
contention) is what keeps the loop on time. On Linux the level applies to the calling thread and the
threads it starts later, which is why ``set_priority`` is called first thing in a process or thread.

CPU affinity (optional, the rig's ``cpus:``): ``use_cpus({"control": [1], "device": [0], ...})`` pins each
listed role to those cores from then on — in this process's later ``set_priority`` calls and, through the
``ROBOT_STACK_CPUS`` environment variable, in the processes it spawns afterwards. Roles not listed are not
pinned. A rig that says nothing gets ``default_cpus`` on machines with 4 or more cores (the servo loop alone
on the last core, the policy on the rest of the upper half, everything else on the lower half); ``cpus: {}``
turns pinning off.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Mapping, Sequence

log = logging.getLogger(__name__)

PRIORITIES: dict[str, int] = {"control": -10, "policy": -5, "device": 0, "background": 10}
CPUS_ENV = "ROBOT_STACK_CPUS"


def check_cpus(cpus: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    """The validated role -> cores mapping; ``ValueError`` naming the role for an unknown role, an empty
    list, or a core this process cannot run on."""
    available = available_cores()
    out = {}
    for role, cores in cpus.items():
        if role not in PRIORITIES:
            raise ValueError(f"{role}: unknown role; use {', '.join(PRIORITIES)}")
        if not isinstance(cores, (list, tuple)) or not cores or \
                not all(isinstance(c, int) and not isinstance(c, bool) for c in cores):
            raise ValueError(f"{role}: must be a non-empty list of core numbers, got {cores!r}")
        missing = sorted(set(cores) - set(available))
        if missing:
            raise ValueError(f"{role}: core(s) {missing} do not exist here (this machine runs on {available})")
        out[role] = tuple(sorted(set(cores)))
    return out


# Below this many cores a core of its own for the servo loop costs the rest too much: no default pinning.
DEFAULT_PINNING_CORES = 4


def available_cores() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def default_cpus(cores: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """The pinning a rig without ``cpus:`` gets on ``cores``: none below ``DEFAULT_PINNING_CORES``; else the
    control role alone on the last core, the policy on the rest of the upper half, devices and background
    work (cameras, encoders, previews) on the lower half."""
    cores = sorted(cores)
    if len(cores) < DEFAULT_PINNING_CORES:
        return {}
    lower, upper = cores[: len(cores) // 2], cores[len(cores) // 2 :]
    return {"control": (upper[-1],), "policy": tuple(upper[:-1]), "device": tuple(lower),
            "background": tuple(lower)}


def rig_cpus(cpus: Mapping[str, Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    """What a rig's ``cpus:`` means here: its own mapping when it has one (``{}``: no pinning), else
    ``default_cpus`` of this machine."""
    return dict(cpus) if cpus is not None else default_cpus(available_cores())


def use_cpus(cpus: Mapping[str, Sequence[int]] | None) -> None:
    """Pin roles to cores from now on, here and in processes spawned later (see the module docstring);
    ``None`` or empty: no pinning."""
    if cpus:
        os.environ[CPUS_ENV] = json.dumps({role: list(cores) for role, cores in check_cpus(cpus).items()})
    else:
        os.environ.pop(CPUS_ENV, None)


def _cpus_for(role: str) -> tuple[int, ...] | None:
    text = os.environ.get(CPUS_ENV)
    if not text:
        return None
    try:
        cores = json.loads(text).get(role)
    except (ValueError, AttributeError):
        log.warning("ignoring $%s: not a JSON object of role -> cores (%.80s)", CPUS_ENV, text)
        return None
    return tuple(cores) if cores else None


def set_priority(role: str, who: str) -> int:
    """Give the calling thread ``role``'s nice level, and its cores when roles are pinned (see the module
    docstring); returns the nice level it has.

    ``who`` names the process or thread in the log line written when the level cannot be raised.
    """
    if role not in PRIORITIES:
        raise ValueError(f"unknown priority role {role!r}; use one of {sorted(PRIORITIES)}")
    if not hasattr(os, "setpriority"):  # not a POSIX system: nothing to set
        return 0
    thread = threading.get_native_id()  # Linux: PRIO_PROCESS with a thread id sets that thread only
    cores = _cpus_for(role)
    if cores is not None:
        try:
            os.sched_setaffinity(thread, cores)
        except OSError as exc:  # e.g. a core taken away by a cgroup since the rig was loaded
            log.warning("%s: could not pin to cores %s (%s); it runs on any core", who, list(cores), exc)
    target = PRIORITIES[role]
    current = os.getpriority(os.PRIO_PROCESS, thread)
    if current == target:
        return current
    try:
        os.setpriority(os.PRIO_PROCESS, thread, target)
    except PermissionError:
        log.warning("%s runs at nice %d, not %d (%s priority): raising it needs CAP_SYS_NICE or a higher "
                    "`ulimit -e`; see the README's 'Real-time setup'", who, current, target, role)
        return current
    return target


def may_raise_priority() -> bool:
    """Whether this process may lower its nice value (``CAP_SYS_NICE`` or ``RLIMIT_NICE``), tried in a
    throw-away thread so that nothing here changes."""
    result = {"ok": False}

    def probe() -> None:
        me = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, me, os.getpriority(os.PRIO_PROCESS, me) - 1)
            result["ok"] = True
        except OSError:  # PermissionError, or a system without per-thread priorities
            pass

    worker = threading.Thread(target=probe)
    worker.start()
    worker.join()
    return result["ok"]
