"""gateway/core/heap.py: the long-lived heap is frozen out of the collector's full passes, and a reload
thaws it so the old config's reference cycles can still be collected."""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Iterator

import pytest

from gateway.core import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector frees it


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # leave the test process as it was


def test_a_frozen_cycle_survives_full_passes_until_the_next_freeze() -> None:
    node = Node()
    ref = weakref.ref(node)
    heap.freeze_long_lived()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert ref() is not None, "frozen objects are out of the collector's sight"
    heap.freeze_long_lived()  # what a config reload does
    assert ref() is None
    assert gc.get_freeze_count() > 0  # and what is alive is frozen again


# glibc is what the gateway runs on (Debian, Raspberry Pi OS, the Docker image): a developer on
# another C library skips these, CI never does (a machine without glibc there is a broken setup).
glibc_only = pytest.mark.skipif(
    heap._glibc() is None and os.environ.get("CI") != "true",
    reason="glibc malloc only (Linux: Debian, Raspberry Pi OS)",
)


@glibc_only
def test_allocator_settings_leave_what_the_environment_sets() -> None:
    """`gateway run` sets glibc's arenas and thresholds, except those the operator set."""
    got = heap.lean_allocator({})
    assert got == {"arena_max": 2, "mmap_threshold": 128 * 1024, "trim_threshold": 128 * 1024}
    got = heap.lean_allocator({"MALLOC_ARENA_MAX": "4", "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})
    assert got == {"mmap_threshold": 128 * 1024}


@glibc_only
def test_freed_memory_goes_back_to_the_system() -> None:
    """What a drain allocated and freed leaves the resident set at the next trim."""
    import threading
    import time

    def rss_kb() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    heap.lean_allocator({})
    blocks = [bytearray(4000) for _ in range(20_000)]  # ~80 MB in blocks below the mmap threshold
    keep = blocks[::1000]  # a few stay, scattered: the heap's top cannot simply shrink
    high = rss_kb()
    del blocks
    stop = threading.Event()
    thread = heap.start_trimmer(stop, every_s=0.05)
    try:
        deadline = time.monotonic() + 5
        while rss_kb() > high - 40_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rss_kb() <= high - 40_000, f"RSS {rss_kb()} kB after freeing ~80 MB, {high} kB before"
    finally:
        stop.set()
        assert thread is not None
        thread.join(2)
    assert len(keep) == 20
