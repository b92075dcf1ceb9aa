"""Cloud sync: line protocol, outbox, and the sender's reply handling against a local HTTP server
that answers as the InfluxDB v2 API documents (401, 413, 429 + Retry-After, 400 partial write)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from cloud_sync import lineproto as lp
from cloud_sync.sender import find_bad_lines
from cloud_sync.status import metrics_text, sync_status
from gateway.core import store as st
from tests.support import ROOT, wait_until
from tests.sync_helpers import Feeder, readings
from tests.sync_servers import FakeInfluxV2


@pytest.fixture
def fake() -> Iterator[FakeInfluxV2]:
    f = FakeInfluxV2()
    yield f
    f.close()


def test_line_protocol_escaping_and_types() -> None:
    assert lp.tags({"b": "x y", "a": "p,q=r", "c": None}) == r",a=p\,q\=r,b=x\ y"
    f = lp.fields({"n": 3, "x": 1.5, "ok": True, "s": 'say "hi"\n', "nan": float("nan"), "l": [1], "time": 1})
    assert f == r'n=3,x=1.5,ok=true,s="say \"hi\" ",vtime=1'
    u = lp.UniqueMs()
    assert [u.take("s", 5), u.take("s", 5), u.take("s", 5), u.take("t", 5)] == [5, 6, 7, 5]
    assert len({u.take("burst", 100) for _ in range(2000)}) == 2000
    assert lp.ns(12, 1_000_003) == 12_000_003


def test_find_bad_lines() -> None:
    rows = [(1, "m a=1 1"), (2, "m a= 2"), (3, "m a=3 3")]
    msg = "partial write: unable to parse 'm a= 2': missing field value dropped=0"
    assert find_bad_lines(rows, msg) == {1}
    v2 = "partial write has occurred, errors encountered on line(s):\nline 3: invalid"
    assert find_bad_lines(rows, v2) == {2}


def test_points_unique_and_personal_data_not_sent() -> None:
    f = Feeder("http://127.0.0.1:9")
    try:
        now = st.now_ms()
        rs = readings(200, now, same_ms_every=2)  # many readings share a device and millisecond
        rs.append(("pir-r1", {"occupancy": True}, now))  # a resident's device: personal, not sent
        f.batch(rs, incidents=5, now=now)
        lines = [r[0] for r in f.q("SELECT line FROM outbox")]
        keys = [(ln.split(" ")[0], ln.rsplit(" ", 1)[1][:-6]) for ln in lines]  # series, ms
        assert len(keys) == len(set(keys)) == 205  # unique to the millisecond (VictoriaMetrics precision)
        assert not any("pir-r1" in ln or "r1" in ln.split(" ")[0].split(",device=")[-1] for ln in lines)
        assert all("resident" not in ln for ln in lines)
        st_ = sync_status(f.store.conn)
        assert st_["backlog"] == {"events": 5, "health": 0, "telemetry": 200} and st_["not_sent"] == 1
        assert "edge_sync_backlog_points" in metrics_text(st_)
    finally:
        f.close()


def test_v2_write_request_as_influxdb2_documents(fake: FakeInfluxV2) -> None:
    """POST /api/v2/write with org, bucket and precision=ns, the token as ``Authorization: Token``."""
    f = Feeder(fake.url, env={"TOKEN": "s3cret"}, token='"${TOKEN}"', org="district", bucket="community")
    s = f.sender()
    try:
        f.batch(readings(3, st.now_ms()))
        s.flush = True
        s.start()
        assert wait_until(lambda: f.outbox_rows() == 0, 10)
    finally:
        s.stop()
        f.close()
    path, headers = fake.requests[0]
    assert path == "/api/v2/write?org=district&bucket=community&precision=ns"
    assert headers["authorization"] == "Token s3cret"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert [len(lines) for lines in fake.received] == [3]


def test_401_keeps_data_raises_alarm_then_recovers(fake: FakeInfluxV2) -> None:
    f = Feeder(fake.url, env={"TOKEN": "wrong"}, token='"${TOKEN}"', org="o", bucket="b")
    alarms: list[tuple[str, bool]] = []
    s = f.sender(on_alarm=lambda k, active, d: alarms.append((k, active)))
    fake.script = lambda lines: (401, {}, {"code": "unauthorized", "message": "unauthorized access"})
    try:
        now = st.now_ms()
        f.batch(readings(300, now), incidents=2, now=now)
        s.flush = True
        s.start()
        assert wait_until(lambda: len(fake.received) >= 3, 10)
        assert alarms == [("sync_unauthorized", True)]
        assert f.outbox_rows() == 302  # nothing dropped
        status = sync_status(f.store.conn)
        assert status["last_status"] == 401 and "unauthorized" in status["last_error"]
        fake.script = None
        assert wait_until(lambda: f.outbox_rows() == 0, 10)
        assert alarms[-1] == ("sync_unauthorized", False)
        assert len(fake.stored) == 302
        assert fake.received[0][0].startswith("edge_incident")  # events before telemetry
        assert sync_status(f.store.conn)["last_error"] is None
    finally:
        s.stop()
        f.close()


def test_413_splits_and_429_retry_after(fake: FakeInfluxV2) -> None:
    f = Feeder(fake.url, batch_size=400)
    state = {"first429": 0.0, "after429": 0.0}

    def script(lines: list[str]) -> tuple[int, dict[str, str], dict[str, str] | None]:
        if len(lines) > 100:
            return 413, {}, {"code": "request too large", "message": "cannot read data: points in batch is too large"}
        if not state["first429"]:
            state["first429"] = time.monotonic()
            return 429, {"Retry-After": "1"}, {"code": "too many requests", "message": "org rate limit"}
        if not state["after429"]:
            state["after429"] = time.monotonic()
        return 204, {}, None

    fake.script = script
    s = f.sender()
    try:
        f.batch(readings(1000, st.now_ms()))
        s.flush = True
        s.start()
        assert wait_until(lambda: f.outbox_rows() == 0, 20)
        assert len(fake.stored) == 1000
        assert state["after429"] - state["first429"] >= 0.95  # Retry-After honoured
        assert max(len(r) for r in fake.received if r) == 400  # split only after the 413
    finally:
        s.stop()
        f.close()


def test_400_point_error_dead_letters_only_the_bad_point(fake: FakeInfluxV2) -> None:
    f = Feeder(fake.url)

    def script(lines: list[str]) -> tuple[int, dict[str, str], dict[str, str] | None]:
        bad = [ln for ln in lines if 'note="n77"' in ln]
        if bad:  # InfluxDB 2 stores the others, names the bad one
            return 400, {}, {"code": "invalid", "message": f"partial write error: unable to parse '{bad[0]}': bad"}
        return 204, {}, None

    fake.script = script
    s = f.sender()
    try:
        f.batch(readings(150, st.now_ms()))
        s.flush = True
        s.start()
        assert wait_until(lambda: f.outbox_rows() == 0, 10)
        assert len(fake.stored) == 149
        dead = f.q("SELECT reason, detail, payload_excerpt FROM dead_letters")
        assert len(dead) == 1 and dead[0][0] == "sync_rejected" and "unable to parse" in dead[0][1]
        assert b'note="n77"' in dead[0][2]
        assert sync_status(f.store.conn)["dead_letters"] == 1
    finally:
        s.stop()
        f.close()


def test_quota_thins_telemetry_never_events(fake: FakeInfluxV2) -> None:
    f = Feeder(fake.url, quota_mb=0.1)  # ~105 KB of outbox
    try:
        now = st.now_ms()
        for k in range(20):
            f.batch(readings(100, now + k * 1000), incidents=2, now=now + k * 1000)
        totals = f.q("SELECT sum(bytes) FROM outbox_totals")[0][0]
        assert totals <= 0.1 * 1024 * 1024
        assert totals == f.q("SELECT sum(bytes) FROM outbox")[0][0]
        thinned = f.q("SELECT value FROM counters WHERE name='sync_thinned'")[0][0]
        tele_left = f.q("SELECT count(*) FROM outbox WHERE prio=2")[0][0]
        assert thinned > 0 and tele_left + thinned == 2000
        assert f.q("SELECT count(*) FROM outbox WHERE prio=0")[0][0] == 40
        # every device kept points in the thinned span (per-series thinning)
        oldest = [r[0] for r in f.q("SELECT line FROM outbox WHERE prio=2 ORDER BY id LIMIT 200")]
        assert {ln.split(",device=")[1].split(",")[0] for ln in oldest} == {"door-b1", "park-01", "park-fire", "acc-b2"}
        s = f.sender()
        s.flush = True
        s.start()
        try:
            assert wait_until(lambda: f.outbox_rows() == 0, 10)
        finally:
            s.stop()
        stored = list(fake.stored.values())
        assert sum(ln.startswith("edge_telemetry") for ln in stored) == 2000 - thinned
        assert {int(ln.split("seq=")[1].split("i")[0]) for ln in stored if ln.startswith("edge_incident")} == (
            f.event_seqs()
        )
    finally:
        f.close()


def test_cli_sync_status(tmp_path: object) -> None:
    f = Feeder("http://127.0.0.1:9")
    try:
        f.batch(readings(10, st.now_ms()), incidents=1)
        out = subprocess.run(
            [sys.executable, "-m", "gateway", "sync", "status", "--config", str(f.cfg_path), "--store", str(f.db)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["backlog_points"] == 11 and data["backlog"]["events"] == 1 and data["enabled"] is True
    finally:
        f.close()


def test_telemetry_span_body_in_id_order_and_400_by_line_number() -> None:
    """Telemetry goes as a span whose body SQLite joined: lines in id order, so a 400 naming a line
    number dead-letters exactly that point, and the rest is acknowledged by a range delete."""
    from cloud_sync.sender import Span
    from cloud_sync.targets import WriteOutcome

    class Target:
        name = "fake"

        def __init__(self) -> None:
            self.bodies: list[bytes] = []

        def write(self, body: bytes) -> WriteOutcome:
            self.bodies.append(body)
            if len(self.bodies) == 1:
                return WriteOutcome(400, "partial write has occurred, errors encountered on line(s):\nline 3: invalid")
            return WriteOutcome(204)

        def close(self) -> None:
            pass

    f = Feeder("http://127.0.0.1:9", batch_size=10)
    try:
        f.batch(readings(25, st.now_ms()))
        lines = [r[0] for r in f.q("SELECT line FROM outbox WHERE prio=2 ORDER BY id")]
        t = Target()
        s = f.sender(target=t)
        s.flush = True
        batch, _ = s.next_batch()
        assert isinstance(batch, Span) and batch.count == 10 and batch.body == "\n".join(lines[:10]).encode()
        while f.outbox_rows():
            s.step()
        s.stop()
        assert t.bodies[0] == batch.body and t.bodies[1] == "\n".join(lines[:2] + lines[3:10]).encode()
        assert [r[0] for r in f.q("SELECT payload_excerpt FROM dead_letters")] == [lines[2].encode()]
        assert b"\n".join(t.bodies[1:]) == "\n".join(lines[:2] + lines[3:]).encode()
        totals = f.q("SELECT rows, bytes FROM outbox_totals WHERE prio=2")[0]
        assert tuple(totals) == (0, 0)
        sent = dict(f.q("SELECT name, value FROM counters WHERE name LIKE 'sync_sent%'"))
        assert sent == {"sync_sent": 24, "sync_sent.telemetry": 24}
    finally:
        f.close()
