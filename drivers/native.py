"""Native JSON driver: devices that publish straight to the gateway broker (access controllers,
fall radars, wearables, barrier gates). The format is ours; docs/drivers.md ("Native JSON")
is the specification given to integrators, with examples.

Topic: ``edge/v1/devices/<device_id>/<channel>``; ``device_id`` matches ``[A-Za-z0-9_.-]{1,64}``
(else bad_topic) and becomes ``Reading.device`` lower-cased. Channels:

* ``state``: ``{"ts": <epoch ms int | RFC 3339 string, optional>, "values": {<canonical>: v}}``
  -> STATE. ``values`` is required and non-empty.
* ``event``: ``{"ts": ..., "event": "<name>", "values": {...optional}}`` -> EVENT
  ``{<name>: True, **values}``. ``<name>`` is any boolean canonical key except ``online``:
  sos, fall, door_forced, access_denied, access_granted, gate_fault, tamper, smoke, gas,
  water_leak, vibration, contact, occupancy, presence, vehicle_present, vehicle_unknown,
  image_unusable, battery_low.
* ``availability``: ``online`` / ``offline`` (plain, e.g. an MQTT last-will) or
  ``{"online": true|false}`` -> AVAILABILITY.
* ``command``, ``cmd``, ``set``: messages *to* the device -> ``[]``. Other channels ->
  unsupported.

Both ``state`` and ``event`` accept an optional ``"meta": {<key>: <string|number|bool|null>}``
(at most 32 keys, strings up to 256 characters) copied to ``Reading.meta`` (e.g. the credential
id of an ``access_denied``). Other top-level keys are ignored (forward compatible).

Values: only canonical keys (``online`` only on the availability channel); an unknown key or
event name -> **unsupported** (the message is valid JSON but uses vocabulary this gateway does
not know yet: extend CANONICAL_VALUES, do not guess). Each value is type-checked with
:func:`drivers.base.coerce_value` (numeric strings accepted, ``"true"``/``"false"`` accepted,
``null`` -> wrong_type, NaN/Infinity/out of range -> bad_value).
"""

from __future__ import annotations

import math
import re
from typing import Any

from drivers.base import (
    AVAILABILITY,
    CANONICAL_VALUES,
    EVENT,
    STATE,
    DecodeError,
    Reading,
    coerce_value,
    filter_base,
    parse_json,
    parse_json_object,
    parse_timestamp_ms,
)

NAME = "native"
TOPIC_PREFIX = "edge/v1/devices/"
_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_VALUE_KEYS = frozenset(k for k in CANONICAL_VALUES if k != "online")
EVENT_NAMES = frozenset(k for k, t in CANONICAL_VALUES.items() if t is bool and k != "online")
_COMMAND_CHANNELS = frozenset({"command", "cmd", "set"})
_MAX_META_KEYS = 32
_MAX_META_STR = 256


def normalise_address(address: str) -> str:
    return address.strip().lower()


def safety_topics(filter_: str, address: str, friendly_name: str | None) -> tuple[str, ...]:
    """Every channel of the device (``<base>/<device_id>/+``): state and event both carry alarms."""
    return (f"{filter_base(filter_)}/{address}/+",)


def decode(topic: str, payload: bytes) -> list[Reading]:
    if not topic.startswith(TOPIC_PREFIX):
        raise DecodeError("bad_topic", f"{topic[:120]!r} is not under {TOPIC_PREFIX}")
    device_id, sep, channel = topic[len(TOPIC_PREFIX) :].partition("/")
    if not sep or _ID_RE.fullmatch(device_id) is None:
        raise DecodeError("bad_topic", f"{topic[:120]!r}: bad device id")
    device = device_id.lower()
    if channel == "state":
        obj = parse_json_object(payload)
        values = _values(obj.get("values"), required=True)
        return [Reading(device, STATE, values, _ts(obj), _meta(obj))]
    if channel == "event":
        obj = parse_json_object(payload)
        name = obj.get("event")
        if name is None:
            raise DecodeError("missing_field", "event")
        if not isinstance(name, str):
            raise DecodeError("wrong_type", "event: expected a string")
        if name not in EVENT_NAMES:
            raise DecodeError("unsupported", f"event {name[:40]!r} is not a known event name")
        extra = _values(obj.get("values"), required=False)
        if extra.get(name, True) is not True:
            raise DecodeError("bad_value", f"event {name!r} with values.{name} = false")
        values = {name: True}
        values.update(extra)
        return [Reading(device, EVENT, values, _ts(obj), _meta(obj))]
    if channel == "availability":
        return [Reading(device, AVAILABILITY, {"online": _online(payload)})]
    if channel in _COMMAND_CHANNELS:
        return []
    if not channel:
        raise DecodeError("bad_topic", f"{topic[:120]!r}: no channel")
    raise DecodeError("unsupported", f"channel {channel[:40]!r}")


# Any: a value of the decoded JSON payload
def _values(raw: Any, *, required: bool) -> dict[str, Any]:
    if raw is None:
        if required:
            raise DecodeError("missing_field", "values")
        return {}
    if not isinstance(raw, dict):
        raise DecodeError("wrong_type", "values: expected an object")
    if required and not raw:
        raise DecodeError("bad_value", "values is empty")
    out: dict[str, Any] = {}
    keys = _VALUE_KEYS
    for key, v in raw.items():
        if key not in keys:
            raise DecodeError("unsupported", f"values.{key[:40]} is not a canonical value name")
        out[key] = coerce_value(key, v)
    return out


def _ts(obj: dict[str, Any]) -> int | None:
    ts = obj.get("ts")
    return None if ts is None else parse_timestamp_ms(ts)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    raw = obj.get("meta")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DecodeError("wrong_type", "meta: expected an object")
    if len(raw) > _MAX_META_KEYS:
        raise DecodeError("bad_value", f"meta has more than {_MAX_META_KEYS} keys")
    for key, v in raw.items():
        if len(key) > 64:
            raise DecodeError("bad_value", "meta key longer than 64 characters")
        if v is None or v is True or v is False or type(v) is int:
            if type(v) is int and not -(2**53) <= v <= 2**53:
                raise DecodeError("bad_value", f"meta.{key}: integer out of range")
        elif type(v) is float:
            if not math.isfinite(v):
                raise DecodeError("bad_value", f"meta.{key}: non-finite number")
        elif type(v) is str:
            if len(v) > _MAX_META_STR:
                raise DecodeError("bad_value", f"meta.{key}: string longer than {_MAX_META_STR}")
        else:
            raise DecodeError("wrong_type", f"meta.{key}: expected a string, number, boolean or null")
    return raw


def _online(payload: bytes) -> bool:
    if payload == b"online":
        return True
    if payload == b"offline":
        return False
    obj = parse_json(payload)
    if isinstance(obj, dict):
        if obj.get("online") is None:
            raise DecodeError("missing_field", "online")
        return bool(coerce_value("online", obj["online"]))
    if isinstance(obj, str):
        if obj == "online":
            return True
        if obj == "offline":
            return False
        raise DecodeError("bad_value", f"availability {obj[:40]!r} is neither online nor offline")
    raise DecodeError("wrong_type", "availability: expected 'online'/'offline' or {\"online\": bool}")
