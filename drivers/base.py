"""The contract every driver follows: a pure function from one MQTT message to readings.

A driver never touches the network, the store or the clock (beyond parsing timestamps the
device sent). It turns ``(topic, payload bytes)`` into zero or more :class:`Reading` values in
the canonical vocabulary below, or raises :class:`DecodeError` with a short machine reason that
the pipeline counts and keeps as a dead letter. Any other exception escaping a driver is a bug;
the pipeline still dead-letters it (reason ``driver_bug``) so one bad payload never stalls ingest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.errors import InputError

# Reading kinds.
STATE = "state"  # the device's current values (contact, occupancy, battery, ...)
EVENT = "event"  # a momentary happening (button press, access denied); values name what happened
AVAILABILITY = "availability"  # values: {"online": bool}; from availability topics / LWT
BRIDGE = "bridge"  # ecosystem infrastructure (Zigbee2MQTT bridge state/devices, LoRaWAN gateway)

# The canonical value vocabulary. Drivers translate ecosystem names into these so the rules never
# care which ecosystem a sensor came from. Types are what the value holds after decoding.
CANONICAL_VALUES: dict[str, type | tuple[type, ...]] = {
    "contact": bool,  # True = closed (Zigbee2MQTT convention)
    "occupancy": bool,  # PIR / motion: True = motion seen
    "presence": bool,  # mmWave / radar presence
    "vehicle_present": bool,  # parking space occupied
    "vehicle_unknown": bool,  # a camera cannot tell whether the space is occupied (bad image, low confidence)
    "image_unusable": bool,  # a camera's frames have been unusable for a while (covered, fog, glare, frozen)
    "sos": bool,  # SOS / emergency button or pull cord pressed
    "fall": bool,  # fall detected
    "smoke": bool,
    "gas": bool,
    "water_leak": bool,
    "tamper": bool,
    "vibration": bool,
    "door_forced": bool,  # access controller: door opened without a valid credential
    "access_denied": bool,  # access controller: a credential was refused
    "access_granted": bool,
    "gate_fault": bool,  # barrier gate reports a fault
    "battery": (int, float),  # percent 0..100
    "battery_low": bool,
    "heart_rate": (int, float),  # beats per minute
    "breath_rate": (int, float),
    "spo2": (int, float),
    "temperature": (int, float),
    "humidity": (int, float),
    "online": bool,  # availability
    "linkquality": (int, float),
    "rssi": (int, float),
    "snr": (int, float),
    "voltage": (int, float),
}


@dataclass(frozen=True, slots=True)
class Reading:
    """One canonical reading.

    ``device`` is the ecosystem's stable address in lower case: an IEEE address
    (``0x00158d0001a2b3c4``), a LoRaWAN DevEUI (``70b3d57ed0051234``) or a native device id.
    When a Zigbee2MQTT message carries only the friendly name, ``device`` is ``name:<friendly>``
    and the pipeline resolves it (from ``zigbee2mqtt/bridge/devices`` and the config).
    ``ts_ms`` is the device's own time when the payload carried one, else None (the pipeline then
    uses the receive time; see the clock policy in the README).
    """

    device: str
    kind: str
    values: Mapping[str, Any]
    ts_ms: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)  # e.g. LoRaWAN gateway ids, fcnt


class DecodeError(InputError):
    """A payload this driver cannot turn into readings. ``reason`` is a short stable code."""

    code = "decode_error"

    REASONS = frozenset(
        {
            "malformed_json",  # not JSON / not UTF-8 text
            "too_deep",  # nesting beyond the limit (RecursionError from the parser)
            "wrong_type",  # a field has the wrong type
            "missing_field",  # a required field is absent or null
            "bad_value",  # right type, impossible value (battery 250 %, unknown enum)
            "binary",  # binary garbage where text was expected
            "unsupported",  # a valid message this driver does not handle (e.g. unknown fPort)
            "bad_topic",  # topic does not have the shape the driver expects
        }
    )

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown decode reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, str]]:
        # Keeps the error picklable/copyable (the default reduce passes only the message).
        return (type(self), (self.reason, self.detail))


MAX_JSON_DEPTH = 32


def _depth_ok(raw: str, limit: int) -> bool:
    """Cheap scan of bracket depth before parsing, so a 100,000-deep document is refused without
    touching the recursive parser. Strings are skipped so brackets inside them do not count."""
    depth = 0
    in_str = False
    esc = False
    for ch in raw:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


# Any: decoded JSON payloads; drivers check each value's type themselves
def parse_json(payload: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON payload or raise DecodeError with the precise reason."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("binary", f"payload is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    # Only scan when brackets could be deep; typical sensor payloads are < 1 KiB.
    if text.count("[") + text.count("{") > max_depth and not _depth_ok(text, max_depth):
        raise DecodeError("too_deep", f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError:
        raise DecodeError("too_deep", f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise DecodeError("malformed_json", str(exc)[:200]) from None


def parse_json_object(payload: bytes) -> dict[str, Any]:
    obj = parse_json(payload)
    if not isinstance(obj, dict):
        raise DecodeError("wrong_type", f"expected a JSON object, got {type(obj).__name__}")
    return obj


DecodeFn = Callable[[str, bytes], list[Reading]]
# (subscribed filter, normalised device address, friendly name or None) -> topic filters that
# carry this device's alarms; see DriverSpec.safety_topics.
SafetyTopicsFn = Callable[[str, str, str | None], tuple[str, ...]]


def filter_base(filter_: str) -> str:
    """The literal levels before the first wildcard: 'zigbee2mqtt/#' -> 'zigbee2mqtt',
    'edge/v1/devices/+/+' -> 'edge/v1/devices'."""
    parts = []
    for part in filter_.split("/"):
        if part in ("+", "#"):
            break
        parts.append(part)
    return "/".join(parts)


def no_safety_topics(filter_: str, address: str, friendly_name: str | None) -> tuple[str, ...]:
    """For drivers whose devices never raise life-safety alarms on a topic of their own."""
    return ()


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """One entry of the driver table (see drivers/__init__.py): everything the rest of the gateway
    needs to know about a driver, so no other module has to branch on driver names."""

    name: str
    decode: DecodeFn
    # Default MQTT topic filters this driver listens on; the site config may override them.
    default_topics: tuple[str, ...]
    # One line of help: which ecosystem and format the driver decodes, for whoever picks a driver
    # (docs/drivers.md mirrors it; the index test requires it).
    description: str
    # How a config device's address is normalised to match Reading.device (e.g. lower-case hex).
    normalise_address: Callable[[str], str] = field(default=lambda a: a.strip().lower())
    # What a config address must look like once stripped and lower-cased (full match; None = any
    # string), and the explanation the config loader shows when it does not.
    address_pattern: str | None = None
    address_help: str = ""
    # Topic filters the life-safety session subscribes to for one life-safety device, derived from
    # each filter the site subscribes this driver to. They must be narrow (one device) because
    # that session stores and acknowledges every message it receives before anything else.
    safety_topics: SafetyTopicsFn = no_safety_topics
    # For drivers whose topics start with a configurable base of any depth ('site1/z2m/#'): a
    # decode bound to that base. ``decode`` itself takes the first topic level as the base.
    decoder_for_base: Callable[[str], DecodeFn] | None = None
    # Topic filters, below the base of each subscribed filter, whose messages are large by nature
    # (Zigbee2MQTT's bridge/devices lists every device's full definition: hundreds of KB). The
    # config gives them a larger payload limit by default (ingest.payload_limits).
    bulk_topics: tuple[str, ...] = ()


# --- Shared value helpers (used by every driver; added with the driver table) -------------------

_BOOL_KEYS = frozenset(k for k, t in CANONICAL_VALUES.items() if t is bool)
_NUMERIC_KEYS = frozenset(k for k, t in CANONICAL_VALUES.items() if t is not bool)
# Plausibility ranges (inclusive). Outside -> "bad_value". Kept to quantities with hard bounds so
# an honest but slightly-off sensor (humidity 100.4 %) never loses a whole message.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "battery": (0, 100),
    "spo2": (0, 100),
    "linkquality": (0, 255),
}
# Any numeric beyond this magnitude is garbage (and would overflow float() downstream).
_NUM_LIMIT = 1e12
_MAX_NUMSTR = 32


def _num_from_str(key: str, raw: str) -> int | float:
    s = raw.strip()
    if not s or len(s) > _MAX_NUMSTR or "_" in s or not s.isascii():
        raise DecodeError("wrong_type", f"{key}: {raw[:40]!r} is not a number")
    try:
        return int(s)
    except ValueError:
        pass
    try:
        v = float(s)
    except ValueError:
        raise DecodeError("wrong_type", f"{key}: {raw[:40]!r} is not a number") from None
    if v != v or v in (math.inf, -math.inf):
        # float() accepts "nan"/"inf"/"1e999"; a text NaN is still not a usable reading.
        raise DecodeError("bad_value", f"{key}: non-finite number {raw[:40]!r}")
    return v


def coerce_value(key: str, raw: Any) -> Any:
    """Check and convert one value for canonical ``key``.

    Booleans: JSON true/false, or the strings "true"/"false" (any case) -> bool; anything else
    (0/1, "yes", null) -> wrong_type. Numerics: int/float (not bool), or a decimal string such as
    "87" or "21.5" (devices do send these) -> int/float; other strings and types -> wrong_type;
    NaN/Infinity, magnitude > 1e12 or outside :data:`VALUE_RANGES` -> bad_value.
    ``key`` must be a canonical key (KeyError otherwise: a driver bug, not a payload problem).
    """
    if key in _BOOL_KEYS:
        if raw is True or raw is False:
            return raw
        if type(raw) is str:
            low = raw.strip().lower()
            if low == "true":
                return True
            if low == "false":
                return False
        raise DecodeError("wrong_type", f"{key}: expected a boolean, got {_describe(raw)}")
    if key not in _NUMERIC_KEYS:
        raise KeyError(key)
    t = type(raw)
    if t is int or t is float:
        v = raw
        if not (-_NUM_LIMIT <= v <= _NUM_LIMIT):  # also False for NaN
            raise DecodeError("bad_value", f"{key}: {_describe(raw)} is not a plausible number")
    elif t is str:
        v = _num_from_str(key, raw)
        if not (-_NUM_LIMIT <= v <= _NUM_LIMIT):
            raise DecodeError("bad_value", f"{key}: {raw[:40]!r} is not a plausible number")
    else:
        raise DecodeError("wrong_type", f"{key}: expected a number, got {_describe(raw)}")
    rng = VALUE_RANGES.get(key)
    if rng is not None and not (rng[0] <= v <= rng[1]):
        raise DecodeError("bad_value", f"{key}: {v!r} outside {rng[0]}..{rng[1]}")
    return v


def _describe(raw: Any) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool | float) or (isinstance(raw, int) and -_NUM_LIMIT <= raw <= _NUM_LIMIT):
        return repr(raw)[:40]
    if isinstance(raw, int):
        return "a huge integer"
    if isinstance(raw, str):
        return repr(raw[:40])
    return type(raw).__name__


# 2000-01-01 .. 2100-01-01 in epoch ms: anything else is a unit mix-up (seconds) or garbage.
TS_MIN_MS = 946_684_800_000
TS_MAX_MS = 4_102_444_800_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_timestamp_ms(raw: Any, *, field_name: str = "ts") -> int:
    """Epoch milliseconds (JSON integer) or an RFC 3339 string with an offset (``Z`` or
    ``+hh:mm``; any number of fractional digits, ChirpStack sends nanoseconds) -> epoch ms.
    Wrong type -> wrong_type; unparsable, offset-less or outside 2000..2100 -> bad_value."""
    t = type(raw)
    if t is int:
        ms: int = raw
    elif t is str:
        if len(raw) > 64:
            raise DecodeError("bad_value", f"{field_name}: timestamp string too long")
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError:
            raise DecodeError("bad_value", f"{field_name}: {raw[:40]!r} is not RFC 3339") from None
        if dt.tzinfo is None or "T" not in raw.upper():
            raise DecodeError("bad_value", f"{field_name}: {raw[:40]!r} has no date-time/UTC offset")
        delta = dt - _EPOCH
        ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    else:
        raise DecodeError("wrong_type", f"{field_name}: expected epoch ms or RFC 3339, got {_describe(raw)}")
    if not (TS_MIN_MS <= ms <= TS_MAX_MS):
        raise DecodeError("bad_value", f"{field_name}: {ms} ms is outside 2000..2100")
    return ms
