"""Realistic device messages in the real ecosystem formats (Zigbee2MQTT, ChirpStack v4, native).

Used by the simulator, the benchmarks and the tests. Payloads carry no sequence ids (real devices
don't); values vary the way sensors vary.
"""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_config import SiteConfig

from edge_config.device_types import door_types


@dataclass(frozen=True)
class SimDevice:
    id: str
    driver: str
    address: str
    friendly_name: str | None
    type: str


def sim_devices(cfg: SiteConfig, *, owned_only: bool = True) -> list[SimDevice]:
    devices = cfg.owned_devices() if owned_only else cfg.devices
    return [SimDevice(d.id, d.driver, d.address, d.friendly_name, d.type) for d in devices]


def _j(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def z2m_topic(dev: SimDevice, base: str = "zigbee2mqtt") -> str:
    return f"{base}/{dev.friendly_name or dev.address}"


def native_topic(dev: SimDevice, channel: str = "state") -> str:
    return f"edge/v1/devices/{dev.address}/{channel}"


def chirpstack_topic(dev: SimDevice, app: str = "3f1c2a5e-0b7d-4d7e-9a51-6b2f0e8c1d11", event: str = "up") -> str:
    return f"application/{app}/device/{dev.address}/event/{event}"


def _z2m_state(dev: SimDevice, rng: random.Random) -> dict[str, Any]:
    common = {"battery": rng.randint(35, 100), "linkquality": rng.randint(20, 255), "voltage": rng.randint(2800, 3100)}
    t = dev.type
    if t in door_types():
        return {**common, "contact": rng.random() < 0.9}
    if t in ("motion_sensor",):
        return {**common, "occupancy": rng.random() < 0.3, "illuminance": rng.randint(0, 900)}
    if t in ("presence_sensor",):
        return {**common, "presence": rng.random() < 0.5}
    if t == "smoke_detector":
        return {**common, "smoke": False, "tamper": False, "battery_low": False}
    if t == "gas_detector":
        return {"gas": False, "linkquality": common["linkquality"]}
    if t == "water_leak":
        return {**common, "water_leak": False}
    if t in ("sos_button", "pull_cord"):
        return {**common}
    return {**common, "temperature": round(rng.uniform(15, 30), 2), "humidity": round(rng.uniform(30, 70), 2)}


def _native_values(dev: SimDevice, rng: random.Random) -> dict[str, Any]:
    t = dev.type
    if t == "fall_radar":
        return {"presence": rng.random() < 0.6, "breath_rate": rng.randint(12, 20)}
    if t == "wearable":
        return {"heart_rate": rng.randint(58, 95), "spo2": rng.randint(94, 99), "battery": rng.randint(20, 100)}
    if t == "access_controller":
        return {"contact": rng.random() < 0.95, "tamper": False}
    if t == "barrier_gate":
        return {"gate_fault": False, "contact": rng.random() < 0.8}
    return {"presence": rng.random() < 0.5}


def parking_frame(occupied: bool, battery: int, delta: int, temp: int) -> bytes:
    """The documented 5-byte fPort 2 status frame (drivers/parking_codec.py)."""
    flags = 0x01 if occupied else 0x00
    return (
        bytes([flags, battery & 0xFF])
        + int(delta).to_bytes(2, "big", signed=True)
        + int(temp).to_bytes(1, "big", signed=True)
    )


def _chirpstack_up(dev: SimDevice, rng: random.Random, *, occupied: bool | None = None) -> dict[str, Any]:
    occ = rng.random() < 0.6 if occupied is None else occupied
    frame = parking_frame(
        occ, rng.randint(30, 100), rng.randint(400, 900) if occ else rng.randint(-40, 40), rng.randint(-5, 35)
    )
    return {
        "deduplicationId": str(uuid.UUID(int=rng.getrandbits(128))),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{rng.randint(0, 999999):06d}Z",
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "community",
            "applicationId": "3f1c2a5e-0b7d-4d7e-9a51-6b2f0e8c1d11",
            "applicationName": "parking",
            "deviceProfileId": "0b9b6d5e-7c55-4f3c-9a0c-2a1b1b7b8d21",
            "deviceProfileName": "geomagnetic-v1",
            "deviceName": dev.id,
            "devEui": dev.address,
            "tags": {},
        },
        "devAddr": f"{rng.getrandbits(32):08x}",
        "adr": True,
        "dr": rng.randint(0, 5),
        "fCnt": rng.randint(1, 60000),
        "fPort": 2,
        "confirmed": False,
        "data": base64.b64encode(frame).decode(),
        "rxInfo": [
            {
                "gatewayId": "0016c001f1500001",
                "uplinkId": rng.randint(1, 65535),
                "rssi": rng.randint(-120, -60),
                "snr": round(rng.uniform(-10, 10), 1),
                "context": "AAAAAA==",
            }
        ],
        "txInfo": {
            "frequency": 471500000,
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 9, "codeRate": "CR_4_5"}},
        },
    }


