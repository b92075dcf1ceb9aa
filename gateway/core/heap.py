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
"""

from __future__ import annotations

import gc
import logging
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
