"""Hostile and unexpected input through the real broker: counted, dead-lettered, never a stall."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from edge_config import load_config
from gateway.app import Gateway
from gateway.core.store import Quota
from gateway.install.mosquitto import Mosquitto
from tests.conftest import MINI_DEVICES, write_site
from tests.support import count_readings, wait_until

FOREIGN = (
    "door-other-gw",
    "zigbee2mqtt",
    "0x00158d00000000ff",
    "b2/door-x",
    "door_contact",
    "location: {building: b2}\n    gateway: gw-other",
)


@pytest.fixture
def running(tmp_path: Path, private_broker: Mosquitto) -> Iterator[tuple[Gateway, Mosquitto]]:
    site = write_site(tmp_path, private_broker.port, devices=[*MINI_DEVICES, FOREIGN])
    gw = Gateway(load_config(site))
    gw.start()
    assert wait_until(lambda: gw.broker_connected, 10)
    yield gw, private_broker
    gw.stop()


def pub(broker: Mosquitto, topic: str, payload: bytes | str, retain: bool = False) -> None:
    publish.single(topic, payload, qos=1, retain=retain, hostname="127.0.0.1", port=broker.port)


def q(gw: Gateway, sql: str, *args: object) -> list[tuple]:  # type: ignore[type-arg]
    conn = sqlite3.connect(gw.store_path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


BAD = [
    ("zigbee2mqtt/b1/door", b"{not json", "malformed_json"),
    ("zigbee2mqtt/b1/door", b'{"contact": "maybe"}', "wrong_type"),
    ("zigbee2mqtt/b1/door", b"[" * 60_000, "too_deep"),  # under the 64 KiB size limit
    ("zigbee2mqtt/b1/door", b"\xff\xfe\x00\x01binary", "binary"),
    ("zigbee2mqtt/b1/door", b'{"battery": 250}', "bad_value"),
    ("zigbee2mqtt/b1/door", b"x" * 70_000, "oversized"),
    ("edge/v1/devices/fall-r1/state", b'{"values": {"presence": null}}', "wrong_type"),
    ("edge/v1/devices/fall-r1/state", b'{"ts": 1}', "missing_field"),
    (
        "application/app/device/70b3d57ed0000001/event/up",
        b'{"deviceInfo": {"devEui": "70b3d57ed0000001"}, "fPort": 2, "data": "!!notbase64"}',
        "bad_value",
    ),
]


def test_every_bad_input_class_is_dead_lettered_and_ingest_goes_on(running: tuple[Gateway, Mosquitto]) -> None:
    gw, broker = running
    for topic, payload, _ in BAD:
        pub(broker, topic, payload)
    # numbers sent as strings are accepted, not dead-lettered
    pub(broker, "zigbee2mqtt/b1/door", b'{"contact": "false", "battery": "87"}')
    assert wait_until(lambda: len(q(gw, "SELECT 1 FROM dead_letters")) >= len(BAD), 10)
    assert wait_until(lambda: count_readings(gw.store_path) >= 1, 10)
    reasons = sorted(r for (r,) in q(gw, "SELECT reason FROM dead_letters"))
    assert reasons == sorted(r for *_, r in BAD)
    topic, length, excerpt = q(
        gw, "SELECT topic, payload_len, payload_excerpt FROM dead_letters WHERE reason='oversized'"
    )[0]
    assert topic == "zigbee2mqtt/b1/door" and length == 70_000 and len(excerpt) == 256
    # counters are written once a second
    assert wait_until(lambda: q(gw, "SELECT value FROM counters WHERE name='dead_letters.wrong_type'") == [(2,)], 5)
    counters = dict(q(gw, "SELECT name, value FROM counters WHERE name LIKE 'dead_letters.%'"))
    assert counters["dead_letters.malformed_json"] == 1
    (vals,) = q(gw, "SELECT vals FROM readings WHERE device_id='door-b1'")[0]
    assert json.loads(vals) == {"contact": False, "battery": 87}
    # still alive: an SOS right after is stored
    pub(broker, "zigbee2mqtt/b1/u1/sos", json.dumps({"action": "emergency"}))
    assert wait_until(lambda: q(gw, "SELECT 1 FROM readings WHERE device_id='sos-r1'") != [], 10)


def test_unknown_devices_are_listed_for_adoption_and_foreign_ones_ignored(running: tuple[Gateway, Mosquitto]) -> None:
    gw, broker = running
    pub(broker, "zigbee2mqtt/new-sensor", json.dumps({"contact": True, "battery": 90}))
    pub(broker, "zigbee2mqtt/new-sensor", json.dumps({"contact": False, "battery": 90}))
    pub(broker, "edge/v1/devices/mystery-1/state", json.dumps({"values": {"presence": True}}))
    pub(broker, "zigbee2mqtt/b2/door-x", json.dumps({"contact": True}))  # another gateway's device
    assert wait_until(lambda: len(q(gw, "SELECT 1 FROM unconfigured")) == 2, 10)
    rows = dict(
        (addr, (count, topic)) for addr, count, topic in q(gw, "SELECT address, count, last_topic FROM unconfigured")
    )
    assert rows["name:new-sensor"] == (2, "zigbee2mqtt/new-sensor")
    assert rows["mystery-1"][0] == 1
    assert wait_until(lambda: q(gw, "SELECT value FROM counters WHERE name='foreign_device_messages'") == [(1,)], 10)
    assert count_readings(gw.store_path) == 0


def test_zigbee_devices_are_keyed_by_ieee_address_not_friendly_name(running: tuple[Gateway, Mosquitto]) -> None:
    """An installer renames a device in Zigbee2MQTT: the bridge's device list maps the new name."""
    gw, broker = running
    devices = [{"ieee_address": "0x00158d0000000002", "friendly_name": "renamed/door", "type": "EndDevice"}]
    pub(broker, "zigbee2mqtt/bridge/devices", json.dumps(devices), retain=True)
    assert wait_until(lambda: q(gw, "SELECT address FROM aliases WHERE alias='renamed/door'") != [], 10)
    pub(broker, "zigbee2mqtt/renamed/door", json.dumps({"contact": False}))
    assert wait_until(lambda: q(gw, "SELECT 1 FROM readings WHERE device_id='door-b1'") != [], 10)
    assert q(gw, "SELECT count(*) FROM unconfigured") == [(0,)]


