"""Config of the incident rules (section ``rules``); see docs/rules.md.

Per-type and per-device thresholds (door_open_max_s, battery_low_pct, heart rate, ...) live in
``device_types`` / ``devices[].overrides`` (:class:`edge_config.schema.DeviceTypeSettings`);
per-resident ones on the resident (``inactivity_hours``, ``active_hours``, ``flags``). This
section holds the site-wide rule settings and the intrusion zones.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

_Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class ArmedWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: dt.time = Field(description='Start of the armed period, quoted "HH:MM" (site time zone).')
    end: dt.time = Field(description='End of the armed period, quoted "HH:MM"; before start = past midnight.')
    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7],
        description="ISO weekdays (1 = Monday) on which the period starts.",
    )


class IntrusionZone(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: _Id = Field(description="Zone id (the incident's group key).")
    name: str = Field(default="", max_length=100, description="Display name, e.g. '配电房'.")
    devices: list[_Id] = Field(min_length=1, description="Device ids (motion, presence, door contacts) in the zone.")
    armed: list[ArmedWindow] = Field(min_length=1, description="When the zone is armed; outside these, no alarms.")
    severity: str = Field(default="major", pattern="^(critical|major|minor|warning)$", description="Severity.")


class RulesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Run the incident rules (false = ingest only).")
    clear_hold_s: int = Field(
        default=30, ge=0, le=3600, description="A condition must stay recovered this long before auto-clear."
    )
    flapping_window_s: int = Field(default=60, ge=1, description="Window for flapping detection, seconds.")
    flapping_max_changes: int = Field(
        default=6,
        ge=2,
        description="A sensor value changing this often within flapping_window_s is flapping: no new incidents "
        "from it (one sensor_flapping notice instead) until it settles. A device type may set its own "
        "(device_types.<type>.flapping_max_changes; the built-in door types: 20).",
    )
    offline_hold_s: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="Hold before a per-device offline incident, so a group (bridge, building) can form first.",
    )
    group_window_s: int = Field(
        default=120, ge=1, description="Devices going offline within this window count together for grouping."
    )
    group_min_devices: int = Field(
        default=5, ge=2, description="At least this many devices of one building/compound for a grouped incident."
    )
    group_fraction: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="... and at least this fraction of the building's/compound's devices with a liveness check.",
    )
    lorawan_gateway_silent_s: int = Field(
        default=1800, ge=60, description="A LoRaWAN gateway not seen in uplinks for this long is silent."
    )
    life_safety_merge_s: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="A life-safety alarm (sos, fall, smoke, gas) from a device of a resident whose other device "
        "raised the same type within this many seconds (of that incident's first to last trigger) counts on that "
        "open incident - one person, one alarm, one dispatch - instead of opening its own. 0 = one incident per "
        "device.",
    )
    fall_no_motion_s: int = Field(
        default=120, ge=10, description="A fall followed by no motion for this long raises the fall to critical."
    )
    clock_step_s: int = Field(
        default=120, ge=10, description="A wall-clock jump larger than this (vs the monotonic clock) is a step."
    )
    startup_grace_s: int = Field(
        default=15,
        ge=0,
        le=600,
        description="After start, timers that fell due while the gateway was down wait this long so the "
        "broker's queued messages (a door closed meanwhile) are processed first.",
    )
    max_timers_per_tick: int = Field(
        default=200, ge=1, description="At most this many timers fire per second (no bursts)."
    )
    intrusion_zones: list[IntrusionZone] = Field(
        default_factory=list, description="Areas where motion/opening is an intrusion in armed hours."
    )
