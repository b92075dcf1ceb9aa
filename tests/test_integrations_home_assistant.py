"""Home Assistant MQTT discovery against the real broker: configs in the published discovery schema,
states following the incidents, availability tied to the gateway's last will, republished on
Home Assistant's birth message and on every reconnect, trimmed by a reload and removed cleanly
(empty retained configs) when disabled."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import paho.mqtt.publish as publish
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_config import load_config
from gateway import __version__
from gateway.app import Gateway
from gateway.core import incidents as inc
from gateway.install.mosquitto import Mosquitto
from tests.conftest import write_site
from tests.support import wait_until

pytestmark = pytest.mark.broker

PREFIX = "homeassistant"
NODE = "gw-test"
STATES = "edge/gw-test/ha"
GATEWAY_STATUS = "edge/gw-test/status"

# Home Assistant's MQTT discovery schema (home-assistant.io/integrations/mqtt, binary_sensor.mqtt,
# sensor.mqtt): the keys an entity config may carry, and the device classes each platform knows.
ENTITY_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic", "device",
    "device_class", "enabled_by_default", "encoding", "entity_category", "entity_picture", "expire_after",
    "force_update", "icon", "json_attributes_template", "json_attributes_topic", "name", "default_entity_id",
    "off_delay", "origin", "payload_available", "payload_not_available", "payload_off", "payload_on",
    "platform", "qos", "state_topic", "unique_id", "value_template",
}  # fmt: skip
SENSOR_KEYS = {
    "last_reset_value_template",
    "options",
    "suggested_display_precision",
    "state_class",
    "unit_of_measurement",
}
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
    "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
BINARY_SENSOR_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas",
    "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power",
    "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
}  # fmt: skip
TOPIC = re.compile(r"^(?P<prefix>[^/]+)/(?P<component>binary_sensor|sensor)/(?:[a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config$")


def schema_problems(topic: str, cfg: dict[str, Any]) -> list[str]:
    m = TOPIC.match(topic)
    if m is None:
        return [f"{topic}: not <discovery_prefix>/<component>/[<node_id>/]<object_id>/config"]
    component = m["component"]
    allowed = ENTITY_KEYS | (SENSOR_KEYS if component == "sensor" else set())
    p = [f"{topic}: unknown key {k}" for k in cfg if k not in allowed]
    for key in ("name", "unique_id", "state_topic", "device", "origin"):
        if key not in cfg:
            p.append(f"{topic}: no {key}")
    dev = cfg.get("device", {})
    p += [f"{topic}: device.{k}" for k in dev if k not in DEVICE_KEYS]
    if not (
        isinstance(dev.get("identifiers"), list)
        and dev["identifiers"]
        and all(isinstance(i, str) for i in dev["identifiers"])
    ):
        p.append(f"{topic}: device.identifiers is a list of strings")
    p += [f"{topic}: device has no {k}" for k in ("name", "model", "manufacturer", "sw_version") if k not in dev]
    origin = cfg.get("origin", {})
    p += [f"{topic}: origin.{k}" for k in origin if k not in ORIGIN_KEYS]
    if "name" not in origin:
        p.append(f"{topic}: origin has no name")
    if cfg.get("availability_mode", "latest") not in ("all", "any", "latest"):
        p.append(f"{topic}: availability_mode")
    for a in cfg.get("availability", []):
        p += [f"{topic}: availability.{k}" for k in a if k not in AVAILABILITY_KEYS]
        if "topic" not in a:
            p.append(f"{topic}: an availability without a topic")
    if component == "binary_sensor" and cfg.get("device_class", "problem") not in BINARY_SENSOR_CLASSES:
        p.append(f"{topic}: binary_sensor device_class {cfg.get('device_class')}")
    if cfg.get("state_class", "measurement") not in ("measurement", "total", "total_increasing"):
        p.append(f"{topic}: state_class")
    if cfg.get("entity_category", "diagnostic") not in ("config", "diagnostic"):
        p.append(f"{topic}: entity_category")
    return p


class Watcher:
    """What the broker holds and forwards under the discovery prefix and the state prefix."""

    def __init__(self, port: int) -> None:
        self.retained: dict[str, bytes] = {}
        self.live: Counter[str] = Counter()  # messages forwarded as they were published (retain flag 0)
        self.lock = threading.Lock()
        # a client id of its own: two watchers with one id would take each other's session
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"ha-watcher-{id(self):x}")
        self.client.on_connect = lambda c, *a: c.subscribe(
            [(f"{PREFIX}/#", 1), (f"{STATES}/#", 1), (GATEWAY_STATUS, 1)]
        )
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self.lock:
            if msg.payload:
                self.retained[msg.topic] = bytes(msg.payload)
            else:
                self.retained.pop(msg.topic, None)
            if not msg.retain:
                self.live[msg.topic] += 1

    def configs(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {t: json.loads(p) for t, p in self.retained.items() if t.endswith("/config")}

    def get(self, topic: str) -> bytes | None:
        with self.lock:
            return self.retained.get(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def held_by_broker(port: int, timeout: float = 10.0) -> dict[str, bytes]:
    """A fresh subscriber's view: every retained message of ours still on the broker."""
    w = Watcher(port)
    # The broker hands a new subscription its retained messages before anything published after the
    # subscription: once our own marker comes back, every retained message has arrived.
    marker = f"{STATES}/watcher-marker"
    try:
        assert w.subscribed.wait(timeout), "the watcher's subscription was not acknowledged"
        w.client.publish(marker, b"m", qos=1)
        assert wait_until(lambda: w.live[marker] > 0, timeout), "the watcher's marker did not come back"
    finally:
        w.close()
    with w.lock:
        skip = {f"{PREFIX}/status", GATEWAY_STATUS, marker}
        return {t: p for t, p in w.retained.items() if t not in skip}


