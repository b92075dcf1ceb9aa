"""The driver table: one explicit entry per ecosystem, no plugin discovery.

Each driver is a small module with a pure ``decode(topic, payload) -> list[Reading]`` (see
drivers/base.py for the contract and docs/drivers.md for the formats). To add a driver: write
the module, add its entry here (its topics, help text, address rule and life-safety topics: the
rest of the gateway asks this table and never branches on driver names), add real payload samples
under tests/payloads/<name>/ with tests in tests/test_drivers.py and a section in docs/drivers.md;
the meta-tests in tests/test_driver_table.py then run over it and check that nothing is missing.
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
        address_pattern=r"^0x[0-9a-f]{16}$",
        address_help=(
            "a zigbee2mqtt address is the IEEE address: '0x' followed by 16 hex digits "
            "(e.g. '0x00158d0001a2b3c4'; see Zigbee2MQTT's device page), quoted"
        ),
        safety_topics=zigbee2mqtt.safety_topics,
        decoder_for_base=zigbee2mqtt.make_decoder,
        bulk_topics=("bridge/#",),
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
        address_pattern=r"^[0-9a-f]{16}$",
        address_help=(
            "a chirpstack address is the LoRaWAN DevEUI: 16 hex digits without separators "
            "(e.g. '70b3d57ed0051234'), quoted"
        ),
        safety_topics=chirpstack.safety_topics,
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
        address_pattern=r"^[a-z0-9][a-z0-9_.:-]{0,127}$",
        address_help=(
            "a native address is the device id used in its topic edge/v1/devices/<id>/...: "
            "letters, digits, '-', '_', '.' or ':' (max 128)"
        ),
        safety_topics=native.safety_topics,
    ),
    frigate.NAME: DriverSpec(
        name=frigate.NAME,
        decode=frigate.decode,
        # the object counts of the two labels the driver maps; frigate/+/+ would add every other
        # label's count and each camera's motion topic, to be thrown away
        default_topics=("frigate/events", "frigate/reviews", "frigate/+/car", "frigate/+/person"),
        description=(
            "Frigate NVR: events, 0.14+ reviews and per-zone/per-camera object counts; cars and persons "
            "-> vehicle_present / occupancy per zone (camera parking and intrusion)."
        ),
        normalise_address=frigate.normalise_address,
        # Not checked: Frigate camera and zone names are the site's own choice.
        address_help=(
            "a frigate address is one Frigate zone: <camera>/<zone> for events and reviews "
            "(e.g. 'lot_cam/fire_lane_1'), the zone's name alone for object counts (e.g. 'fire_lane_1')"
        ),
        # No life-safety topics: every camera and zone shares frigate/events, so one zone's
        # messages cannot be subscribed to on their own.
    ),
}


def decode(driver_name: str, topic: str, payload: bytes) -> list[Reading]:
    """Decode with the named driver; an unknown driver is ``DecodeError("unsupported")``."""
    spec = DRIVERS.get(driver_name) if isinstance(driver_name, str) else None
    if spec is None:
        raise DecodeError("unsupported", f"no driver named {str(driver_name)[:40]!r}")
    return spec.decode(topic, payload)


__all__ = ["DRIVERS", "DecodeError", "DriverSpec", "Reading", "decode"]
