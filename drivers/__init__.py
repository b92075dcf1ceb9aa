"""The driver table: one explicit entry per ecosystem, no plugin discovery.

Each driver is a small module with a pure ``decode(topic, payload) -> list[Reading]`` (see
drivers/base.py for the contract and docs/drivers.md for the formats). To add a driver: write
the module, add its entry here, add real payload samples under tests/payloads/<name>/; the
meta-tests in tests/test_driver_table.py then run over it automatically.
"""

from __future__ import annotations

from drivers import chirpstack, frigate, native, zigbee2mqtt
from drivers.base import DecodeError, DriverSpec, Reading

DRIVERS: dict[str, DriverSpec] = {
    zigbee2mqtt.NAME: DriverSpec(
        name=zigbee2mqtt.NAME,
        decode=zigbee2mqtt.decode,
        default_topics=("zigbee2mqtt/#",),
        description=(
            "Zigbee2MQTT 1.x/2.x JSON API: device state, availability, bridge state and device list "
            "(contact, occupancy, water leak, smoke, SOS buttons, ...)."
        ),
        normalise_address=zigbee2mqtt.normalise_address,
    ),
    chirpstack.NAME: DriverSpec(
        name=chirpstack.NAME,
        decode=chirpstack.decode,
        default_topics=("application/+/device/+/event/up", "application/+/device/+/event/status"),
        description=(
            "ChirpStack v4 MQTT integration (JSON): LoRaWAN uplinks with codec object or the "
            "geomagnetic parking sensor byte layout on fPort 2, device battery status."
        ),
        normalise_address=chirpstack.normalise_address,
    ),
    native.NAME: DriverSpec(
        name=native.NAME,
        decode=native.decode,
        default_topics=(
            "edge/v1/devices/+/state",
            "edge/v1/devices/+/event",
            "edge/v1/devices/+/availability",
        ),
        description=(
            "Native JSON for devices publishing directly (access controllers, fall radars, "
            "wearables, barrier gates): state, event and availability channels."
        ),
        normalise_address=native.normalise_address,
    ),
    frigate.NAME: DriverSpec(
        name=frigate.NAME,
        decode=frigate.decode,
        default_topics=("frigate/events",),
        description=(
            "Frigate NVR events (frigate/events new/update/end): cars and persons in Frigate zones "
            "-> vehicle_present / occupancy per <camera>/<zone> device (camera parking and intrusion)."
        ),
        normalise_address=frigate.normalise_address,
    ),
}


def decode(driver_name: str, topic: str, payload: bytes) -> list[Reading]:
    """Decode with the named driver; an unknown driver is ``DecodeError("unsupported")``."""
    spec = DRIVERS.get(driver_name) if isinstance(driver_name, str) else None
    if spec is None:
        raise DecodeError("unsupported", f"no driver named {str(driver_name)[:40]!r}")
    return spec.decode(topic, payload)


__all__ = ["DRIVERS", "DecodeError", "DriverSpec", "Reading", "decode"]
