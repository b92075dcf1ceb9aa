"""ChirpStack v4 (LoRaWAN network server) MQTT integration driver.

Source format: ChirpStack v4 MQTT integration with the default ``json`` marshaler; messages are
the protobuf ``integration.UplinkEvent`` / ``integration.StatusEvent`` in proto3 JSON mapping
(camelCase keys; fields at their default value - 0, false, "" - may be omitted, so an absent
``fCnt`` is 0 and an absent ``batteryLevel`` is 0.0). See
https://www.chirpstack.io/docs/chirpstack/integrations/events.html

Topic: ``application/<application_id>/device/<dev_eui>/event/<type>``.

* ``up``: ``{deduplicationId, time, deviceInfo{tenantId, tenantName, applicationId,
  applicationName, deviceProfileId, deviceProfileName, deviceName, devEui, tags}, devAddr, adr,
  dr, fCnt, fPort, confirmed, data (base64), object (codec output, optional),
  rxInfo[{gatewayId, uplinkId, rssi, snr, ...}], txInfo{frequency, modulation}}``
  -> one STATE reading.
* ``status``: ``{deduplicationId, time, deviceInfo, margin, externalPowerSource,
  batteryLevelUnavailable, batteryLevel}`` -> STATE ``{"battery": batteryLevel}``; ``[]`` when the
  device is mains powered or cannot measure its battery.
* ``join``, ``ack``, ``txack``, ``log``, ``location``, ``integration`` -> ``[]``; any other
  event type -> unsupported.

Device key: ``deviceInfo.devEui`` lower-case; it must equal the topic's DevEUI (else bad_topic).
``ts_ms`` from ``time`` (RFC 3339, nanoseconds). ``meta``: ``fcnt``, ``fport``,
``gateway_ids`` (list, rxInfo order, de-duplicated; for gateway-silence detection), best
``rssi`` and ``snr`` over the receiving gateways, ``dedup_id`` (``deduplicationId``), and for
the parking byte decoder ``heartbeat`` and ``mag_delta``. Status events put ``margin`` in meta.

Values of an uplink with ``object`` (codec already ran in ChirpStack): every key that is a
canonical name (``vehicle_present``, ``battery``, ``temperature``, ``tamper``, ...) except the
radio ones, plus these common codec aliases: ``occupied`` -> vehicle_present;
``parking_status``/``parkingStatus`` (``"occupied"``/``"busy"`` -> True,
``"free"``/``"vacant"``/``"empty"`` -> False, or a bool) -> vehicle_present;
``batteryLevel``/``battery_level`` -> battery (percent!); ``batteryVoltage``/``battery_voltage``
-> voltage. Other keys are ignored (if none maps, ``meta["unmapped_keys"]`` lists them so
the reading is not silently empty). Codecs must report battery in percent under these names;
a codec putting volts in ``battery`` produces wrong data. Then ``rssi``/``snr`` (best gateway)
are added. Without ``object``: fPort 2 is decoded from ``data`` by :mod:`drivers.parking_codec`
(missing ``data`` -> missing_field, invalid base64 -> bad_value); other fPorts -> unsupported.
"""

from __future__ import annotations

import binascii
from typing import Any

from drivers import parking_codec
from drivers.base import (
    CANONICAL_VALUES,
    STATE,
    DecodeError,
    Reading,
    coerce_value,
    parse_json_object,
    parse_timestamp_ms,
)

NAME = "chirpstack"
_IGNORED_EVENTS = frozenset({"join", "ack", "txack", "log", "location", "integration"})
_HEX = frozenset("0123456789abcdef")

_OBJECT_FIELDS: dict[str, str] = {k: k for k in CANONICAL_VALUES if k not in ("online", "rssi", "snr")}
_OBJECT_FIELDS.update(
    {
        "occupied": "vehicle_present",
        "batteryLevel": "battery",
        "battery_level": "battery",
        "batteryVoltage": "voltage",
        "battery_voltage": "voltage",
    }
)
_PARKING_STATUS_FIELDS = frozenset({"parking_status", "parkingStatus"})
_PARKING_STATUS = {"occupied": True, "busy": True, "free": False, "vacant": False, "empty": False}
_MAX_ID = 128


def normalise_address(address: str) -> str:
    """DevEUI in any usual spelling (``70-B3-D5-7E-...``, ``70:b3:...``) -> 16 lower-case hex."""
    return address.strip().lower().replace("-", "").replace(":", "").replace(" ", "")


def safety_topics(filter_: str, address: str, friendly_name: str | None) -> tuple[str, ...]:
    """Alarms arrive in uplinks only, so only a subscribed ``.../event/up`` filter gives the device's
    uplink topic (any application id)."""
    if filter_.endswith("/event/up"):
        return (f"application/+/device/{address}/event/up",)
    return ()


def decode(topic: str, payload: bytes) -> list[Reading]:
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "application" or parts[2] != "device" or parts[4] != "event":
        raise DecodeError("bad_topic", f"{topic[:120]!r} is not application/<id>/device/<eui>/event/<type>")
    eui = parts[3].lower()
    if len(eui) != 16 or not _HEX.issuperset(eui) or not parts[1]:
        raise DecodeError("bad_topic", f"{topic[:120]!r}: bad application id or DevEUI")
    event = parts[5]
    if event == "up":
        return _uplink(eui, parse_json_object(payload))
    if event == "status":
        return _status(eui, parse_json_object(payload))
    if event in _IGNORED_EVENTS:
        return []
    raise DecodeError("unsupported", f"ChirpStack event type {event[:40]!r}")


