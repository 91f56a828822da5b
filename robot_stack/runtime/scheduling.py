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
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

PRIORITIES: dict[str, int] = {"control": -10, "policy": -5, "device": 0, "background": 10}


def set_priority(role: str, who: str) -> int:
    """Give the calling thread ``role``'s nice level (see the module docstring); returns the level it has.

    ``who`` names the process or thread in the log line written when the level cannot be raised.
    """
    if role not in PRIORITIES:
        raise ValueError(f"unknown priority role {role!r}; use one of {sorted(PRIORITIES)}")
    if not hasattr(os, "setpriority"):  # not a POSIX system: nothing to set
        return 0
    target = PRIORITIES[role]
    thread = threading.get_native_id()  # Linux: PRIO_PROCESS with a thread id sets that thread only
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