def test_availability_both_formats_and_bridge_state(running: tuple[Gateway, Mosquitto]) -> None:
    gw, broker = running
    pub(broker, "zigbee2mqtt/b1/door/availability", "offline")  # legacy string
    assert wait_until(lambda: q(gw, "SELECT online FROM devices WHERE device_id='door-b1'") == [(0,)], 10)
    pub(broker, "zigbee2mqtt/b1/door/availability", json.dumps({"state": "online"}))
    assert wait_until(lambda: q(gw, "SELECT online FROM devices WHERE device_id='door-b1'") == [(1,)], 10)
    pub(broker, "zigbee2mqtt/bridge/state", json.dumps({"state": "offline"}))
    assert wait_until(
        lambda: q(gw, "SELECT online, online_reason FROM devices WHERE device_id LIKE 'bridge:%'") == [(0, "bridge")],
        10,
    )


def test_life_safety_messages_use_their_own_session(running: tuple[Gateway, Mosquitto]) -> None:
    gw, broker = running
    assert set(gw.sessions) == {0, 1}
    assert "zigbee2mqtt/b1/u1/sos" in gw.sessions[1].filters
    pub(broker, "zigbee2mqtt/b1/u1/sos", json.dumps({"action": "emergency"}))
    pub(broker, "edge/v1/devices/fall-r1/event", json.dumps({"event": "fall"}))
    assert wait_until(lambda: len(q(gw, "SELECT 1 FROM readings")) >= 2, 10)
    assert wait_until(lambda: q(gw, "SELECT value FROM counters WHERE name='left_to_safety_session'") == [(2,)], 10)
    rows = q(gw, "SELECT device_id, flags & 2 FROM readings ORDER BY id")
    assert sorted(rows) == [("fall-r1", 2), ("sos-r1", 2)], "stored once each, by the life-safety session"


def test_an_oversized_life_safety_message_is_one_dead_letter(running: tuple[Gateway, Mosquitto]) -> None:
    """Both sessions receive an SOS topic; only the life-safety one may judge the message."""
    gw, broker = running
    pub(broker, "zigbee2mqtt/b1/u1/sos", b"x" * 70_000)
    # The telemetry session handles its messages in order: once this is stored, its copy of the
    # SOS message has been through the pipeline too.
    pub(broker, "zigbee2mqtt/b1/door", json.dumps({"contact": True}))
    assert wait_until(lambda: q(gw, "SELECT 1 FROM readings WHERE device_id='door-b1'") != [], 10)
    assert wait_until(lambda: q(gw, "SELECT value FROM counters WHERE name='messages.zigbee2mqtt'") == [(1,)], 5)
    assert q(gw, "SELECT topic, reason FROM dead_letters") == [("zigbee2mqtt/b1/u1/sos", "oversized")]
    assert q(gw, "SELECT value FROM counters WHERE name='dead_letters.oversized'") == [(1,)]
    assert q(gw, "SELECT value FROM counters WHERE name='left_to_safety_session'") == [(1,)]


