"""Bulk work yields the CPU to the life-safety path.

On a Pi-class box the gateway's threads share one small CPU budget (one core, or a quota of one).
While an hour's backlog drains, the telemetry session's network thread, the central-store sender
and the pipeline all want the CPU at once, and an SOS press that reaches the pipeline then waits for
its share behind bulk work: with equal shares a one-message life-safety commit took 40-90 ms of wall
time for 3-4 ms of CPU under the bench's quarter core (bench/pi_budget.py).

The scheduler's weights fix that without a privilege: a thread may always *lower* its own priority
(``setpriority`` on its own thread id raises its nice value; only raising priority needs
CAP_SYS_NICE). The bulk threads call :func:`yield_to_life_safety` when they start; the pipeline,
the life-safety session, the alarm channels and the API keep nice 0. Nice is a weight, not a
rank (SCHED_OTHER): a bulk thread still gets its share whenever the others sleep (the pipeline
sleeps in every fsync), so nothing starves, and on an idle machine nothing changes.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("gateway")

# Nice 10 weighs 110 against nice 0's 1024 in Linux's CFS: about 10 % of the CPU for the bulk
# thread while a nice-0 thread also wants it.
BULK_NICE = 10


def yield_to_life_safety(nice: int = BULK_NICE) -> bool:
    """Lower the calling thread's CPU priority to ``nice`` (Linux: per thread); False where the
    platform has no per-thread priority or refuses (the thread then simply keeps its priority)."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None:
        return False
    try:
        tid = threading.get_native_id()
        # Only ever lower: a thread already below (an operator's `nice`) stays where it is.
        if os.getpriority(os.PRIO_PROCESS, tid) >= nice:
            return True
        setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:
        log.debug("thread priority unchanged: %s", exc)
        return False
    return True
