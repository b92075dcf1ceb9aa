"""Memory the sync outbox holds while a backlog builds (the central store down) is bounded, whatever
the backlog's size: bench/sync_backlog_memory.py measures the whole gateway's RSS over an hour's
outage; this is its fast regression test."""

from __future__ import annotations

import gc
import tracemalloc

from drivers.base import Reading
from gateway.core import store as st
from gateway.core.contract import BatchResult, DeviceInfo, Resolved
from tests.sync_helpers import Feeder

DEVICES = 1000
BOUND = 8 * 1024 * 1024  # UniqueMs.max_points x 8 bytes, twice over for the arrays' spare capacity


def feed(f: Feeder, devices: list[DeviceInfo], n: int, start_ms: int, step_ms: int) -> None:
    """``n`` readings round the devices, one every ``step_ms``, committed 5,000 to a transaction
    through the outbox processor (as the pipeline does)."""
    c = f.store.conn
    for k0 in range(0, n, 5000):
        result = BatchResult()
        for k in range(k0, min(n, k0 + 5000)):
            dev = devices[k % len(devices)]
            ts = start_ms + k * step_ms
            values = {"contact": bool(k & 1), "battery": 90.0}
            result.resolved.append(Resolved(dev, Reading(dev.address, "state", values, ts), ts, ts, 0, 0))
        c.execute("BEGIN IMMEDIATE")
        f.proc.process(c, result, start_ms + k0 * step_ms)
        c.execute("COMMIT")


def held_by_cloud_sync(snapshot: tracemalloc.Snapshot) -> int:
    return sum(
        s.size for s in snapshot.filter_traces([tracemalloc.Filter(True, "*/cloud_sync/*")]).statistics("filename")
    )


def test_outbox_memory_bounded_during_a_backlog() -> None:
    """400,000 points at 1,000 a second (400 s, past the 6-minute millisecond memory) from 1,000
    devices with nobody sending: what cloud_sync keeps in memory stays under a bound that does not
    depend on the backlog (it held ~140 bytes a point for the last 6 minutes: 50 MB)."""
    f = Feeder("http://127.0.0.1:9", quota_mb=4096)  # nobody listens; no thinning either
    try:
        devices = [
            DeviceInfo(f"d{i:04d}", "native", f"d{i:04d}", "door_contact", "security", False, 3600.0, None, "b1")
            for i in range(DEVICES)
        ]
        now = st.now_ms() - 400_000
        gc.collect()
        tracemalloc.start(1)
        try:
            feed(f, devices, 400_000, now, 1)
            gc.collect()
            held = held_by_cloud_sync(tracemalloc.take_snapshot())
        finally:
            tracemalloc.stop()
        assert f.q("SELECT rows FROM outbox_totals WHERE prio=2") == [(400_000,)]
        print(f"cloud_sync holds {held / 1e6:.1f} MB with 400,000 points unsent")
        assert held < BOUND, f"cloud_sync holds {held / 1e6:.1f} MB with 400,000 points unsent"
    finally:
        f.close()