def test_sos_does_not_wait_behind_a_telemetry_backlog(tmp_path: Path, private_broker: Mosquitto) -> None:
    """20,000 telemetry messages queue at the broker while the gateway is down, then one SOS."""
    site = write_site(tmp_path, private_broker.port)
    cfg = load_config(site)
    gw = Gateway(cfg)
    gw.start()
    assert wait_until(lambda: gw.broker_connected, 10)
    gw.stop()  # persistent sessions now queue at the broker
    msgs = [
        {"topic": "zigbee2mqtt/b1/door", "payload": json.dumps({"contact": i % 2 == 0, "battery": 80}), "qos": 1}
        for i in range(20_000)
    ]
    publish.multiple(msgs, hostname="127.0.0.1", port=private_broker.port)
    pub(private_broker, "zigbee2mqtt/b1/u1/sos", json.dumps({"action": "emergency"}))
    gw = Gateway(cfg)
    gw.start()
    try:
        assert wait_until(lambda: q(gw, "SELECT id FROM readings WHERE device_id='sos-r1'") != [], 30)
        (sos_id,) = q(gw, "SELECT id FROM readings WHERE device_id='sos-r1'")[0]
        assert sos_id < 10_000, f"SOS committed only after {sos_id - 1} telemetry rows"
        assert wait_until(lambda: count_readings(gw.store_path) >= 20_001, 60)
    finally:
        gw.stop()


def test_store_full_keeps_room_for_life_safety_and_stops_acknowledging(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    site = write_site(tmp_path, private_broker.port)
    # A tiny quota so the test fills it quickly: 2 MiB, of which 1 MiB reserved for life safety.
    gw = Gateway(load_config(site), quota=Quota(2 * 1024 * 1024, 1024 * 1024))
    gw.start()
    try:
        assert wait_until(lambda: gw.broker_connected, 10)
        filler = [
            {
                "topic": "zigbee2mqtt/b1/door",
                "payload": json.dumps({"contact": True, "battery": 80, "linkquality": i % 255}),
                "qos": 1,
            }
            for i in range(15_000)
        ]
        publish.multiple(filler, hostname="127.0.0.1", port=private_broker.port)
        assert wait_until(lambda: gw.pipeline.store_full, 30), "telemetry should hit the soft quota"
        stored_before = count_readings(gw.store_path)
        assert stored_before < 15_000
        pub(private_broker, "zigbee2mqtt/b1/u1/sos", json.dumps({"action": "emergency"}))
        assert wait_until(lambda: q(gw, "SELECT 1 FROM readings WHERE device_id='sos-r1'") != [], 10)
        events = q(gw, "SELECT kind, severity FROM gateway_events")
        assert ("store_full", "critical") in events
        assert not gw.health()["store_writable"]
    finally:
        gw.stop()
    # What was not stored was not acknowledged: the broker still holds it for the next start.
    gw2 = Gateway(load_config(site))
    gw2.start()
    try:
        assert wait_until(lambda: count_readings(gw2.store_path) >= 15_001, 60), "the broker kept the rest"
    finally:
        gw2.stop()


def test_broker_drop_counter_becomes_a_device_health_event(tmp_path: Path, broker_dir: Path) -> None:
    # A broker with the stock queue limit (1000) drops what a persistent subscriber cannot take.
    broker = Mosquitto(broker_dir, extra="max_queued_messages 100\nsys_interval 1\n").start()
    try:
        site = write_site(tmp_path, broker.port)
        cfg = load_config(site)
        gw = Gateway(cfg)
        gw.start()
        assert wait_until(lambda: gw.broker_connected, 10)
        gw.stop()
        msgs = [
            {"topic": "zigbee2mqtt/b1/door", "payload": json.dumps({"contact": True, "battery": i % 100}), "qos": 1}
            for i in range(600)
        ]
        publish.multiple(msgs, hostname="127.0.0.1", port=broker.port)
        gw = Gateway(cfg)
        gw.start()
        try:
            assert wait_until(lambda: q(gw, "SELECT kind FROM gateway_events WHERE kind='broker_dropped'") != [], 20)
            (detail,) = q(gw, "SELECT detail FROM gateway_events WHERE kind='broker_dropped'")[0]
            assert json.loads(detail)["dropped"] >= 400
        finally:
            gw.stop()
    finally:
        broker.stop()
