"""Memory the sync side holds while a backlog builds (the central store down) and while it drains
is bounded, whatever the backlog's size: bench/sync_backlog_memory.py measures the whole gateway's
RSS over an hour's outage; these are its fast regression tests."""

from __future__ import annotations

import _sqlite3
import ctypes
import gc
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from drivers.base import Reading
from gateway.core import store as st
from gateway.core.contract import BatchResult, DeviceInfo, Resolved
from tests.support import service_missing, wait_until
from tests.sync_helpers import NON_PERSONAL, Feeder
from tests.sync_servers import InfluxDB1, ServerMissing, VictoriaMetrics

DEVICES = 1000
BOUND = 8 * 1024 * 1024  # UniqueMs.max_points x 8 bytes, twice over for the arrays' spare capacity


@dataclass
class Central:
    """A real central store and the sync settings that write to it."""

    url: str
    settings: dict[str, str]
    count: Callable[[int], int]  # telemetry points stored, once they reach the expected number


@pytest.fixture(params=["v2", "v1"])
def central(request: pytest.FixtureRequest) -> Iterator[Central]:
    """VictoriaMetrics through the v2 write API, InfluxDB 1.6 through /write."""
    try:
        if request.param == "v2":
            vm = VictoriaMetrics().start()
            yield Central(vm.url, {}, lambda n: vm.settled_points("edge_telemetry", n, timeout=60))
            vm.close()
            return
        influx = InfluxDB1().start()
    except ServerMissing as exc:
        service_missing(str(exc))
        raise
    try:
        influx.query("CREATE DATABASE community")

        def count(n: int) -> int:
            res = influx.query("SELECT count(battery) FROM edge_telemetry", "community")["results"][0]
            return int(res["series"][0]["values"][0][1]) if "series" in res else 0

        yield Central(influx.url, {"target": "v1", "database": "community"}, count)
    finally:
        influx.close()


def sqlite_memory() -> int:
    """Bytes SQLite has allocated in this process (the library the sqlite3 module uses)."""
    lib = ctypes.CDLL(_sqlite3.__file__)  # its symbols resolve to the SQLite it is linked with
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_used())


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


def test_drain_holds_a_few_request_bodies_whatever_the_backlog(central: Central) -> None:
    """Draining 100,000 points to a real central store: the Python memory in use at any moment
    stays within a few request bodies (the one in flight, the next one read). Each body used to
    live on in a reference cycle (httpx's response and its stream) until the garbage collector
    ran: a dozen at once."""
    f = Feeder(central.url, None, batch_size=5000, quota_mb=4096, heartbeat_s=3600, **central.settings)
    try:
        now = st.now_ms() - 100_000
        for k in range(0, 100_000, 5000):
            f.batch([(NON_PERSONAL[i % 4], {"battery": 50.0, "contact": True}, now + i) for i in range(k, k + 5000)])
        body = int(f.q("SELECT max(bytes) FROM outbox")[0][0]) * 5000  # the largest a request can be
        s = f.sender()
        s.target  # noqa: B018 - the HTTP client exists before the measurement
        gc.collect()
        sqlite_before = sqlite_memory()
        tracemalloc.start(1)
        try:
            base = tracemalloc.get_traced_memory()[0]
            s.start()
            assert wait_until(lambda: int(f.q("SELECT rows FROM outbox_totals WHERE prio=2")[0][0]) == 0, 60)
            sqlite_after = sqlite_memory()  # the sender's connection is still open
            s.stop()
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert central.count(100_000) == 100_000
        print(f"drain peak {peak / 1e6:.1f} MB, request body up to {body / 1e6:.2f} MB")
        assert peak < 5 * body, f"{peak / body:.1f} request bodies in memory at once"
        # Nothing else wrote meanwhile, so the sender's page cache kept what it read (16 MB, once)
        assert sqlite_after - sqlite_before < 4e6, f"SQLite holds {(sqlite_after - sqlite_before) / 1e6:.1f} MB more"
    finally:
        f.close()


def test_life_safety_backlog_drains_in_small_batches() -> None:
    """Readings of life-safety devices travel with the incident events, read as Python rows, not
    as one joined body: after an outage, 20,000 of them are sent without ever holding more than a
    small batch (and the next one) in memory."""
    try:
        vm = VictoriaMetrics().start()
    except ServerMissing as exc:
        service_missing(str(exc))
        raise
    f = Feeder(vm.url, batch_size=5000, quota_mb=4096, heartbeat_s=3600, send_personal="true")
    try:
        now = st.now_ms() - 20_000
        for k in range(0, 20_000, 5000):
            f.batch([("sos-r1", {"battery": 90.0, "linkquality": 120.0}, now + i) for i in range(k, k + 5000)])
        assert f.q("SELECT count(*) FROM outbox WHERE prio=0") == [(20_000,)]
        line = int(f.q("SELECT max(bytes) FROM outbox")[0][0])
        s = f.sender()
        s.target  # noqa: B018 - the HTTP client exists before the measurement
        gc.collect()
        tracemalloc.start(1)
        try:
            base = tracemalloc.get_traced_memory()[0]
            s.start()
            assert wait_until(lambda: f.outbox_rows() == 0, 60)
            s.stop()
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert vm.settled_points("edge_telemetry", 20_000) == 20_000
        print(f"life-safety drain peak {peak / 1e6:.1f} MB ({peak / line:.0f} lines' worth)")
        # 1,000-row batches: each row costs ~3x its line as Python objects, plus the joined body
        assert peak < 12_000 * line, f"{peak / line:.0f} lines' worth in memory at once"
    finally:
        f.close()
        vm.close()
