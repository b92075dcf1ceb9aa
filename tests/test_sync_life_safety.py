"""Readings of life-safety devices (SOS buttons, fall radars ...) travel at incident priority: a
tight sync quota thins ordinary telemetry but never them, and they reach the central store
(a real VictoriaMetrics) before the telemetry backlog."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud_sync.targets import V2Target, WriteOutcome
from gateway.core import store as st
from tests.support import service_missing, wait_until
from tests.sync_helpers import NON_PERSONAL, Feeder
from tests.sync_servers import ServerMissing, VictoriaMetrics, free_port

SAFETY = ("sos-r1", "fall-r1")  # the mini site's life-safety devices (a resident's: send_personal on)


class RecordingTarget(V2Target):
    """The real v2 target; remembers the bodies the central store accepted, in order."""

    def __init__(self, url: str) -> None:
        super().__init__(url, token="", org="", bucket="b", timeout_s=10)
        self.accepted: list[bytes] = []

    def write(self, body: bytes) -> WriteOutcome:
        out = super().write(body)
        if out.ok:
            self.accepted.append(body)
        return out


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def vm(port: int) -> Iterator[VictoriaMetrics]:
    v = VictoriaMetrics(port=port)  # started by the test, once the backlog is built
    yield v
    v.close()


def points_by_device(vm: VictoriaMetrics, expected: int) -> dict[str, int]:
    vm.settled_points("edge_telemetry", expected, timeout=60)
    out: dict[str, int] = {}
    for labels, _ts in vm.points("edge_telemetry"):
        dev = dict(labels)["device"]
        out[dev] = out.get(dev, 0) + 1
    return out


def test_life_safety_readings_never_thinned_and_sent_before_telemetry(vm: VictoriaMetrics, port: int) -> None:
    f = Feeder(vm.url, quota_mb=0.1, send_personal="true")  # ~105 KB of outbox; the store is not up yet
    try:
        now = st.now_ms()
        for k in range(20):
            t0 = now + k * 1000
            rs = [
                (NON_PERSONAL[i % 4], {"battery": 50.0 + i % 50, "rssi": -60.5, "note": f"n{i}"}, t0 + i)
                for i in range(100)
            ]
            rs.insert(30, ("sos-r1", {"action": "emergency", "battery": 90.0}, t0 + 30))
            rs.insert(70, ("fall-r1", {"fall": True, "presence": True}, t0 + 70))
            f.batch(rs, now=t0)
        thinned = int(f.q("SELECT value FROM counters WHERE name='sync_thinned'")[0][0])
        assert thinned > 0  # the quota is tight: ordinary telemetry was thinned
        try:
            vm.start()
        except ServerMissing as exc:
            service_missing(str(exc))
            raise
        target = RecordingTarget(vm.url)
        s = f.sender(target=target)
        s.flush = True
        s.start()
        try:
            assert wait_until(lambda: int(f.q("SELECT sum(rows) FROM outbox_totals")[0][0]) == 0, 30)
        finally:
            s.stop()
        expected = 2000 - thinned + 40
        got = points_by_device(vm, expected)
        assert {d: got.get(d, 0) for d in SAFETY} == {"sos-r1": 20, "fall-r1": 20}  # every one arrived
        assert sum(got.get(d, 0) for d in NON_PERSONAL) == 2000 - thinned
        # ... and before any of the ordinary backlog
        first_ordinary = next(i for i, b in enumerate(target.accepted) if b"device=door-b1," in b)
        before = b"\n".join(target.accepted[:first_ordinary])
        assert before.count(b"device=sos-r1,") == 20 and before.count(b"device=fall-r1,") == 20
    finally:
        f.close()


def test_outbox_ids_never_reused_when_life_safety_readings_come_first() -> None:
    """One batch appends telemetry and life-safety rows whose ids interleave: the id high-water
    mark must be the highest of them, or ids would be handed out again after the rows are sent
    (and acknowledged telemetry ranges would swallow new points)."""
    f = Feeder("http://127.0.0.1:9", send_personal="true")
    try:
        now = st.now_ms()
        f.batch([("sos-r1", {"action": "emergency"}, now), ("door-b1", {"contact": True}, now + 1)], now=now)
        top = int(f.q("SELECT max(id) FROM outbox")[0][0])
        assert f.q("SELECT prio FROM outbox ORDER BY id") == [(0,), (2,)]
        assert f.q("SELECT value FROM meta WHERE key='sync_last_id'") == [(str(top),)]
        f.store.conn.execute("DELETE FROM outbox")  # as if both were sent
        f.proc = type(f.proc)(f.cfg)  # a restarted gateway
        f.batch([("door-b1", {"contact": False}, now + 2)], now=now + 2)
        assert int(f.q("SELECT min(id) FROM outbox")[0][0]) > top
    finally:
        f.close()
