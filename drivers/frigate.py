"""Frigate NVR driver, for sites that already run Frigate on their cameras (Frigate 0.12-0.14+
MQTT API, docs.frigate.video/integrations/mqtt). Specification: docs/vision.md ("Frigate driver").
``<prefix>`` is the topic's first level (``frigate`` by default; Frigate's ``mqtt.topic_prefix``).

Three kinds of topic, each with its own device address:

* ``<prefix>/events`` (tracked objects): ``{"type": "new" | "update" | "end", "before": {...},
  "after": {...}}``, each object with ``id``, ``camera``, ``label``, ``false_positive``,
  ``current_zones``, ``entered_zones``, ``frame_time`` (epoch seconds, float) ... One STATE reading
  per Frigate zone the object is in or just left, ``Reading.device`` = ``<camera>/<zone>``:
  vehicles (``car``, ``truck``, ``bus``, ``motorcycle``) -> ``{"vehicle_present": true}`` for every
  zone in ``after.current_zones``, ``false`` for zones of ``before.current_zones`` no longer current
  and for all of the object's zones on ``end``; ``person`` -> ``{"occupancy": ...}`` likewise.
  Other labels, ``false_positive: true`` objects and objects in no zone -> ``[]``.
  ``meta``: ``{"event_id", "camera", "label", "zone", "score"?}``; ``ts_ms`` from ``after.frame_time``.
* ``<prefix>/<zone>/<object>`` and ``<prefix>/<camera>/<object>`` (object counts, the simplest
  occupancy signal): the payload is the count, a plain integer. ``car`` -> STATE
  ``{"vehicle_present": count > 0}``, ``person`` -> ``{"occupancy": count > 0}``, device = the
  zone's (or camera's) name; ``meta``: ``{"label", "count"}``. Only ``car`` counts for vehicles:
  each label has its own topic, so a ``truck`` count of 0 would clear a zone a car still fills.
  ``all``, other labels, ``<camera>/motion`` and the like -> ``[]``.
* ``<prefix>/reviews`` (Frigate 0.14+ review items, the alerts and detections Frigate would
  notify about): a review lists its camera's zones and objects so far, not which object is in
  which zone. When ``person`` is among ``after.data.objects``, each zone of ``after.data.zones``
  that is new to the review (all of them on ``new``, or when the person is new) gets an EVENT
  ``{"occupancy": true}`` on ``<camera>/<zone>``, so an intrusion zone alarms; ``end`` and reviews
  without a person -> ``[]`` (an EVENT changes no state: a car that stays after the review ends is
  still there). ``meta``: ``{"review_id", "camera", "severity", "zone"}``.

Every other topic under the prefix (``available``, ``stats``, ``<camera>/<object>/snapshot``,
``<zone>/<object>/active``, ...) -> ``[]``. Errors: not JSON -> malformed_json; not an object /
``after`` not an object -> wrong_type; ``type``/``after``/``camera``/``label``/``data`` missing ->
missing_field; unknown ``type``, a name that is not a Frigate name, a negative count -> bad_value;
a count that is not an integer -> wrong_type; a topic with no level after the prefix -> bad_topic.
"""

from __future__ import annotations

import math
import re
from typing import Any

from drivers.base import EVENT, STATE, TS_MAX_MS, TS_MIN_MS, DecodeError, Reading, parse_json, parse_json_object

NAME = "frigate"
DEFAULT_PREFIX = "frigate"
# Per count topic: the object label and the value its count > 0 sets.
COUNTED = {"car": "vehicle_present", "person": "occupancy"}
MAX_COUNT = 10_000
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
    levels = topic.split("/")
    if len(levels) < 2 or not levels[0] or not levels[1]:
        raise DecodeError("bad_topic", f"{topic[:80]!r} is not a Frigate topic <prefix>/...")
    if len(levels) == 2:
        if levels[1] == "events":
            return _event(*_envelope(payload))
        if levels[1] == "reviews":
            return _review(*_envelope(payload))
        return []  # available, stats, camera_activity, ...
    if len(levels) == 3 and levels[2] in COUNTED:
        return _count(levels[1], levels[2], payload)
    return []  # <name>/all, <camera>/motion, <camera>/<object>/snapshot, <zone>/<object>/active, ...


# Any: the decoded JSON payload's objects
def _envelope(payload: bytes) -> tuple[str, dict[str, Any], Any]:
    """The ``{"type", "before", "after"}`` envelope events and reviews share."""
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
    return typ, after, msg.get("before")


def _count(name: str, label: str, payload: bytes) -> list[Reading]:
    if not _NAME_RE.fullmatch(name):
        raise DecodeError("bad_topic", f"{name[:40]!r} is not a Frigate zone or camera name")
    n = parse_json(payload)  # Frigate publishes the count as a plain integer: b"2"
    if type(n) is not int:
        raise DecodeError("wrong_type", f"{label} count: expected an integer")
    if not 0 <= n <= MAX_COUNT:
        raise DecodeError("bad_value", f"{label} count {n} out of range")
    return [Reading(name.lower(), STATE, {COUNTED[label]: n > 0}, None, {"label": label, "count": n})]


# Any: the decoded JSON payload's objects
def _review(typ: str, after: dict[str, Any], before: Any) -> list[Reading]:
    camera = _name(after, "camera")
    data = after.get("data")
    if data is None:
        raise DecodeError("missing_field", "after.data is missing")
    if not isinstance(data, dict):
        raise DecodeError("wrong_type", "after.data must be an object")
    zones = _zones(data, "zones")
    objects = data.get("objects")
    if objects is not None and not isinstance(objects, list):
        raise DecodeError("wrong_type", "data.objects must be a list of labels")
    if typ == "end" or "person" not in (objects or ()):
        return []
    old = before.get("data") if isinstance(before, dict) else None
    if typ == "update" and isinstance(old, dict) and "person" in (old.get("objects") or ()):
        seen = _zones(old, "zones")
        zones = [z for z in zones if z not in seen]  # only the zones the person newly reached
    meta: dict[str, Any] = {"camera": camera}
    if after.get("severity") in ("alert", "detection"):
        meta["severity"] = after["severity"]
    review_id = after.get("id")
    if isinstance(review_id, str):
        meta["review_id"] = review_id[:64]
    return [Reading(f"{camera}/{z}", EVENT, {"occupancy": True}, None, {**meta, "zone": z}) for z in zones]


# Any: the decoded JSON payload's objects
def _event(typ: str, after: dict[str, Any], before: Any) -> list[Reading]:
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
