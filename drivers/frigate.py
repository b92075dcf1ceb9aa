"""Frigate NVR events driver: ``frigate/events`` (Frigate 0.12-0.14 MQTT API), for sites that
already run Frigate on their cameras. Specification: docs/vision.md ("Frigate events driver").

Payload: ``{"type": "new" | "update" | "end", "before": {...}, "after": {...}}`` where each
object is a tracked object with ``id``, ``camera``, ``label``, ``false_positive``,
``current_zones``, ``entered_zones``, ``frame_time`` (epoch seconds, float), ``stationary``...

Readings (one per Frigate zone the object is in or just left; ``Reading.device`` is
``<camera>/<zone>`` lower-cased, so a config device ``{driver: frigate, address: lot_cam/fire_lane_1}``
is one parking space or one restricted zone):

* vehicles (``car``, ``truck``, ``bus``, ``motorcycle``): STATE ``{"vehicle_present": true}`` for
  every zone in ``after.current_zones``; ``false`` for zones in ``before.current_zones`` no longer
  current, and for all of the object's zones on ``end``.
* ``person``: STATE ``{"occupancy": true}`` likewise (``false`` when the person left / the event ended),
  so a zone device listed in ``rules.intrusion_zones`` raises an intrusion in armed hours.
* other labels (dog, bicycle...), ``false_positive: true`` objects, and objects in no zone -> ``[]``.

``meta``: ``{"event_id", "camera", "label", "zone", "score"?}``. ``ts_ms`` from ``after.frame_time``.
Errors: not JSON -> malformed_json; not an object / ``after`` not an object -> wrong_type;
``type``/``after``/``camera``/``label`` missing -> missing_field; unknown ``type`` -> bad_value;
other topics -> bad_topic.
"""

from __future__ import annotations

import math
import re
from typing import Any

from drivers.base import STATE, TS_MAX_MS, TS_MIN_MS, DecodeError, Reading, parse_json_object

NAME = "frigate"
TOPIC = "frigate/events"
VEHICLES = frozenset({"car", "truck", "bus", "motorcycle"})
PEOPLE = frozenset({"person"})
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_ZONES = 32


def normalise_address(address: str) -> str:
    return address.strip().lower()


def _name(obj: dict[str, Any], key: str) -> str:
    v = obj.get(key)
    if v is None:
        raise DecodeError("missing_field", f"after.{key} is missing")
    if not isinstance(v, str):
        raise DecodeError("wrong_type", f"after.{key} must be a string")
    if not _NAME_RE.fullmatch(v):
        raise DecodeError("bad_value", f"after.{key} is not a Frigate name")
    return v.lower()


# Any: a value of the decoded JSON payload
def _zones(obj: Any, key: str) -> list[str]:
    if not isinstance(obj, dict):
        return []
    v = obj.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise DecodeError("wrong_type", f"{key} must be a list of zone names")
    out: list[str] = []
    for z in v[:_MAX_ZONES]:
        if not isinstance(z, str):
            raise DecodeError("wrong_type", f"{key} must be a list of zone names")
        if not _NAME_RE.fullmatch(z):
            raise DecodeError("bad_value", f"{key}: {z[:40]!r} is not a Frigate zone name")
        if z.lower() not in out:
            out.append(z.lower())
    return out


def _ts(obj: dict[str, Any]) -> int | None:
    v = obj.get("frame_time")
    if not (type(v) is int or type(v) is float) or not math.isfinite(v):
        return None
    ms = int(float(v) * 1000)
    return ms if TS_MIN_MS <= ms <= TS_MAX_MS else None


def decode(topic: str, payload: bytes) -> list[Reading]:
    if topic != TOPIC:
        raise DecodeError("bad_topic", "the frigate driver handles frigate/events only")
    msg = parse_json_object(payload)
    typ = msg.get("type")
    if typ is None:
        raise DecodeError("missing_field", "type is missing")
    if typ not in ("new", "update", "end"):
        raise DecodeError("bad_value", f"type {str(typ)[:20]!r} is not new/update/end")
    after = msg.get("after")
    if after is None:
        raise DecodeError("missing_field", "after is missing")
    if not isinstance(after, dict):
        raise DecodeError("wrong_type", "after must be an object")
    before = msg.get("before")
    camera = _name(after, "camera")
    label = _name(after, "label")
    now = _zones(after, "current_zones")
    entered = _zones(after, "entered_zones")
    was = _zones(before, "current_zones")
    if label in VEHICLES:
        key = "vehicle_present"
    elif label in PEOPLE:
        key = "occupancy"
    else:
        return []
    if after.get("false_positive") is True:
        return []
    states: dict[str, bool]
    if typ == "end":
        states = dict.fromkeys([*now, *was, *entered], False)
    else:
        states = {**dict.fromkeys((z for z in was if z not in now), False), **dict.fromkeys(now, True)}
    ts = _ts(after)
    event_id = after.get("id")
    meta: dict[str, Any] = {"camera": camera, "label": label}
    if isinstance(event_id, str):
        meta["event_id"] = event_id[:64]
    score = after.get("top_score", after.get("score"))
    if (type(score) is int or type(score) is float) and math.isfinite(score):
        meta["score"] = round(float(score), 3)
    return [
        Reading(f"{camera}/{zone}", STATE, {key: present}, ts, {**meta, "zone": zone})
        for zone, present in states.items()
    ]