def telemetry(dev: SimDevice, rng: random.Random) -> tuple[str, bytes]:
    """One ordinary telemetry message for a device."""
    if dev.driver == "zigbee2mqtt":
        return z2m_topic(dev), _j(_z2m_state(dev, rng))
    if dev.driver == "chirpstack":
        return chirpstack_topic(dev), _j(_chirpstack_up(dev, rng))
    return native_topic(dev), _j({"ts": int(time.time() * 1000), "values": _native_values(dev, rng)})


def sos_press(dev: SimDevice, rng: random.Random | None = None) -> tuple[str, bytes]:
    """An SOS / emergency press in the device's own format."""
    if dev.driver == "zigbee2mqtt":
        return z2m_topic(dev), _j(
            {
                "action": "emergency",
                "battery": (rng or random).randint(40, 100),
                "linkquality": (rng or random).randint(30, 200),
            }
        )
    return native_topic(dev, "event"), _j({"ts": int(time.time() * 1000), "event": "sos"})


def event(dev: SimDevice, name: str) -> tuple[str, bytes]:
    """A momentary event (fall, door_forced, access_denied ...) in the device's format."""
    if dev.driver == "zigbee2mqtt":
        if name == "sos":
            return z2m_topic(dev), _j({"action": "emergency"})
        return z2m_topic(dev), _j({name: True})
    return native_topic(dev, "event"), _j({"ts": int(time.time() * 1000), "event": name})


def state(dev: SimDevice, values: dict[str, Any], rng: random.Random | None = None) -> tuple[str, bytes]:
    """A state message carrying exactly these canonical values."""
    if dev.driver == "zigbee2mqtt":
        return z2m_topic(dev), _j(values)
    if dev.driver == "chirpstack":
        r = rng or random.Random()
        up = _chirpstack_up(dev, r, occupied=bool(values.get("vehicle_present", False)))
        return chirpstack_topic(dev), _j(up)
    return native_topic(dev), _j({"ts": int(time.time() * 1000), "values": values})


def availability(dev: SimDevice, online: bool) -> tuple[str, bytes]:
    if dev.driver == "zigbee2mqtt":
        return f"{z2m_topic(dev)}/availability", _j({"state": "online" if online else "offline"})
    return native_topic(dev, "availability"), _j({"online": online})


# --- messages the simulator publishes besides readings (cameras, bridge, last wills) ----------


def frigate_event(
    camera: str, label: str, rng: random.Random, *, kind: str = "new", zones: list[str] | None = None
) -> tuple[str, bytes]:
    """A Frigate NVR ``frigate/events`` message (``type`` new | update | end, ``before``/``after``)."""
    now = time.time()
    ev_id = f"{now:.6f}-{rng.getrandbits(24):06x}"
    obj = {
        "id": ev_id,
        "camera": camera,
        "frame_time": now,
        "label": label,
        "sub_label": None,
        "top_score": round(rng.uniform(0.72, 0.95), 3),
        "score": round(rng.uniform(0.7, 0.95), 3),
        "box": [rng.randint(0, 600), rng.randint(0, 300), rng.randint(600, 1280), rng.randint(300, 720)],
        "area": rng.randint(5000, 90000),
        "region": [0, 0, 640, 640],
        "stationary": False,
        "motionless_count": 0,
        "position_changes": rng.randint(0, 5),
        "current_zones": list(zones or []),
        "entered_zones": list(zones or []),
        "has_clip": kind != "new",
        "has_snapshot": True,
        "start_time": now - (0 if kind == "new" else rng.uniform(1, 30)),
        "end_time": now if kind == "end" else None,
        "false_positive": False,
    }
    return "frigate/events", _j({"type": kind, "before": obj, "after": obj})


def frigate_count(camera: str, label: str, count: int) -> tuple[str, bytes]:
    """Frigate's per-camera object count topic ``frigate/<camera>/<label>`` (plain integer)."""
    return f"frigate/{camera}/{label}", str(int(count)).encode()


def z2m_bridge_state(online: bool, base: str = "zigbee2mqtt") -> tuple[str, bytes]:
    return f"{base}/bridge/state", _j({"state": "online" if online else "offline"})


def native_lwt(dev: SimDevice) -> tuple[str, bytes]:
    """What a native device's MQTT last will says when its power goes (plain ``offline``)."""
    return native_topic(dev, "availability"), b"offline"


def frigate_zone_state(
    dev: SimDevice, present: bool, rng: random.Random, label: str | None = None
) -> tuple[str, bytes]:
    """A Frigate event for a zone device (address ``<camera>/<zone>``): object in the zone, or gone."""
    camera, _, zone = dev.address.partition("/")
    lab = label or ("car" if dev.type == "parking_sensor" or "park" in dev.type else "person")
    if present:
        return frigate_event(camera, lab, rng, kind="update", zones=[zone] if zone else [])
    return frigate_event(camera, lab, rng, kind="end", zones=[zone] if zone else [])


def device_state(dev: SimDevice, values: dict[str, Any], rng: random.Random | None = None) -> tuple[str, bytes]:
    """Like :func:`state`, for every driver including Frigate zones (vehicle_present / occupancy)."""
    if dev.driver == "frigate":
        present = bool(values.get("vehicle_present", values.get("occupancy", values.get("presence", False))))
        return frigate_zone_state(dev, present, rng or random.Random())
    return state(dev, values, rng)
