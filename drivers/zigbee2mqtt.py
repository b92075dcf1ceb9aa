"""Zigbee2MQTT driver.

Source format: Zigbee2MQTT 1.x/2.x MQTT API (https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html)
with the default ``advanced.output: json``; device payload keys as produced by
zigbee-herdsman-converters "exposes" (``contact``, ``occupancy``, ``water_leak``, ``action``, ...).

Topics (``<base>`` is the first topic segment, ``zigbee2mqtt`` by default; use :func:`make_decoder`
for a multi-segment base such as ``site1/z2m``):

* ``<base>/<friendly_name>`` – device state, a JSON object. Friendly names may contain ``/``
  (``zigbee2mqtt/b3/u1/sos`` is the device ``b3/u1/sos``).
* ``<base>/<friendly_name>/availability`` – ``online``/``offline`` (legacy plain string) or
  ``{"state": "online"}`` (Z2M >= 1.30 / 2.x) -> AVAILABILITY ``{"online": bool}``.
* ``<base>/bridge/state`` – same two payload forms -> BRIDGE ``{"online": bool}``.
* ``<base>/bridge/devices`` – JSON array of ``{"ieee_address", "friendly_name", "type", ...}``
  (the legacy ``ieeeAddr`` key is accepted too) -> BRIDGE ``{"devices": {friendly: ieee}}``,
  coordinator included.
* ``<base>/bridge/event`` – ``{"type": ..., "data": {"ieee_address", "friendly_name", ...}}`` when a
  device pairs or leaves -> BRIDGE ``{"network": ...}`` on the device's IEEE address:
  ``device_joined`` -> ``joined``, ``device_announce`` -> ``announced``, ``device_interview`` with
  ``status`` ``started``/``successful``/``failed`` -> ``interview_started``/``interviewed``/
  ``interview_failed``, ``device_leave`` -> ``left``. ``meta``: ``friendly_name``, and from a
  successful interview ``supported``, ``model``, ``vendor``, ``description`` (the definition's).
  Other event types -> ``[]``.
* Ignored (return ``[]``): every other ``bridge/...`` topic (info, logging, log, config,
  extensions, groups, definitions, response/..., request/...), command topics
  ``<name>/set``, ``<name>/get``, ``<name>/set/<attr>``, ``<name>/get/<attr>`` (ours or other
  controllers') and ``<name>/action`` (the plain-string duplicate Z2M publishes for Home
  Assistant device triggers; the same action is in the state message).

Device key: ``device.ieeeAddr`` lower-cased when the payload carries it
(``advanced.include_device_information: true``), else ``name:<friendly_name>`` (case kept,
Z2M friendly names are case-sensitive). ``meta`` always carries ``{"friendly_name": ...}``.

State mapping (Z2M key -> canonical):
  contact, occupancy, presence, water_leak, smoke, gas, tamper, vibration, battery_low,
  battery (0..100 else bad_value), temperature, humidity, linkquality, voltage (Z2M reports
  **millivolts** for most battery devices, e.g. 3025; kept as sent), plus any other key that is
  already a canonical name (heart_rate, spo2, ...). ``sos`` and ``emergency`` (booleans of IAS
  emergency devices) -> ``sos``; ``fall`` and ``fall_detected`` (booleans) -> ``fall``;
  ``fall_down_status`` / ``fall_detection_status`` (enums of Tuya fall radars) -> ``fall``:
  ``fall``/``maybe_fall`` -> True (elder care: a suspected fall alarms), ``none``/``normal`` ->
  False, other strings -> bad_value.
  ``sos``/``fall`` booleans are states (like ``smoke``): they stay in the STATE reading.
  ``last_seen`` (ISO 8601 or epoch ms, per ``advanced.last_seen``) -> ``ts_ms``.
  ``null`` values are skipped (Z2M sends null for unknown). Other keys are ignored.

Actions (``action``, the momentary button/remote value):
  ``emergency``/``sos`` -> EVENT ``{"sos": True}``; ``fall`` -> EVENT ``{"fall": True}``;
  anything else (``single``, ``double``, ``hold``, ``arm_away`` ...) -> EVENT
  ``{"action": <raw>}``. ``""``/``null`` (the legacy reset) is ignored. When the message also
  has canonical values the STATE reading comes first and carries ``"action": <raw>`` too.

Errors: not an object -> wrong_type; value of the wrong type (``contact: "yes"``) -> wrong_type;
numeric strings (``"87"``) and ``"true"``/``"false"`` are accepted; NaN/Infinity/out of range ->
bad_value; a message with no known key at all -> unsupported (dead-lettered, so a device we do
not understand is visible rather than silently dropped; note Z2M *group* state messages such as
``{"state": "ON"}`` land here too). A message whose known keys are all null/empty -> ``[]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from drivers.base import (
    AVAILABILITY,
    BRIDGE,
    CANONICAL_VALUES,
    EVENT,
    STATE,
    VALUE_RANGES,
    DecodeError,
    Reading,
    coerce_value,
    filter_base,
    parse_json,
    parse_json_object,
    parse_timestamp_ms,
)

NAME = "zigbee2mqtt"
DEFAULT_BASE = "zigbee2mqtt"

# Z2M key -> canonical key. Every canonical name maps to itself except availability's "online".
_ALIASES: dict[str, str] = {k: k for k in CANONICAL_VALUES if k != "online"}
_ALIASES.update({"emergency": "sos", "fall_detected": "fall"})
# Z2M key -> (canonical key, is_bool, lo, hi): lets the hot loop accept the common well-typed
# value inline and call coerce_value only for strings, odd types and out-of-range numbers.
_FIELDS: dict[str, tuple[str, bool, float, float]] = {
    k: (c, CANONICAL_VALUES[c] is bool, *VALUE_RANGES.get(c, (-1e12, 1e12))) for k, c in _ALIASES.items()
}
_FALL_ENUM_FIELDS = frozenset({"fall_down_status", "fall_detection_status"})
_FALL_ENUM = {"fall": True, "maybe_fall": True, "none": False, "normal": False}
_SOS_ACTIONS = frozenset({"emergency", "sos"})
_MAX_ACTION_LEN = 64

_IEEE_RE = re.compile(r"(?:0x)?([0-9a-f]{16})")
_IEEE_SEPARATORS = str.maketrans("", "", ":-")


def normalise_address(address: str) -> str:
    """Config address -> Reading.device form: IEEE in any usual spelling (``0x00158D00...``,
    ``00:15:8d:...``) -> ``0x`` + 16 lower-case hex; ``name:<friendly>`` and anything else is
    returned stripped, unchanged (friendly names are case-sensitive)."""
    a = address.strip()
    m = _IEEE_RE.fullmatch(a.lower().translate(_IEEE_SEPARATORS))
    if m:
        return "0x" + m.group(1)
    return a


def safety_topics(filter_: str, address: str, friendly_name: str | None) -> tuple[str, ...]:
    """A device's state topic is ``<base>/<friendly_name>``; without a configured friendly name its
    messages cannot be told apart by topic, so it gets no life-safety subscription of its own."""
    return (f"{filter_base(filter_)}/{friendly_name}",) if friendly_name else ()


def decode(topic: str, payload: bytes) -> list[Reading]:
    """Decode with the base topic taken as the first topic segment."""
    base, _, rest = topic.partition("/")
    if not base:
        raise DecodeError("bad_topic", f"{topic[:80]!r}: empty base topic")
    return _decode(base, rest, payload)


def make_decoder(base: str) -> Callable[[str, bytes], list[Reading]]:
    """A decode function for a configured (possibly multi-segment) base topic."""
    base = base.strip("/")
    prefix = base + "/"

    def decode_with_base(topic: str, payload: bytes) -> list[Reading]:
        if not topic.startswith(prefix):
            raise DecodeError("bad_topic", f"{topic[:80]!r} is not under {base!r}")
        return _decode(base, topic[len(prefix) :], payload)

    return decode_with_base


def _decode(base: str, rest: str, payload: bytes) -> list[Reading]:
    if not rest or rest[0] == "/" or rest[-1] == "/" or "//" in rest:
        raise DecodeError("bad_topic", f"{base}/{rest[:80]}: no friendly name")
    if rest.startswith("bridge"):
        if rest == "bridge/state":
            online = _online(payload, "bridge state")
            return [Reading(f"bridge:{base}", BRIDGE, {"online": online})]
        if rest == "bridge/devices":
            return [Reading(f"bridge:{base}", BRIDGE, {"devices": _devices(payload)})]
        if rest == "bridge/event":
            return _bridge_event(parse_json_object(payload))
        if rest == "bridge" or rest[6] == "/":
            return []  # bridge/info, bridge/logging, bridge/event, bridge/response/..., ...
    if rest.endswith(("/set", "/get", "/action")) or "/set/" in rest or "/get/" in rest:
        return []
    if rest.endswith("/availability"):
        name = rest[:-13]
        if not name:
            raise DecodeError("bad_topic", f"{base}/{rest[:80]}: no friendly name")
        online = _online(payload, "availability")
        return [Reading(f"name:{name}", AVAILABILITY, {"online": online}, None, {"friendly_name": name})]
    return _state(rest, parse_json_object(payload))


def _online(payload: bytes, what: str) -> bool:
    # Legacy plain strings first: no JSON parse on the common path.
    if payload == b"online":
        return True
    if payload == b"offline":
        return False
    obj = parse_json(payload)
    if isinstance(obj, dict):
        if "state" not in obj or obj["state"] is None:
            raise DecodeError("missing_field", f"{what}: no 'state'")
        obj = obj["state"]
    if not isinstance(obj, str):
        raise DecodeError("wrong_type", f"{what}: expected 'online'/'offline'")
    if obj == "online":
        return True
    if obj == "offline":
        return False
    raise DecodeError("bad_value", f"{what}: {obj[:40]!r} is neither online nor offline")


_EVENT_TYPES = {"device_joined": "joined", "device_announce": "announced", "device_leave": "left"}
_INTERVIEW = {"started": "interview_started", "successful": "interviewed", "failed": "interview_failed"}
_DEFINITION_KEYS = ("model", "vendor", "description")


# Any: the decoded JSON payload's values
def _text(v: Any, limit: int) -> str | None:
    return v[:limit] if isinstance(v, str) and v else None


def _bridge_event(msg: dict[str, Any]) -> list[Reading]:
    """A device paired, announced itself, was interviewed or left: what an installer watches for."""
    typ = msg.get("type")
    if typ is None:
        raise DecodeError("missing_field", "bridge/event: no 'type'")
    if not isinstance(typ, str):
        raise DecodeError("wrong_type", "bridge/event: 'type' is not a string")
    if typ not in _EVENT_TYPES and typ != "device_interview":
        return []  # a newer Zigbee2MQTT's event we have no use for
    data = msg.get("data")
    if data is None:
        raise DecodeError("missing_field", f"bridge/event {typ}: no 'data'")
    if not isinstance(data, dict):
        raise DecodeError("wrong_type", f"bridge/event {typ}: 'data' is not an object")
    ieee = data.get("ieee_address")
    if ieee is None:
        raise DecodeError("missing_field", f"bridge/event {typ}: no ieee_address")
    if not isinstance(ieee, str):
        raise DecodeError("wrong_type", f"bridge/event {typ}: ieee_address is not a string")
    address = normalise_address(ieee)
    if not address.startswith("0x"):
        raise DecodeError("bad_value", f"bridge/event {typ}: {ieee[:40]!r} is not an IEEE address")
    meta: dict[str, Any] = {}
    friendly = _text(data.get("friendly_name"), 200)
    if friendly is not None:
        meta["friendly_name"] = friendly
    if typ == "device_interview":
        status = data.get("status")
        if status not in _INTERVIEW:
            raise DecodeError("bad_value", f"bridge/event device_interview: status {str(status)[:20]!r}")
        what = _INTERVIEW[status]
        if status == "successful":
            if isinstance(data.get("supported"), bool):
                meta["supported"] = data["supported"]
            definition = data.get("definition")
            if isinstance(definition, dict):  # null for an unsupported device
                meta.update({k: t for k in _DEFINITION_KEYS if (t := _text(definition.get(k), 120)) is not None})
    else:
        what = _EVENT_TYPES[typ]
    return [Reading(address, BRIDGE, {"network": what}, None, meta)]


def _devices(payload: bytes) -> dict[str, str]:
    arr = parse_json(payload)
    if not isinstance(arr, list):
        raise DecodeError("wrong_type", "bridge/devices: expected a JSON array")
    devices: dict[str, str] = {}
    for entry in arr:
        if not isinstance(entry, dict):
            raise DecodeError("wrong_type", "bridge/devices: entry is not an object")
        ieee = entry.get("ieee_address")
        if ieee is None:
            ieee = entry.get("ieeeAddr")
        name = entry.get("friendly_name")
        if ieee is None or name is None:
            raise DecodeError("missing_field", "bridge/devices: entry without ieee_address/friendly_name")
        if not isinstance(ieee, str) or not isinstance(name, str):
            raise DecodeError("wrong_type", "bridge/devices: ieee_address/friendly_name not strings")
        devices[name] = ieee.lower()
    return devices


def _state(name: str, obj: dict[str, Any]) -> list[Reading]:
    values: dict[str, Any] = {}
    recognised = False
    action: str | None = None
    fields = _FIELDS
    for key, raw in obj.items():
        spec = fields.get(key)
        if spec is None:
            if key == "action":
                recognised = True
                if raw is None or raw == "":
                    continue
                if not isinstance(raw, str):
                    raise DecodeError("wrong_type", "action: expected a string")
                if len(raw) > _MAX_ACTION_LEN:
                    raise DecodeError("bad_value", "action: too long")
                action = raw
            elif key in _FALL_ENUM_FIELDS:
                recognised = True
                if raw is None:
                    continue
                if not isinstance(raw, str):
                    raise DecodeError("wrong_type", f"{key}: expected a string")
                fell = _FALL_ENUM.get(raw)
                if fell is None:
                    raise DecodeError("bad_value", f"{key}: unknown value {raw[:40]!r}")
                values["fall"] = fell or values.get("fall", False)
            continue
        recognised = True
        if raw is None:
            continue
        canon, is_bool, lo, hi = spec
        if is_bool:
            v = raw if (raw is True or raw is False) else coerce_value(canon, raw)
        else:
            t = type(raw)
            v = raw if ((t is int or t is float) and lo <= raw <= hi) else coerce_value(canon, raw)
        if canon in values and v is False:
            continue  # aliases (sos/emergency, fall/fall_detected): any True wins
        values[canon] = v
    if not recognised:
        raise DecodeError("unsupported", f"{name[:80]}: no known field")

    device = f"name:{name}"
    info = obj.get("device")
    if type(info) is dict:
        ieee = info.get("ieeeAddr")
        if type(ieee) is str and ieee:
            device = ieee.lower()
    ts = obj.get("last_seen")
    ts_ms = None if ts is None else parse_timestamp_ms(ts, field_name="last_seen")
    meta = {"friendly_name": name}

    out: list[Reading] = []
    if values:
        if action is not None:
            values["action"] = action
        out.append(Reading(device, STATE, values, ts_ms, meta))
    if action is not None:
        if action in _SOS_ACTIONS:
            ev: dict[str, Any] = {"sos": True}
        elif action == "fall":
            ev = {"fall": True}
        else:
            ev = {"action": action}
        out.append(Reading(device, EVENT, ev, ts_ms, meta))
    return out
