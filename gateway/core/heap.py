"""Keep the cycle collector's full passes short: they stop every thread, alarms included.

A full (generation-2) collection walks every tracked object while holding the GIL, so ingest, the
pipeline and the event loop all stand still meanwhile. After start-up most of the heap is the site
config (~1,200 devices), the routing tables, FastAPI's routes and pydantic's schemas: objects that
live until the process ends or the config is reloaded. With them in view a full pass took 68-90 ms
(bench/api.py, gc callbacks), and the SOS events that met one reached the stream 100-160 ms late.
``gc.freeze()`` moves everything alive now out of the collector's sight; later full passes walk
only what was allocated since (12-21 ms measured). Frozen objects are still freed by reference
counting; only cyclic garbage among them would stay, which is why a reload thaws, collects (the
old config's cycles go) and freezes again.

The C allocator (glibc's malloc, on Raspberry Pi OS, Debian and the Docker image) is set up for
a small box by :func:`lean_allocator` at the start of ``gateway run``, before any thread exists,
and :func:`start_trimmer` gives its free pages back to the system every few seconds. Measured
with bench/pi_budget.py (README "Pi budget"): glibc's defaults let a drain's freed memory stay
resident (one arena per busy thread, up to eight per core; large buffers moved into the heap
once the mmap threshold had adapted to them; free pages inside the heap kept until reused).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import threading
import time

log = logging.getLogger("gateway.core.heap")
_lock = threading.Lock()  # a reload (executor thread) and start-up never interleave their passes


def freeze_long_lived() -> None:
    """Freeze what is alive now: at the end of start-up, and again after each config reload. Thaws
    first, so the previous freeze's garbage (the old config's cycles) is collected; one full pass
    over the whole heap (~0.1 s with every thread stopped) each time."""
    with _lock:
        t0 = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        log.debug("heap frozen: %d objects, %.0f ms", gc.get_freeze_count(), (time.perf_counter() - t0) * 1000)


# mallopt(3) parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
# Two arenas: the pipeline thread and the MQTT network threads still rarely wait for each other,
# while every other thread shares them instead of keeping its own partly empty heap.
ARENA_MAX = 2
# Blocks from 128 KiB up (the sync sender's request bodies, SQLite's joined batches, large lists)
# get their own mapping, returned to the system when freed. Setting it turns off glibc's
# adaptive threshold, which after the first such block freed kept every later one in the heap.
MMAP_THRESHOLD = 128 * 1024
TRIM_THRESHOLD = 128 * 1024
TRIM_EVERY_S = 5.0


def _glibc() -> ctypes.CDLL | None:
    try:
        os.confstr("CS_GNU_LIBC_VERSION")  # only glibc answers (musl, macOS: ValueError)
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except (ValueError, OSError, AttributeError):
        return None


def lean_allocator(environ: dict[str, str] | None = None) -> dict[str, int]:
    """Set glibc malloc's arenas and thresholds (above) for this process; returns what was set.
    Call it first thing, before threads start (a thread's arena is chosen at its first malloc).
    A setting the environment already makes (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_``, or ``GLIBC_TUNABLES``) is left as the operator set it."""
    env = os.environ if environ is None else environ
    libc = _glibc()
    if libc is None:
        return {}
    tunables = env.get("GLIBC_TUNABLES", "")
    applied: dict[str, int] = {}
    for name, param, value, var, tunable in (
        ("arena_max", M_ARENA_MAX, ARENA_MAX, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
        ("mmap_threshold", M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold"),
        ("trim_threshold", M_TRIM_THRESHOLD, TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),
    ):
        if var in env or tunable in tunables:
            continue
        if libc.mallopt(param, value) == 1:
            applied[name] = value
    log.debug("malloc: %s", applied)
    return applied


def trim() -> bool:
    """Return the C allocator's free pages to the system (glibc ``malloc_trim``); False elsewhere.
    ctypes lets the other threads run meanwhile (it releases the GIL)."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


def start_trimmer(stop: threading.Event, every_s: float = TRIM_EVERY_S) -> threading.Thread | None:
    """A daemon thread that calls :func:`trim` every ``every_s`` until ``stop`` is set (glibc only):
    what a backlog's drain freed leaves the resident set within seconds, so it does not add up
    over the drains of a long outage. ~1 ms per call on a 50 MB heap."""
    libc = _glibc()
    if libc is None:
        return None

    def run() -> None:
        while not stop.wait(every_s):
            libc.malloc_trim(0)

    t = threading.Thread(target=run, name="malloc-trim", daemon=True)
    t.start()
    return t
