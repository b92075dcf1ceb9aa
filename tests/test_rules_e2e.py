"""A representative subset of the scenarios end to end: real Mosquitto, real MQTT sessions,
gateway.app.Gateway (in-process) and `python -m gateway run` (subprocess, killed and restarted)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from edge_config import load_config
from gateway.app import Gateway
from gateway.core import incidents as inc
from gateway.core.contract import BatchResult, IncidentEvent
from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from tests.rules_harness import write_rules_site
from tests.support import GatewayProcess, TrackedPublisher, wait_until

pytestmark = pytest.mark.broker


def read_incidents(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return inc.all_incidents(conn)
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def test_alarms_through_the_real_broker(tmp_path: Path, private_broker: Mosquitto) -> None:
    cfg = load_config(write_rules_site(tmp_path, private_broker.port))
    sim = {d.id: d for d in traffic.sim_devices(cfg)}
    db = tmp_path / "gateway.db"
    gw = Gateway(cfg, store_path=db)
    seen: list[IncidentEvent] = []
    gw.add_listener(lambda r: seen.extend(r.incident_events) if isinstance(r, BatchResult) else None)
    gw.start()
    pub = TrackedPublisher("127.0.0.1", private_broker.port, "e2e-rules")
    try:
        assert wait_until(lambda: gw.broker_connected, 15)
        msgs = [
            traffic.sos_press(sim["sos-r1"]),
            traffic.sos_press(sim["sos-r1"]),
            traffic.state(sim["smoke-b1"], {"smoke": True, "battery": 90}),
            traffic.event(sim["acc-b2"], "door_forced"),
            *(traffic.state(sim["wear-r1"], {"heart_rate": 150}) for _ in range(3)),
            ("zigbee2mqtt/bridge/state", json.dumps({"state": "offline"}).encode()),
            traffic.state(sim["door-b1"], {"contact": True, "battery": 80}),  # ordinary: nothing
        ]
        pub.publish_all(msgs)

        def done() -> bool:
            got = read_incidents(db)
            return len(got) == 5 and any(i["type"] == "sos" and i["count"] == 2 for i in got)

        assert wait_until(done, 20), read_incidents(db)
        got = {i["type"]: i for i in read_incidents(db)}
        assert set(got) == {"sos", "smoke", "door_forced", "heart_rate_abnormal", "bridge_offline"}
        assert got["sos"]["severity"] == "critical" and got["sos"]["resident_id"] == "r1"
        assert wait_until(lambda: len([e for e in seen if e.kind == "created"]) == 5, 10)
    finally:
        pub.close()
        gw.stop()


def test_door_timer_survives_kill9_of_the_gateway_process(
    tmp_path: Path, private_broker: Mosquitto, api_port: int
) -> None:
    path = write_rules_site(tmp_path, private_broker.port)
    text = path.read_text(encoding="utf-8").replace(
        "  clear_hold_s: 30\n", "  clear_hold_s: 30\n  startup_grace_s: 1\n"
    )
    text += "device_types:\n  door_contact: {door_open_max_s: 4}\n"
    path.write_text(text, encoding="utf-8")
    cfg = load_config(path)
    sim = {d.id: d for d in traffic.sim_devices(cfg)}
    db = tmp_path / "gateway.db"
    proc = GatewayProcess(path, db, tmp_path, api_port).start()
    pub = TrackedPublisher("127.0.0.1", private_broker.port, "e2e-restart")
    try:
        time.sleep(0.5)  # sessions subscribe right after the API is up
        opened = time.time()
        pub.publish_all([traffic.state(sim["door-b1"], {"contact": False})])
        assert wait_until(lambda: _timer_armed(db), 10)
        proc.kill9()
        assert read_incidents(db) == []
        proc = GatewayProcess(path, db, tmp_path, api_port).start()
        assert wait_until(lambda: len(read_incidents(db)) == 1, 20), read_incidents(db)
        [i] = read_incidents(db)
        assert i["type"] == "door_held_open"
        # raised for the original opening time + 4 s, not 4 s after the restart
        assert abs(i["first_ms"] - (opened * 1000 + 4000)) < 1500
    finally:
        pub.close()
        proc.stop()


def _timer_armed(db: Path) -> bool:
    if not db.exists():
        return False
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT count(*) FROM timers WHERE key='door|door-b1'").fetchone()[0] == 1
    except sqlite3.Error:
        return False
    finally:
        conn.close()