def _device_eui(obj: dict[str, Any], topic_eui: str) -> str:
    info = obj.get("deviceInfo")
    if info is None:
        raise DecodeError("missing_field", "deviceInfo")
    if not isinstance(info, dict):
        raise DecodeError("wrong_type", "deviceInfo: expected an object")
    eui = info.get("devEui")
    if eui is None:
        raise DecodeError("missing_field", "deviceInfo.devEui")
    if not isinstance(eui, str):
        raise DecodeError("wrong_type", "deviceInfo.devEui: expected a string")
    if eui.lower() != topic_eui:
        raise DecodeError("bad_topic", f"topic DevEUI {topic_eui} != payload devEui {eui[:40]!r}")
    return topic_eui


def _ts(obj: dict[str, Any]) -> int | None:
    t = obj.get("time")
    return None if t is None else parse_timestamp_ms(t, field_name="time")


def _int_field(obj: dict[str, Any], key: str, hi: int) -> int:
    v = obj.get(key)
    if v is None:
        return 0  # proto3 JSON omits defaults
    if type(v) is not int:
        raise DecodeError("wrong_type", f"{key}: expected an integer")
    if not 0 <= v <= hi:
        raise DecodeError("bad_value", f"{key}: {v} outside 0..{hi}")
    return v


def _uplink(topic_eui: str, obj: dict[str, Any]) -> list[Reading]:
    device = _device_eui(obj, topic_eui)
    ts_ms = _ts(obj)
    fport = _int_field(obj, "fPort", 255)
    meta: dict[str, Any] = {"fcnt": _int_field(obj, "fCnt", 0xFFFFFFFF), "fport": fport}
    dedup = obj.get("deduplicationId")
    if type(dedup) is str and len(dedup) <= _MAX_ID:
        meta["dedup_id"] = dedup

    # Radio: gateway ids and best rssi / snr.
    gateway_ids: list[str] = []
    rssi: Any = None
    snr: Any = None
    rx = obj.get("rxInfo")
    if rx is not None:
        if not isinstance(rx, list):
            raise DecodeError("wrong_type", "rxInfo: expected an array")
        for item in rx:
            if not isinstance(item, dict):
                raise DecodeError("wrong_type", "rxInfo entry: expected an object")
            gw = item.get("gatewayId")
            if gw is not None:
                if not isinstance(gw, str) or len(gw) > _MAX_ID:
                    raise DecodeError("wrong_type", "rxInfo.gatewayId: expected a string")
                gw = gw.lower()
                if gw not in gateway_ids:
                    gateway_ids.append(gw)
            r = item.get("rssi")
            if r is not None:
                r = coerce_value("rssi", r)
                if rssi is None or r > rssi:
                    rssi = r
            s = item.get("snr")
            if s is not None:
                s = coerce_value("snr", s)
                if snr is None or s > snr:
                    snr = s
    meta["gateway_ids"] = gateway_ids

    decoded = obj.get("object")
    if decoded is not None:
        if not isinstance(decoded, dict):
            raise DecodeError("wrong_type", "object: expected a JSON object")
        values = _map_object(decoded)
        if not values and decoded:
            meta["unmapped_keys"] = sorted(decoded)[:32]
    elif fport == parking_codec.STATUS_FPORT:
        values, extra = parking_codec.decode_status(_b64(obj.get("data")))
        meta.update(extra)
    else:
        raise DecodeError("unsupported", f"fPort {fport} without a decoded object")

    if rssi is not None:
        values["rssi"] = rssi
        meta["rssi"] = rssi
    if snr is not None:
        values["snr"] = snr
        meta["snr"] = snr
    return [Reading(device, STATE, values, ts_ms, meta)]


# Any: a value of the decoded JSON payload
def _b64(data: Any) -> bytes:
    if data is None:
        raise DecodeError("missing_field", "data")
    if not isinstance(data, str):
        raise DecodeError("wrong_type", "data: expected a base64 string")
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise DecodeError("bad_value", "data: invalid base64") from None


def _map_object(decoded: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    fields = _OBJECT_FIELDS
    for key, raw in decoded.items():
        canon = fields.get(key)
        if canon is not None:
            if raw is not None:
                values[canon] = coerce_value(canon, raw)
        elif key in _PARKING_STATUS_FIELDS and raw is not None:
            if raw is True or raw is False:
                values["vehicle_present"] = raw
            elif isinstance(raw, str) and raw.lower() in _PARKING_STATUS:
                values["vehicle_present"] = _PARKING_STATUS[raw.lower()]
            elif isinstance(raw, str):
                raise DecodeError("bad_value", f"{key}: unknown value {raw[:40]!r}")
            else:
                raise DecodeError("wrong_type", f"{key}: expected a string or boolean")
    return values


def _status(topic_eui: str, obj: dict[str, Any]) -> list[Reading]:
    device = _device_eui(obj, topic_eui)
    ts_ms = _ts(obj)
    flags: dict[str, bool] = {}
    for key in ("externalPowerSource", "batteryLevelUnavailable"):
        v = obj.get(key, False)
        if v is None:
            v = False
        if v is not True and v is not False:
            raise DecodeError("wrong_type", f"{key}: expected a boolean")
        flags[key] = v
    meta: dict[str, Any] = {}
    margin = obj.get("margin")
    if margin is not None:
        if type(margin) is not int:
            raise DecodeError("wrong_type", "margin: expected an integer")
        if not -128 <= margin <= 127:
            raise DecodeError("bad_value", f"margin: {margin if -1e6 < margin < 1e6 else '...'} dB")
        meta["margin"] = margin
    if flags["externalPowerSource"] or flags["batteryLevelUnavailable"]:
        return []
    level = obj.get("batteryLevel")
    battery = coerce_value("battery", 0 if level is None else level)
    return [Reading(device, STATE, {"battery": battery}, ts_ms, meta)]
