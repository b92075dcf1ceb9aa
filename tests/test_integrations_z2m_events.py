"""Zigbee2MQTT's bridge/event through the real broker: a new sensor is in the 'seen, not configured'
list the moment it pairs (with what its interview learned, one row with its later reports, ready
for adoption), and a configured device's health follows it leaving and rejoining the network."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.publish as publish
import pytest

from edge_config import load_config
from gateway.app import Gateway
from gateway.install.adopt import from_store
from gateway.install.mosquitto import Mosquitto
from tests.conftest import write_site
from tests.support import wait_until

pytestmark = pytest.mark.broker

PAYLOADS = Path(__file__).parent / "payloads" / "zigbee2mqtt"
EVENT_TOPIC = "zigbee2mqtt/bridge/event"
NEW = "0x90fd9ffffe6494fc"  # the published samples' device
DOOR = "0x00158d0000000002"  # door-b1 in tests/conftest.py


@pytest.fixture
def gw(private_broker: Mosquitto, tmp_path: Path) -> Iterator[Gateway]:
    site = write_site(tmp_path, private_broker.port)
    site.write_text(site.read_text("utf-8") + "rules:\n  startup_grace_s: 0\n  offline_hold_s: 0\n", "utf-8")
    g = Gateway(load_config(site), store_path=tmp_path / "gateway.db")
    g.start()
    assert wait_until(lambda: g.broker_connected, 15)
    yield g
    g.stop()


def q(gw: Gateway, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{gw.store_path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def send(broker: Mosquitto, topic: str, payload: bytes) -> None:
    publish.single(topic, payload, qos=1, port=broker.port)


def sample(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def seen(gw: Gateway) -> dict[str, Any]:
    rows = q(gw, "SELECT address, count, sample FROM unconfigured WHERE driver='zigbee2mqtt'")
    return {addr: (count, json.loads(s)) for addr, count, s in rows}


def test_a_new_sensor_is_listed_the_moment_it_pairs(gw: Gateway, private_broker: Mosquitto) -> None:
    send(private_broker, EVENT_TOPIC, sample("bridge_event_device_joined.json"))
    assert wait_until(lambda: NEW in seen(gw), 10)
    assert seen(gw)[NEW] == (1, {"network": "joined", "friendly_name": NEW})

    send(private_broker, EVENT_TOPIC, sample("bridge_event_device_interview_started.json"))
    send(private_broker, EVENT_TOPIC, sample("bridge_event_device_interview_successful.json"))
    assert wait_until(lambda: seen(gw)[NEW][1]["network"] == "interviewed", 10)
    # its first report comes by friendly name (Zigbee2MQTT names a new device by its IEEE address):
    # the same row, the interview's facts kept next to the values
    send(private_broker, f"zigbee2mqtt/{NEW}", json.dumps({"occupancy": True, "battery": 91}).encode())
    assert wait_until(lambda: seen(gw)[NEW][0] == 4, 10)
    assert list(seen(gw)) == [NEW]
    assert seen(gw)[NEW][1] == {
        "network": "interviewed",
        "friendly_name": NEW,
        "supported": True,
        "model": "LED1624G9",
        "vendor": "IKEA",
        "description": "TRADFRI LED bulb E14/E26/E27 600 lumen, dimmable, color, opal white",
        "occupancy": True,
        "battery": 91,
    }
    # what the installer's adoption reads
    row = from_store(gw.store_path, NEW)
    assert (row["driver"], row["address"], row["friendly_name"], row["count"]) == ("zigbee2mqtt", NEW, NEW, 4)
    assert q(gw, "SELECT count(*) FROM dead_letters") == [(0,)]


def test_a_configured_device_leaving_and_rejoining(gw: Gateway, private_broker: Mosquitto) -> None:
    def door() -> list[tuple[Any, ...]]:
        return q(gw, "SELECT online, online_reason FROM devices WHERE device_id='door-b1'")

    leave = json.dumps({"type": "device_leave", "data": {"ieee_address": DOOR, "friendly_name": "b1/door"}})
    send(private_broker, EVENT_TOPIC, leave.encode())
    assert wait_until(lambda: door() == [(0, "left_network")], 10)
    # offline_hold_s 0: the offline rule raises the device's incident
    assert wait_until(lambda: q(gw, "SELECT 1 FROM incidents WHERE type='device_offline'") != [], 10)
    [(devices,)] = q(gw, "SELECT devices FROM incidents WHERE type='device_offline'")
    assert json.loads(devices) == ["door-b1"]

    joined = json.dumps({"type": "device_joined", "data": {"ieee_address": DOOR, "friendly_name": "b1/door"}})
    send(private_broker, EVENT_TOPIC, joined.encode())
    assert wait_until(lambda: door() == [(1, "joined")], 10)
    failed = {
        "type": "device_interview",
        "data": {"ieee_address": DOOR, "friendly_name": "b1/door", "status": "failed"},
    }
    send(private_broker, EVENT_TOPIC, json.dumps(failed).encode())
    assert wait_until(lambda: q(gw, "SELECT 1 FROM gateway_events WHERE kind='zigbee_interview_failed'") != [], 10)
    [(detail,)] = q(gw, "SELECT detail FROM gateway_events WHERE kind='zigbee_interview_failed'")
    assert json.loads(detail) == {"device_id": "door-b1", "driver": "zigbee2mqtt"}
    # the device's history shows each step; nothing of it is 'not configured'
    rows = q(gw, "SELECT kind, vals FROM readings WHERE device_id='door-b1' ORDER BY id")
    assert [(k, json.loads(v)["network"]) for k, v in rows] == [
        ("bridge", "left"),
        ("bridge", "joined"),
        ("bridge", "interview_failed"),
    ]
    assert seen(gw) == {}
