"""Frigate through the real broker into a running gateway: the object-count topics set a zone's
occupancy, a 0.14+ review with a person raises the intrusion of an armed zone, and Frigate's other
topics under the driver's default filters are neither stored nor dead-lettered."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.publish as publish
import pytest

from drivers import DRIVERS
from edge_config import load_config
from gateway.app import Gateway
from gateway.install.mosquitto import Mosquitto
from tests.conftest import MINI_DEVICES, write_site
from tests.support import wait_until

pytestmark = pytest.mark.broker

PAYLOADS = Path(__file__).parent / "payloads" / "frigate"
FRIGATE_DEVICES = [
    ("frig-nopark", "frigate", "nopark_1", None, "parking_sensor", "location: {parking_space: nopark1}"),
    ("frig-backdoor", "frigate", "back_door/restricted", None, "camera", "location: {area: 后门}"),
]


@pytest.fixture
def gw(private_broker: Mosquitto, tmp_path: Path) -> Iterator[Gateway]:
    site = write_site(tmp_path, private_broker.port, devices=MINI_DEVICES + FRIGATE_DEVICES)
    text = site.read_text("utf-8")
    sources = "\n".join(
        f"    - {{driver: {name}, topics: {json.dumps(list(spec.default_topics))}}}" for name, spec in DRIVERS.items()
    )
    text = text.replace("ingest:\n", f"ingest:\n  sources:\n{sources}\n", 1)
    text += """rules:
  startup_grace_s: 0
  intrusion_zones:
    - id: backdoor
      name: 后门
      devices: [frig-backdoor]
      armed: [{start: "00:00", end: "00:00"}]
"""
    site.write_text(text, "utf-8")
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


def test_zone_counts_set_and_clear_a_spaces_vehicle_present(gw: Gateway, private_broker: Mosquitto) -> None:
    def present() -> list[tuple[Any, ...]]:
        return q(gw, "SELECT json_extract(last_values, '$.vehicle_present') FROM devices WHERE device_id='frig-nopark'")

    send(private_broker, "frigate/nopark_1/car", (PAYLOADS / "count_zone_car.txt").read_bytes())
    assert wait_until(lambda: present() == [(1,)], 10)
    send(private_broker, "frigate/nopark_1/car", (PAYLOADS / "count_zone_car_zero.txt").read_bytes())
    assert wait_until(lambda: present() == [(0,)], 10)
    rows = q(gw, "SELECT kind, vals FROM readings WHERE device_id='frig-nopark' ORDER BY id")
    assert [(k, json.loads(v)) for k, v in rows] == [
        ("state", {"vehicle_present": True}),
        ("state", {"vehicle_present": False}),
    ]


def test_review_with_a_person_raises_the_armed_zones_intrusion(gw: Gateway, private_broker: Mosquitto) -> None:
    send(private_broker, "frigate/reviews", (PAYLOADS / "review_new_person_restricted.json").read_bytes())
    assert wait_until(lambda: q(gw, "SELECT 1 FROM incidents WHERE type='intrusion'") != [], 10)
    [(category, devices)] = q(gw, "SELECT category, devices FROM incidents WHERE type='intrusion'")
    assert category == "security" and json.loads(devices) == ["frig-backdoor"]
    # the review's other zone is not configured: listed for the installer, not lost
    assert wait_until(lambda: q(gw, "SELECT driver, address FROM unconfigured") != [], 10)
    assert q(gw, "SELECT driver, address FROM unconfigured") == [("frigate", "back_door/stairwell")]
    # the review's end changes nothing: an EVENT set no state to undo
    send(private_broker, "frigate/reviews", (PAYLOADS / "review_end_person.json").read_bytes())
    assert wait_until(lambda: gw.pipeline.committed_total >= 2, 10)
    assert q(gw, "SELECT count(*) FROM readings WHERE device_id='frig-backdoor'") == [(1,)]


def test_other_frigate_messages_are_neither_stored_nor_dead_lettered(gw: Gateway, private_broker: Mosquitto) -> None:
    # a review of a car (parking state comes from counts and events) and a camera's own count
    # (the camera is not a configured device: listed as seen, not configured)
    send(private_broker, "frigate/reviews", (PAYLOADS / "review_new_car_detection.json").read_bytes())
    send(private_broker, "frigate/lot_cam/person", b"1")
    assert wait_until(lambda: q(gw, "SELECT address FROM unconfigured") == [("lot_cam",)], 10)
    assert wait_until(lambda: gw.pipeline.committed_total >= 2, 10)
    assert q(gw, "SELECT name, value FROM counters WHERE name='messages.frigate'") == [("messages.frigate", 2)]
    assert q(gw, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert q(gw, "SELECT count(*) FROM readings") == [(0,)]
