"""Scripted scenarios for the simulator (``edge-gateway simulate --scenario NAME``).

A scenario picks its devices from the site config (the first device that fits, deterministic) and
returns timed steps in the devices' own formats (gateway/install/traffic.py). While it runs it can *pin* a
device's state (a propped door keeps reporting ``contact: false``; the car stays on the fire lane)
and *silence* devices (a building without power sends nothing more), so the simulator's ordinary
traffic never contradicts it.

| name | what happens | incident expected |
| --- | --- | --- |
| fall_night | an elderly resident's fall radar reports a fall at 03:00 (no motion afterwards) | fall |
| fire_lane | a car parks on a fire-lane space and stays | parking_fire_lane |
| door_propped | a building entrance door is propped open and stays open | door_held_open |
| power_loss | a building loses power: its devices' availability goes offline, then silence | building_offline |
| sos | an elderly resident presses the SOS button | sos |
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.errors import ConfigProblem
from gateway.install import traffic
from gateway.install.traffic import SimDevice

if TYPE_CHECKING:
    from edge_config import Device, SiteConfig


@dataclass(frozen=True)
class Step:
    at_s: float  # seconds after the scenario starts
    topic: str
    payload: bytes
    note: str = ""


@dataclass
class Planned:
    name: str
    title: str
    sim_time: str | None  # "HH:MM" the scenario belongs to (the simulated clock starts there)
    steps: list[Step]
    expect: list[str]  # incident types it must raise
    devices: list[str]
    pinned: dict[str, dict[str, Any]] = field(default_factory=dict)  # device id -> values it keeps reporting
    silenced: set[str] = field(default_factory=set)  # device ids that stop reporting
    pin_at_s: float = 0.0  # pins/silence apply from this offset on


class ScenarioUnavailable(ConfigProblem):
    """The config has no device that fits this scenario."""

    code = "scenario_unavailable"


def _sim(d: Device) -> SimDevice:
    return SimDevice(d.id, d.driver, d.address, d.friendly_name, d.type)


def _devices(cfg: SiteConfig, exclude: set[str]) -> list[Any]:
    return [d for d in cfg.owned_devices() if d.id not in exclude]


def _building_of(cfg: SiteConfig, d: Device) -> str | None:
    if d.location.building:
        return str(d.location.building)
    if d.resident:
        r = cfg.resident(d.resident)
        return str(r.building) if r is not None else None
    return None


def fall_night(cfg: SiteConfig, rng: random.Random, exclude: set[str]) -> Planned:
    radars = [d for d in _devices(cfg, exclude) if d.type == "fall_radar"]
    if not radars:
        raise ScenarioUnavailable("no fall_radar device in the config")
    radar = radars[0]
    home = [
        d
        for d in _devices(cfg, exclude)
        if radar.resident and d.resident == radar.resident and d.type in ("motion_sensor", "presence_sensor")
    ]
    sd = _sim(radar)
    steps = [
        Step(
            0.0, *traffic.device_state(sd, {"presence": True, "breath_rate": rng.randint(13, 18)}), "radar: someone up"
        ),
        Step(1.0, *traffic.event(sd, "fall"), "radar: FALL"),
        Step(
            3.0,
            *traffic.device_state(sd, {"presence": True, "breath_rate": rng.randint(20, 26)}),
            "radar: on the floor",
        ),
    ]
    pinned = {radar.id: {"presence": True, "breath_rate": 22}}
    pinned.update({d.id: ({"occupancy": False} if d.type == "motion_sensor" else {"presence": True}) for d in home})
    return Planned(
        "fall_night",
        "老人夜间跌倒 / an elderly resident falls at 03:00",
        "03:00",
        steps,
        ["fall"],
        [radar.id, *(d.id for d in home)],
        pinned=pinned,
    )


def fire_lane(cfg: SiteConfig, rng: random.Random, exclude: set[str]) -> Planned:
    for d in _devices(cfg, exclude):
        if d.type != "parking_sensor" or not d.location.parking_space:
            continue
        found = cfg.parking_space(d.location.parking_space)
        if found is not None and found[1].kind == "fire_lane":
            sd = _sim(d)
            return Planned(
                "fire_lane",
                "消防通道占用 / a car parks in the fire lane",
                None,
                [Step(0.0, *traffic.device_state(sd, {"vehicle_present": True}, rng), "fire lane: car arrives")],
                ["parking_fire_lane"],
                [d.id],
                pinned={d.id: {"vehicle_present": True}},
            )
    raise ScenarioUnavailable("no parking_sensor on a fire_lane space in the config")


def door_propped(cfg: SiteConfig, rng: random.Random, exclude: set[str]) -> Planned:
    doors = [d for d in _devices(cfg, exclude) if d.type == "door_contact" and not d.location.room]
    if not doors:
        raise ScenarioUnavailable("no door_contact (outside homes) in the config")
    d = doors[0]
    sd = _sim(d)
    return Planned(
        "door_propped",
        "单元门被撑开 / a door is propped open",
        None,
        [
            Step(
                0.0,
                *traffic.device_state(sd, {"contact": False, "battery": rng.randint(60, 100)}),
                "door opened, propped",
            )
        ],
        ["door_held_open"],
        [d.id],
        pinned={d.id: {"contact": False}},
    )


def power_loss(cfg: SiteConfig, rng: random.Random, exclude: set[str]) -> Planned:
    by_building: dict[str, list[Any]] = {}
    busy = {_building_of(cfg, d) for d in cfg.owned_devices() if d.id in exclude}
    for d in _devices(cfg, exclude):
        b = _building_of(cfg, d)
        if b is None or b in busy or not cfg.device_settings(d).expected_interval_s:
            continue
        if d.driver == "chirpstack":  # LoRaWAN sensors have no availability topic (battery: unaffected)
            continue
        by_building.setdefault(b, []).append(d)
    if not by_building:
        raise ScenarioUnavailable("no building with devices that report availability")
    building, members = max(by_building.items(), key=lambda kv: (len(kv[1]), kv[0]))
    steps: list[Step] = []
    for i, d in enumerate(members):
        sd = _sim(d)
        at = 0.2 + 2.0 * i / max(1, len(members))
        if d.driver == "zigbee2mqtt":
            # Zigbee2MQTT marks the building's devices offline once their routers lost power.
            steps.append(Step(at, *traffic.availability(sd, False), f"{d.id} offline"))
        else:
            steps.append(Step(at, *traffic.native_lwt(sd), f"{d.id} last will"))
    return Planned(
        "power_loss",
        f"楼栋停电 / building {building} loses power",
        None,
        steps,
        ["building_offline"],
        [d.id for d in members],
        silenced={d.id for d in members},
    )


def sos(cfg: SiteConfig, rng: random.Random, exclude: set[str]) -> Planned:
    buttons = [d for d in _devices(cfg, exclude) if d.type in ("sos_button", "pull_cord")]
    if not buttons:
        raise ScenarioUnavailable("no sos_button / pull_cord in the config")
    sd = _sim(buttons[0])
    return Planned(
        "sos",
        "老人按下紧急按钮 / an elderly resident presses SOS",
        None,
        [Step(0.0, *traffic.sos_press(sd, rng), "SOS pressed")],
        ["sos"],
        [buttons[0].id],
    )


SCENARIOS: dict[str, Callable[[Any, random.Random, set[str]], Planned]] = {
    "fall_night": fall_night,
    "fire_lane": fire_lane,
    "door_propped": door_propped,
    "power_loss": power_loss,
    "sos": sos,
}
#: The demo's schedule: the issue's four scenarios within the first minute.
DEMO_SCENARIOS = ("fire_lane", "door_propped", "fall_night", "power_loss")


def plan(cfg: SiteConfig, names: list[str], rng: random.Random) -> list[Planned]:
    """Plan the named scenarios on distinct devices (power_loss avoids the others' buildings)."""
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ScenarioUnavailable(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    used: set[str] = set()
    out: list[Planned] = []
    # power_loss last, so it can pick a building none of the others uses
    for name in sorted(names, key=lambda n: n == "power_loss"):
        p = SCENARIOS[name](cfg, rng, used)
        used.update(p.devices)
        out.append(p)
    order = {n: i for i, n in enumerate(names)}
    return sorted(out, key=lambda p: order[p.name])
