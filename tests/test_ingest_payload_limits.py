"""Per-topic payload limits (issue 23, item 12): Zigbee2MQTT's bridge/devices is large by nature.

A real ``bridge/devices`` carries every device's full definition (exposes, options, endpoints):
hundreds of KB on a network of a hundred or two devices. Under the 64 KiB device-topic limit it
was dead-lettered and the friendly-name map was lost; bridge topics now get their own limit.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from edge_config import ConfigError, load_config
from edge_config.schema import BULK_PAYLOAD_BYTES
from gateway.app import Gateway
from gateway.ingest.routing import build_routing
from gateway.install.mosquitto import Mosquitto
from tests.conftest import MINI_DEVICES, write_site
from tests.support import wait_until
from tests.z2m_bridge import bridge_devices, payload

DOOR_IEEE = "0x00158d0000000002"  # door-b1, configured with friendly name b1/door


def with_ingest(site: Path, ingest_yaml: str) -> Path:
    text = site.read_text(encoding="utf-8")
    assert "ingest:\n  max_payload_bytes: 65536\n" in text
    site.write_text(text.replace("ingest:\n  max_payload_bytes: 65536\n", ingest_yaml), encoding="utf-8")
    return site


def test_bridge_topics_get_a_large_limit_by_default_and_device_topics_stay_small(tmp_path: Path) -> None:
    cfg = load_config(write_site(tmp_path, 1883))
    assert [(lim.topics, lim.max_bytes) for lim in cfg.ingest.payload_limits] == [
        (["zigbee2mqtt/bridge/#"], BULK_PAYLOAD_BYTES)
    ]
    routing = build_routing(cfg)
    assert routing.payload_limit("zigbee2mqtt/bridge/devices") == 4 * 1024 * 1024
    assert routing.payload_limit("zigbee2mqtt/b1/door") == 65536
    assert routing.payload_limit("edge/v1/devices/fall-r1/state") == 65536


def test_default_follows_a_configured_base_topic_and_an_explicit_list_replaces_it(tmp_path: Path) -> None:
    site = with_ingest(
        write_site(tmp_path, 1883),
        "ingest:\n  max_payload_bytes: 8192\n  sources:\n    - {driver: zigbee2mqtt, topics: ['site1/z2m/#']}\n",
    )
    cfg = load_config(site)
    assert [lim.topics for lim in cfg.ingest.payload_limits] == [["site1/z2m/bridge/#"]]
    assert build_routing(cfg).payload_limit("site1/z2m/b1/door") == 8192

    site = with_ingest(
        write_site(tmp_path, 1883),
        "ingest:\n  max_payload_bytes: 8192\n  payload_limits:\n"
        "    - {topics: ['zigbee2mqtt/bridge/devices'], max_bytes: 2097152}\n"
        "    - {topics: ['zigbee2mqtt/bridge/#', 'edge/v1/devices/+/state'], max_bytes: 16384}\n",
    )
    routing = build_routing(load_config(site))
    assert routing.payload_limit("zigbee2mqtt/bridge/devices") == 2097152  # first match wins
    assert routing.payload_limit("zigbee2mqtt/bridge/groups") == 16384
    assert routing.payload_limit("edge/v1/devices/x/state") == 16384
    assert routing.payload_limit("zigbee2mqtt/b1/door") == 8192


@pytest.mark.parametrize(
    ("limits", "key"),
    [
        ("    - {topics: ['zigbee2mqtt/#/x'], max_bytes: 100000}\n", "topics"),
        ("    - {topics: [], max_bytes: 100000}\n", "topics"),
        ("    - {topics: ['zigbee2mqtt/bridge/#'], max_bytes: 10}\n", "max_bytes"),
        ("    - {topics: ['zigbee2mqtt/bridge/#'], max_bytes: 99999999}\n", "max_bytes"),
        ("    - {topics: ['zigbee2mqtt/bridge/#'], max_bytes: 100000, size: 3}\n", "size"),
    ],
)
def test_payload_limits_are_checked(tmp_path: Path, limits: str, key: str) -> None:
    site = with_ingest(write_site(tmp_path, 1883), "ingest:\n  payload_limits:\n" + limits)
    with pytest.raises(ConfigError) as exc:
        load_config(site)
    paths = [i.key_path for i in exc.value.issues]
    assert any(p.startswith("ingest.payload_limits[0]") and key in p for p in paths), paths


def test_a_real_sized_bridge_device_list_maps_friendly_names(tmp_path: Path, private_broker: Mosquitto) -> None:
    """200 devices in the published format, through the real broker; the door was renamed in
    Zigbee2MQTT, so only the device list says which configured device ``renamed/door`` is."""
    devices = bridge_devices({DOOR_IEEE: "renamed/door"}, total=200)
    body = payload(devices)
    assert len(body) > 4 * 65536, "a real 200-device list is hundreds of KB"
    site = write_site(tmp_path, private_broker.port, devices=MINI_DEVICES)
    gw = Gateway(load_config(site))
    gw.start()
    db = gw.store_path

    def q(sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(db) as conn:
            return conn.execute(sql).fetchall()

    try:
        assert wait_until(lambda: gw.broker_connected, 10)
        publish.single(
            "zigbee2mqtt/bridge/devices", body, qos=1, retain=True, hostname="127.0.0.1", port=private_broker.port
        )
        assert wait_until(lambda: q("SELECT count(*) FROM aliases")[0][0] >= len(devices), 20), q(
            "SELECT reason, detail FROM dead_letters"
        )
        publish.single(
            "zigbee2mqtt/renamed/door",
            json.dumps({"contact": False}),
            qos=1,
            hostname="127.0.0.1",
            port=private_broker.port,
        )
        assert wait_until(lambda: q("SELECT 1 FROM readings WHERE device_id='door-b1'") != [], 10)
        assert q("SELECT address FROM aliases WHERE alias='renamed/door'") == [(DOOR_IEEE,)]
        assert q("SELECT count(*) FROM dead_letters") == [(0,)]
        assert q("SELECT count(*) FROM unconfigured") == [(0,)]
        # A device topic keeps the small limit: the same size there is still dead-lettered.
        publish.single("zigbee2mqtt/renamed/door", body, qos=1, hostname="127.0.0.1", port=private_broker.port)
        assert wait_until(lambda: q("SELECT reason FROM dead_letters") == [("oversized",)], 10)
    finally:
        gw.stop()
