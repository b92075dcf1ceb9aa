"""Several write endpoints for one store (issue 22, docs/central.md "Past one central machine").

Two real VictoriaMetrics processes stand for two storage nodes; the gateway writes through two
endpoints, the first a TCP front (like a vminsert node) that is killed mid-drain: its open
connections are reset while a request is in flight and its port refuses from then on. The union of
the two stores must hold every point of the outbox, and no series and timestamp may hold two
different values (a re-sent point is byte-identical).

Why a killed front and not ``kill -9`` of a victoria-metrics process: a single-node VictoriaMetrics
acknowledges a write before it flushes it (about a second of buffered rows), so a crashed node loses
points the gateway was told were stored; in a cluster that is what ``-replicationFactor`` on vminsert
is for. The gateway's own promise, tested here, is that nothing it has not been acknowledged is lost.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cloud_sync.targets import FailoverTarget, make_target
from edge_config.sync_settings import SyncSettings
from tests.support import wait_until
from tests.sync_helpers import Feeder, readings
from tests.sync_servers import ServerMissing, VictoriaMetrics


class Front:
    """A TCP front on loopback for one server; ``kill`` resets every open connection and closes the port."""

    def __init__(self, port: int, delay_s: float = 0.004) -> None:
        self.upstream = port
        self.delay_s = delay_s  # per forwarded chunk, so that a drain takes long enough to be cut
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.dead = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.dead:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        with contextlib.suppress(OSError):
            while not self.dead:
                data = src.recv(65536)
                if not data:
                    break
                if slow:
                    time.sleep(self.delay_s)
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def kill(self) -> None:
        self.dead = True
        self.sock.close()
        with self.lock:
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    c.close()  # linger 0: a reset, as when the machine goes away


@pytest.fixture
def two_stores() -> Iterator[tuple[VictoriaMetrics, VictoriaMetrics]]:
    try:
        a, b = VictoriaMetrics().start(), VictoriaMetrics().start()
    except ServerMissing as exc:
        pytest.fail(f"central store missing: {exc}")
    yield a, b
    a.close()
    b.close()


def _expected(lines: list[str]) -> set[tuple[str, tuple[tuple[str, str], ...], int]]:
    """(measurement, tags, ms) of every line: what a VictoriaMetrics export shows of it."""
    out = set()
    for line in lines:
        head, _, ts = line.rpartition(" ")
        series = head.split(" ", 1)[0]
        meas, *tags = series.split(",")
        out.add((meas, tuple(sorted(tuple(t.split("=", 1)) for t in tags)), int(ts) // 1_000_000))  # type: ignore[misc]
    return out


def _samples(vm: VictoriaMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...], int], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...], int], float] = {}
    for s in vm.export('{__name__=~"edge_.*"}'):
        labels = tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__"))
        for ts, v in zip(s["timestamps"], s["values"], strict=True):
            out[(s["metric"]["__name__"], labels, ts)] = v
    return out


def _points(samples: dict[Any, float]) -> set[tuple[str, tuple[tuple[str, str], ...], int]]:
    measurements = ("edge_telemetry", "edge_incident", "edge_health")
    found = set()
    for name, labels, ts in samples:
        meas = next(m for m in measurements if name.startswith(m + "_"))
        found.add((meas, labels, ts))
    return found


def test_settings_build_a_failover_target() -> None:
    s = SyncSettings(url="http://127.0.0.1:1", urls=["http://127.0.0.1:2", "http://127.0.0.1:1"], target="v1")
    t = make_target(s)
    assert isinstance(t, FailoverTarget) and t.urls == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    out = t.write(b"m v=1 1")  # nothing listens on either: every endpoint tried, the reply says so
    assert out.status == 0 and "all 2 endpoints failed" in out.message
    t.close()


def test_endpoint_killed_mid_drain_loses_no_point(two_stores: tuple[VictoriaMetrics, VictoriaMetrics]) -> None:
    a, b = two_stores
    front = Front(a.port)
    f = Feeder(front.url, urls=f"[{b.url}]", batch_size=250, max_batch_age_s=0.05)
    start = int(time.time() * 1000) - 3_600_000
    for i in range(20):
        f.batch(readings(500, start + i * 2000), incidents=2)
    lines = [r[0] for r in f.q("SELECT line FROM outbox")]
    total = len(lines)
    sender = f.sender()
    sender.flush = True
    sender.start()
    try:
        deadline = time.monotonic() + 30
        while sender.sent < total // 4 and time.monotonic() < deadline:
            time.sleep(0.002)
        sent_at_kill = sender.sent
        front.kill()
        while f.outbox_rows() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = f.q("SELECT count(*) FROM outbox WHERE id NOT IN (SELECT o.id FROM outbox o JOIN outbox_sent s"
                   " ON o.id BETWEEN s.lo AND s.hi)")[0][0]  # fmt: skip
        target = sender.target
    finally:
        sender.stop()
    assert 0 < sent_at_kill < total, "the endpoint must die mid-drain"
    assert left == 0, "the outbox must drain through the second endpoint"
    assert isinstance(target, FailoverTarget) and target.failovers >= 1 and target.url == b.url
    a.flush()
    b.flush()
    want = _expected(lines)
    # searchable a moment after the flush: wait until the union holds every point (or the deadline)
    wait_until(lambda: not want - (_points(_samples(a)) | _points(_samples(b))), 10, 0.2)
    sa, sb = _samples(a), _samples(b)
    union = _points(sa) | _points(sb)
    assert want - union == set(), f"{len(want - union)} points lost"
    assert _points(sa) and _points(sb), "both endpoints took part"
    clashes = [k for k in sa.keys() & sb.keys() if sa[k] != sb[k]]
    assert clashes == [], "one series and timestamp with two values"
    f.close()
