"""Cloud sync against real central stores on loopback: VictoriaMetrics (InfluxDB v2 writes)
and InfluxDB 1.6 (/write). Each test ends with exact point counts in the store
and every incident event present."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_sync.status import sync_status
from edge_config import load_config
from gateway.core import store as st
from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from tests.conftest import write_site
from tests.support import GatewayProcess, TrackedPublisher, count_readings, service_missing, wait_until
from tests.sync_helpers import Feeder, readings, sync_yaml
from tests.sync_servers import InfluxDB1, ServerMissing, VictoriaMetrics, free_port


@pytest.fixture
def vm() -> Iterator[VictoriaMetrics]:
    try:
        v = VictoriaMetrics().start()
    except ServerMissing as exc:
        service_missing(str(exc))
        raise
    yield v
    v.close()


def vm_event_seqs(v: VictoriaMetrics, expected: int) -> list[int]:
    return sorted(int(val) for _, _, val in v.settled_samples("edge_incident_seq", expected))


def test_store_down_mid_stream_then_back(vm: VictoriaMetrics) -> None:
    f = Feeder(vm.url)
    s = f.sender()
    s.start()
    try:
        now = st.now_ms()
        for k in range(30):
            if k == 10:
                vm.stop()  # the central store goes away mid-stream
            if k == 22:
                vm.start()
            f.batch(readings(100, now + k * 200), incidents=1 + k % 2, now=now + k * 200)
            if k == 15:
                f.tick(now + k * 200)
                assert wait_until(lambda: sync_status(f.store.conn)["last_error"] is not None, 10)
            time.sleep(0.05)
        assert wait_until(lambda: f.outbox_rows() == 0, 30)
        assert vm.settled_points("edge_telemetry", 3000) == f.telemetry == 3000
        assert len(f.event_seqs()) == 45
        assert vm_event_seqs(vm, 45) == sorted(f.event_seqs())  # none missing, none collapsed
        assert vm.settled_points("edge_health", 1) == 1
        status = sync_status(f.store.conn)
        # 3000 readings, 45 incident events, 1 health point, and the tick's 6 district snapshot points
        # (docs/sync.md "District points": 1 edge_open, 1 edge_parking, 3 edge_devices, 1 gateway_health)
        assert status["backlog_points"] == 0 and status["last_error"] is None and status["sent"] == 3046 + 6
    finally:
        s.stop()
        f.close()


def test_influxdb1_malformed_point_dead_lettered_and_field_types() -> None:
    try:
        influx = InfluxDB1().start()
    except ServerMissing as exc:
        service_missing(str(exc))
        raise
    try:
        influx.query("CREATE DATABASE community")
        f = Feeder(influx.url, target="v1", database="community")
        try:
            now = st.now_ms()
            f.batch(readings(300, now), incidents=3, now=now)
            # A device that sends a field once as a string and once as a number: field type conflict.
            f.batch([("acc-b2", {"mode": 1.5}, now + 1000)])
            f.batch([("acc-b2", {"mode": "auto"}, now + 1001)])
            # And one unparsable line (as a corrupted row would be).
            c = f.store.conn
            c.execute("BEGIN IMMEDIATE")
            from cloud_sync.outbox import PRIO_TELEMETRY, append_to_outbox, next_id

            append_to_outbox(c, PRIO_TELEMETRY, [(next_id(c), "edge_telemetry,device=x battery= 1")], now)
            c.execute("COMMIT")
            f.proc._next = None
            f.batch(readings(50, now + 2000))
            s = f.sender()
            s.flush = True
            s.start()
            try:
                assert wait_until(lambda: f.outbox_rows() == 0, 30)
            finally:
                s.stop()
            rows = influx.rows("SELECT * FROM edge_telemetry", "community")
            assert len(rows) == 300 + 1 + 50
            r0 = next(r for r in rows if r["note"] == "n1")
            assert r0["battery"] == 51 and r0["contact"] is True and r0["rssi"] == -60.5
            assert isinstance(r0["battery"], int | float) and r0["device"] == "park-01"
            assert r0["time"] % 1_000_000 != 0  # ns precision kept
            events = influx.rows("SELECT * FROM edge_incident", "community")
            assert sorted(e["seq"] for e in events) == sorted(f.event_seqs())
            assert all(e["category"] == "security" and e["building"] == "b1" for e in events)
            assert isinstance(events[0]["incident_id"], str) and events[0]["n"] == 1
            dead = f.q("SELECT detail, payload_excerpt FROM dead_letters WHERE reason='sync_rejected'")
            assert len(dead) == 2
            assert any("unable to parse" in d for d, _ in dead)
            assert any("field type conflict" in d and b'mode="auto"' in p for d, p in dead)
        finally:
            f.close()
    finally:
        influx.close()


def test_influxdb1_401_keeps_data() -> None:
    try:
        influx = InfluxDB1(auth=True).start()
    except ServerMissing as exc:
        service_missing(str(exc))
        raise
    try:
        influx.query("CREATE USER admin WITH PASSWORD 'pw' WITH ALL PRIVILEGES")
        influx.query("CREATE DATABASE community", auth=("admin", "pw"))
        env = {"PW": "wrong"}
        f = Feeder(influx.url, env=env, target="v1", database="community", username="admin", password='"${PW}"')
        alarms: list[bool] = []
        s = f.sender(on_alarm=lambda k, active, d: alarms.append(active))
        try:
            f.batch(readings(100, st.now_ms()), incidents=1)
            s.flush = True
            s.start()
            assert wait_until(lambda: alarms == [True], 10)
            assert f.outbox_rows() == 101
            assert sync_status(f.store.conn)["last_status"] == 401
        finally:
            s.stop()
            f.close()
    finally:
        influx.close()


DEVICES = [
    (f"door-{i}", "zigbee2mqtt", f"0x00158d00000{i:05x}", f"b1/door{i}", "door_contact", "location: {building: b1}")
    for i in range(10)
] + [(f"acc-{i}", "native", f"acc-{i}", None, "access_controller", "location: {building: b2}") for i in range(10)]


def test_gateway_kill9_mid_drain_then_restart(vm: VictoriaMetrics) -> None:
    with tempfile.TemporaryDirectory(prefix="edge-broker-") as bdir:
        try:
            broker = Mosquitto(Path(bdir)).start()
        except RuntimeError as exc:
            service_missing(f"mosquitto executable ({exc})")
            raise
        try:
            _kill9(vm, broker.port, Path(bdir))
        finally:
            broker.stop()


def _kill9(vm: VictoriaMetrics, mqtt_port: int, work: Path) -> None:
    down_url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the backlog builds up
    cfg_path = write_site(work, mqtt_port, devices=DEVICES)
    base = cfg_path.read_text()
    cfg_path.write_text(base + sync_yaml(down_url, batch_size=100, backoff_max_s=0.3))
    db = work / "gateway.db"
    n = 4000
    cfg = load_config(cfg_path)
    devs = traffic.sim_devices(cfg)
    rng = random.Random(7)
    messages = [traffic.telemetry(rng.choice(devs), rng) for _ in range(n)]
    gw = GatewayProcess(cfg_path, db, work, free_port()).start()
    pub = TrackedPublisher("127.0.0.1", mqtt_port)
    try:
        pub.publish_all(messages)
        assert wait_until(lambda: count_readings(db) >= n, 60)
        gw.stop()
        f_rows = _outbox_reader(db)
        total = f_rows()
        assert total >= n
        # Now the store is up: drain (small batches, so it takes a while), kill -9 in the middle of it.
        cfg_path.write_text(base + sync_yaml(vm.url, batch_size=20, backoff_max_s=0.3))
        gw = GatewayProcess(cfg_path, db, work, free_port()).start()
        assert wait_until(lambda: f_rows() < total, 30, interval=0.005)
        gw.kill9()
        left = f_rows()
        assert 0 < left < total
        gw = GatewayProcess(cfg_path, db, work, free_port()).start()
        assert wait_until(lambda: f_rows() == 0, 60)
        gw.stop()
    finally:
        pub.close()
        gw.stop()
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        stored = conn.execute("SELECT count(*) FROM readings WHERE kind != 'bridge' AND flags & 4 = 0").fetchone()[0]
        seqs = sorted(r[0] for r in conn.execute("SELECT seq FROM incident_events"))
    finally:
        conn.close()
    assert stored >= n
    assert vm.settled_points("edge_telemetry", stored) == stored
    assert vm_event_seqs(vm, len(seqs)) == seqs


def _outbox_reader(db: Path):  # type: ignore[no-untyped-def]
    import sqlite3

    def rows() -> int:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            # unsent telemetry (accepted rows wait in outbox_sent ranges for the sender's clean-up)
            return int(conn.execute("SELECT rows FROM outbox_totals WHERE prio=2").fetchone()[0])
        finally:
            conn.close()

    return rows