HA_SECTION = "integrations:\n  home_assistant: {{enabled: {enabled}{extra}}}\n"


def write_ha_site(directory: Path, port: int, *, enabled: bool = True, extra: str = "") -> Path:
    site = write_site(directory, port)
    text = site.read_text("utf-8") + HA_SECTION.format(enabled="true" if enabled else "false", extra=extra)
    site.write_text(text, "utf-8")
    return site


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    return tmp_path


def started(site: Path, db: Path) -> Gateway:
    gw = Gateway(load_config(site), store_path=db)
    gw.start()
    assert wait_until(lambda: gw.broker_connected, 15)
    return gw


@pytest.fixture
def watcher(private_broker: Mosquitto) -> Iterator[Watcher]:
    w = Watcher(private_broker.port)
    yield w
    w.close()


# 2 buildings x 8 building types + 1 compound x 3 compound types + 3 health entities
ALL_CONFIGS = 2 * 8 + 3 + 3


def test_configs_follow_the_discovery_schema_and_states_follow_incidents(
    private_broker: Mosquitto, watcher: Watcher, tmp_path: Path
) -> None:
    gw = started(write_ha_site(tmp_path, private_broker.port), tmp_path / "gateway.db")
    try:
        assert wait_until(lambda: len(watcher.configs()) == ALL_CONFIGS, 15), len(watcher.configs())
        configs = watcher.configs()
        assert [p for t, c in configs.items() for p in schema_problems(t, c)] == []
        assert len({c["unique_id"] for c in configs.values()}) == ALL_CONFIGS
        sos = configs[f"{PREFIX}/binary_sensor/{NODE}/b1_sos/config"]
        assert sos["state_topic"] == f"{STATES}/building/b1/sos" and sos["device_class"] == "safety"
        assert sos["device"]["name"] == "1号楼" and sos["device"]["via_device"] == "edge_gw-test"
        assert sos["device"]["sw_version"] == __version__ == sos["origin"]["sw_version"]
        assert sos["name"] == "SOS求助"  # the site's language
        # available only while the gateway (its last will) and the publisher are both up
        assert sos["availability_mode"] == "all"
        assert [a["topic"] for a in sos["availability"]] == [GATEWAY_STATUS, f"{STATES}/availability"]
        assert wait_until(lambda: watcher.get(f"{STATES}/availability") == b"online", 5)
        assert json.loads(watcher.get(GATEWAY_STATUS) or b"{}")["state"] == "online"
        assert f"{PREFIX}/binary_sensor/{NODE}/cp1_parking_fire_lane/config" in configs
        assert wait_until(lambda: watcher.get(f"{STATES}/health") is not None, 5)
        health = json.loads(watcher.get(f"{STATES}/health") or b"{}")
        assert health["broker"] == "ON" and health["sync_backlog"] == 0 and 0 < health["store_fill"] < 100

        assert wait_until(lambda: watcher.get(f"{STATES}/building/b1/sos") == b"OFF", 5)
        publish.single("zigbee2mqtt/b1/u1/sos", b'{"action": "emergency"}', qos=1, port=private_broker.port)
        assert wait_until(lambda: watcher.get(f"{STATES}/building/b1/sos") == b"ON", 10)
        assert watcher.get(f"{STATES}/building/b2/sos") == b"OFF"
        assert watcher.get(f"{STATES}/building/b1/fall") == b"OFF"

        def resolve(conn: sqlite3.Connection, result: Any, now: int) -> None:
            (iid,) = conn.execute("SELECT id FROM incidents WHERE type='sos'").fetchone()
            store = inc.IncidentStore(gw.cfg.gateway.id, gw.config_rev)
            store.transition(conn, result, iid, "resolved", now, now, actor="ec1", role="eldercare_worker")

        gw.pipeline.call(resolve).result(10)
        assert wait_until(lambda: watcher.get(f"{STATES}/building/b1/sos") == b"OFF", 10)
    finally:
        gw.stop()
    # a graceful stop: unavailable, the entities stay
    assert wait_until(lambda: watcher.get(f"{STATES}/availability") == b"offline", 5)
    assert len(watcher.configs()) == ALL_CONFIGS


