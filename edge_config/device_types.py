"""The built-in device types and what the code knows about each: one row per type.

A row holds the type's built-in rule defaults (``BUILTIN_DEVICE_TYPES`` in
:mod:`edge_config.schema` is built from them; a site file's ``device_types`` may override those)
and the fixed facts the rules and the installer tools classify devices by. Those facts belong to
the built-in type name: a type defined only in a site file has none of them (see the queries at
the end), whatever its settings say.

This module imports nothing from the rest of the project, so both ``edge_config`` and
``gateway`` can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any, Literal

Category = Literal["parking", "security", "eldercare", "device_health"]

_MAINS = 600  # Zigbee2MQTT availability default for mains-powered ("active") devices: 10 min
_BATTERY = 90000  # ... and for battery ("passive") devices: 25 h. SOS buttons rely on their check-in.
_NONE: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DeviceTypeFacts:
    """One built-in device type."""

    name: str
    # Built-in defaults of edge_config.schema.DeviceTypeSettings (a site file may override them).
    category: Category
    life_safety: bool
    expected_interval_s: int | None  # None = no liveness check
    battery_low_pct: int | None  # None = mains powered
    # Further DeviceTypeSettings fields the built-in type sets explicitly.
    settings: Mapping[str, Any]
    # Facts of the type name itself, not overridable:
    counts_as_activity: bool = False  # a reading from it can show a resident is up (inactivity rule)
    is_door: bool = False  # a door contact: the door it watches can be opened by a resident (wandering)
    # Relative share of user-driven events (a door used, a car, an access) in simulated traffic;
    # 0 = the simulator sends it only check-ins and scenario events.
    sim_event_weight: float = 0.0


def _row(
    name: str,
    category: Category,
    life_safety: bool,
    interval: int | None,
    battery: int | None,
    settings: Mapping[str, Any] = _NONE,
    *,
    activity: bool = False,
    door: bool = False,
    sim: float = 0.0,
) -> DeviceTypeFacts:
    return DeviceTypeFacts(
        name=name,
        category=category,
        life_safety=life_safety,
        expected_interval_s=interval,
        battery_low_pct=battery,
        settings=MappingProxyType(dict(settings)),
        counts_as_activity=activity,
        is_door=door,
        sim_event_weight=sim,
    )


# Doors are used: each passage is two changes of the contact. At an entrance's evening peak that
# passed rules.flapping_max_changes (6 a minute), and a door flagged flapping raises no new incident
# meanwhile (wandering, intrusion); 20 a minute is beyond use and well below a bouncing contact.
_DOOR_LIMIT = {"door_open_max_s": 300, "flapping_max_changes": 20}

# name, category, life_safety, expected_interval_s, battery_low_pct[, further settings], facts
_ROWS = (
    _row("sos_button", "eldercare", True, _BATTERY, 20),
    _row("pull_cord", "eldercare", True, _BATTERY, 20),
    _row("fall_radar", "eldercare", True, _MAINS, None, activity=True),
    _row("presence_sensor", "eldercare", False, _MAINS, None, {"inactivity_hours": 6.0}, activity=True, sim=1.0),
    _row("motion_sensor", "security", False, _BATTERY, 20, activity=True, sim=2.0),
    _row("door_contact", "security", False, _BATTERY, 20, _DOOR_LIMIT, activity=True, door=True, sim=3.0),
    _row("exit_door_contact", "eldercare", False, _BATTERY, 20, _DOOR_LIMIT, activity=True, door=True, sim=1.0),
    _row("access_controller", "security", False, _MAINS, None, sim=3.0),
    _row("smoke_detector", "security", True, _BATTERY, 20),
    _row("gas_detector", "security", True, _MAINS, None),
    _row("water_leak", "security", False, _BATTERY, 20),
    _row("wearable", "eldercare", False, 1800, 20),
    _row("parking_sensor", "parking", False, _BATTERY, 20, sim=1.0),
    _row("barrier_gate", "parking", False, _MAINS, None, sim=2.0),
    _row("camera", "security", False, _MAINS, None, sim=1.5),
    _row("zigbee_router", "device_health", False, _MAINS, None),
    _row("plug", "device_health", False, _MAINS, None),
)

#: Built-in device type name -> its facts (the order of the rows above).
DEVICE_TYPES: Mapping[str, DeviceTypeFacts] = MappingProxyType({r.name: r for r in _ROWS})


# --- queries (type names defined only in a site file match none of them) -------------------------
@cache
def activity_types() -> frozenset[str]:
    """Types whose readings count as a resident's activity (motion, presence, doors used)."""
    return frozenset(n for n, f in DEVICE_TYPES.items() if f.counts_as_activity)


@cache
def door_types() -> frozenset[str]:
    """Door contacts."""
    return frozenset(n for n, f in DEVICE_TYPES.items() if f.is_door)


@cache
def sim_event_weights() -> Mapping[str, float]:
    """Types the simulator drives user events for -> relative weight."""
    return MappingProxyType({n: f.sim_event_weight for n, f in DEVICE_TYPES.items() if f.sim_event_weight > 0})
