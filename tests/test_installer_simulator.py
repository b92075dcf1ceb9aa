"""The simulator: every device's traffic in its real format, and each scenario's incidents through
a real in-process Gateway and a private Mosquitto (issue 8)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from edge_config import load_config
from gateway.app import Gateway
from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from gateway.install.scenarios import SCENARIOS, plan
from gateway.install.simulator import Simulator, day_factor
from tests.installer_helpers import SCENARIO_DEVICES, site
from tests.support import wait_until


def _rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_day_night_pattern() -> None:
    assert day_factor(3) < 0.2 < day_factor(12) < day_factor(8)


def test_scenarios_plan_on_distinct_devices(tmp_path: Path) -> None:
    cfg = load_config(site(tmp_path, 1883, devices=SCENARIO_DEVICES))
    planned = plan(cfg, list(SCENARIOS), __import__("random").Random(1))
    assert [p.name for p in planned] == list(SCENARIOS)
    used = [d for p in planned if p.name != "sos" for d in p.devices]
    assert len(used) == len(set(used))
    power = next(p for p in planned if p.name == "power_loss")
    assert set(power.devices) == {"acc-b2"} | {d[0] for d in SCENARIO_DEVICES if d[0].startswith("b2-")}


def test_simulator_traffic_and_scenarios_raise_incidents(tmp_path: Path, private_broker: Mosquitto) -> None:
    extra = "device_types:\n  door_contact: {door_open_max_s: 3}\n  parking_sensor: {fire_lane_max_min: 1}\n"
    cfg = load_config(site(tmp_path, private_broker.port, devices=SCENARIO_DEVICES, extra=extra))
    gw = Gateway(cfg)
    gw.start()
    try:
        assert wait_until(lambda: gw.broker_connected, 15)
        sim = Simulator(
            cfg,
            "127.0.0.1",
            private_broker.port,
            rate=40,
            scenarios=["sos", "fire_lane", "door_propped", "fall_night", "power_loss"],
            scenario_at=[1.0, 1.5, 2.0, 2.5, 3.0],
        )
        stats = sim.run(8.0)
        assert stats.failed == 0 and stats.acked == stats.published
        assert sorted(stats.scenarios_done) == sorted(["sos", "fire_lane", "door_propped", "fall_night", "power_loss"])
        assert {"zigbee2mqtt", "chirpstack", "native"} <= set(stats.by_format)
        # The fire lane needs a car for fire_lane_max_min (1 min at least): let the gateway's clock
        # run 65 s ahead (below rules.clock_step_s, so it is time passing, not a clock step).
        real = gw.pipeline.clock
        gw.pipeline.clock = lambda: real() + 65_000
        db = gw.store_path

        def types() -> set[str]:
            return {t for (t,) in _rows(db, "SELECT type FROM incidents")}

        expected = {"sos", "fall", "door_held_open", "parking_fire_lane", "building_offline"}
        assert wait_until(lambda: expected <= types(), 20), types()
        seen = {d for (d,) in _rows(db, "SELECT device_id FROM devices WHERE last_seen_ms IS NOT NULL")}
        assert {d[0] for d in SCENARIO_DEVICES} <= seen  # every device reported (or its availability)
        dead = _rows(db, "SELECT reason, topic FROM dead_letters")
        assert dead == []
        assert _rows(db, "SELECT count(*) FROM unconfigured") == [(0,)]
    finally:
        gw.stop()


def test_frigate_zone_events_decode() -> None:
    from drivers import DRIVERS

    dev = traffic.SimDevice("cam-fire", "frigate", "lot_cam/fire_lane_1", None, "parking_sensor")
    import random

    topic, payload = traffic.frigate_zone_state(dev, True, random.Random(1))
    readings = DRIVERS["frigate"].decode(topic, payload)
    assert [(r.device, r.values) for r in readings] == [("lot_cam/fire_lane_1", {"vehicle_present": True})]
    topic, payload = traffic.frigate_zone_state(dev, False, random.Random(1))
    assert [r.values for r in DRIVERS["frigate"].decode(topic, payload)] == [{"vehicle_present": False}]


def test_simulate_cli_progress(tmp_path: Path, private_broker: Mosquitto) -> None:
    import subprocess
    import sys

    from tests.support import ROOT

    cfg = site(tmp_path, private_broker.port)
    t0 = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "simulate",
            "--config",
            str(cfg),
            "--rate",
            "30",
            "--duration",
            "3",
            "--scenario",
            "sos",
            "--scenario-delay",
            "0.5",
            "--progress-s",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "[simulate" in out.stderr and "scenarios done: sos" in out.stderr
    assert time.monotonic() - t0 < 30