def test_republished_on_the_birth_message_and_on_every_reconnect(
    private_broker: Mosquitto, watcher: Watcher, tmp_path: Path
) -> None:
    gw = started(write_ha_site(tmp_path, private_broker.port), tmp_path / "gateway.db")
    topic = f"{PREFIX}/binary_sensor/{NODE}/b2_smoke/config"
    try:
        assert wait_until(lambda: len(watcher.configs()) == ALL_CONFIGS, 15)
        assert wait_until(lambda: watcher.live[topic] == 1, 5)
        # Home Assistant restarted: its birth message
        publish.single(f"{PREFIX}/status", b"online", port=private_broker.port)
        assert wait_until(lambda: watcher.live[topic] == 2, 10)
        # anything else on the status topic is not a birth
        publish.single(f"{PREFIX}/status", b"offline", port=private_broker.port)
        # a reconnect: another client takes the publisher's client id, the broker drops it
        ha = gw.integrations.home_assistant
        assert ha is not None
        intruder = paho.Client(CallbackAPIVersion.VERSION2, client_id=ha.client._client_id.decode())
        intruder.connect("127.0.0.1", private_broker.port)
        intruder.disconnect()
        assert wait_until(lambda: watcher.live[topic] == 3, 15)
        assert wait_until(lambda: all(watcher.live[t] >= 3 for t in watcher.configs()), 5)
        assert wait_until(lambda: watcher.get(f"{STATES}/availability") == b"online", 5)
    finally:
        gw.stop()


def test_a_reload_trims_the_entities_and_disabling_removes_them(
    private_broker: Mosquitto, watcher: Watcher, tmp_path: Path
) -> None:
    site = write_ha_site(tmp_path, private_broker.port)
    gw = started(site, tmp_path / "gateway.db")
    try:
        assert wait_until(lambda: len(watcher.configs()) == ALL_CONFIGS, 15)
        # only SOS per building now: the other incident sensors go, their states too
        site.write_text(site.read_text("utf-8").replace("enabled: true", "enabled: true, incident_types: [sos]"))
        assert gw.reload_from(site) == []
        kept = {f"{PREFIX}/binary_sensor/{NODE}/{b}_sos/config" for b in ("b1", "b2")}
        assert wait_until(lambda: len(watcher.configs()) == 2 + 3, 10), sorted(watcher.configs())
        assert kept <= set(watcher.configs())
        assert wait_until(lambda: watcher.get(f"{STATES}/building/b1/fall") is None, 5)
        # disabled: every config and state of this gateway is cleared on the broker
        site.write_text(site.read_text("utf-8").replace("enabled: true", "enabled: false"))
        assert gw.reload_from(site) == []
        assert wait_until(lambda: watcher.configs() == {}, 10)
        assert held_by_broker(private_broker.port) == {}
    finally:
        gw.stop()


def test_a_disabled_section_sweeps_what_an_earlier_run_left(
    private_broker: Mosquitto, watcher: Watcher, tmp_path: Path
) -> None:
    first = started(write_ha_site(tmp_path, private_broker.port), tmp_path / "gateway.db")
    try:
        assert wait_until(lambda: len(watcher.configs()) == ALL_CONFIGS, 15)
    finally:
        first.stop()  # the entities stay on the broker, unavailable
    assert len(held_by_broker(private_broker.port)) > ALL_CONFIGS
    gw = started(write_ha_site(tmp_path, private_broker.port, enabled=False), tmp_path / "gateway.db")
    try:
        ha = gw.integrations.home_assistant
        assert ha is not None and ha.remove
        assert ha.done.wait(20)
        assert watcher.configs() == {}
        assert held_by_broker(private_broker.port) == {}
    finally:
        gw.stop()
