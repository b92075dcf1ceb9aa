"""Every timer-based rule across a restart: close the store, open a new Pipeline/RuleEngine on the
same file (fresh memory, new monotonic origin), move the clock on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_config import load_config
from tests.rules_harness import T0, Harness, write_rules_site

H = 3600


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_config(write_rules_site(tmp_path_factory.mktemp("site")))


@pytest.fixture
def h(cfg: Any, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, cfg)
    yield harness
    harness.close()


def types(h: Harness) -> list[tuple[str, str]]:
    return sorted((i["type"], i["state"]) for i in h.incidents())


def test_door_open_since_1000_raises_at_1005_despite_restart_at_1002(h: Harness) -> None:
    h.at(0)
    h.send("door-b1", "state", {"contact": False})
    h.at(100)
    h.restart(T0 + 120_000)
    h.at(121)
    h.at(299)
    assert types(h) == []
    h.at(301)
    [i] = h.incidents()
    assert i["type"] == "door_held_open" and i["first_ms"] == T0 + 300_000


def test_door_closed_while_gateway_down_raises_nothing(h: Harness) -> None:
    """The close was queued by the broker (persistent session) and arrives after the restart;
    the overdue timer waits for the start-up grace, so the close cancels it."""
    h.at(0)
    h.send("door-b1", "state", {"contact": False})
    h.restart(T0 + 600_000)  # down from 10:00 to 10:10; due was 10:05
    h.at(601)  # first tick after start: overdue timer held (grace)
    h.send("door-b1", "state", {"contact": True})  # Zigbee2MQTT has no device time: rx time
    h.at(640)
    assert types(h) == []


def test_door_still_open_after_downtime_raises_after_grace_with_due_time(h: Harness) -> None:
    h.at(0)
    h.send("door-b1", "state", {"contact": False})
    h.restart(T0 + 600_000)
    h.at(601)
    assert types(h) == []
    h.at(620)  # grace (15 s) over
    [i] = h.incidents()
    assert i["type"] == "door_held_open" and i["first_ms"] == T0 + 300_000


def test_device_time_close_before_due_cancels_even_when_late(h: Harness) -> None:
    h.at(0)
    h.publish("edge/v1/devices/acc-b2/state", json.dumps({"ts": T0, "values": {"contact": False}}).encode())
    h.restart(T0 + 250_000)
    h.at(251)
    h.publish("edge/v1/devices/acc-b2/state", json.dumps({"ts": T0 + 200_000, "values": {"contact": True}}).encode())
    h.at(400)
    assert types(h) == []


@pytest.mark.parametrize(
    ("dev", "limit_s", "typ"),
    [
        ("park-fire", 180, "parking_fire_lane"),
        ("park-np", 600, "parking_no_parking"),
        ("park-01", 1800, "parking_overstay"),
    ],
)
def test_parking_timers_survive_restart(h: Harness, dev: str, limit_s: int, typ: str) -> None:
    h.at(0)
    h.send(dev, "state", {"vehicle_present": True})
    h.restart(T0 + limit_s * 500)
    h.at(limit_s - 5)
    assert types(h) == []
    h.at(limit_s + 1)
    assert types(h) == [(typ, "new")]


def test_inactivity_window_survives_restart_and_is_not_rearmed(h: Harness) -> None:
    h.at(0)
    h.send("pir-r1", "state", {"occupancy": True})
    h.restart(T0 + H * 1000)
    h.at(H + 1)
    h.at(2 * H - 5)
    assert types(h) == []
    h.at(2 * H + 1)  # 2 h after the last motion, not 2 h after the restart
    assert types(h) == [("inactivity", "new")]


def test_offline_hold_survives_restart(h: Harness) -> None:
    h.at(0)
    h.send("door-b1", "avail", False)
    h.restart(T0 + 10_000)
    h.at(11)
    assert types(h) == []
    h.at(31)
    assert types(h) == [("device_offline", "new")]


def test_fall_no_motion_timer_survives_restart(h: Harness) -> None:
    h.at(0)
    h.send("fall-r1", "event", "fall")
    h.restart(T0 + 60_000)
    h.at(61)
    h.at(121)
    [i] = h.incidents()
    assert (i["type"], i["severity"]) == ("fall", "critical")


def test_auto_clear_hold_survives_restart(h: Harness) -> None:
    h.at(0)
    h.send("leak-b1", "state", {"water_leak": True})
    h.at(10)
    h.send("leak-b1", "state", {"water_leak": False})
    h.restart(T0 + 20_000)
    h.at(21)
    h.at(41)
    assert types(h) == [("water_leak", "resolved")]


def test_lorawan_gateway_last_seen_survives_restart(h: Harness) -> None:
    h.at(0)
    h.send("park-01", "state", {"vehicle_present": False})
    h.at(100)
    h.restart(T0 + 200_000)
    h.at(201)
    h.at(3000)
    assert types(h) == []
    h.at(3615)
    assert types(h) == [("lorawan_gateway_silent", "new")]


def test_open_incident_survives_restart_repeats_count(h: Harness) -> None:
    h.at(0)
    h.send("sos-r1", "sos")
    h.restart(T0 + 5_000)
    h.at(6)
    h.send("sos-r1", "sos")
    [i] = h.incidents()
    assert i["count"] == 2


def test_clock_behind_after_reboot_keeps_remaining_time(h: Harness) -> None:
    """A Pi without RTC reboots a day in the past: stored timers keep their remaining time
    instead of firing a day late (or all at once when NTP fixes the clock)."""
    h.at(0)
    h.send("door-b1", "state", {"contact": False})
    h.at(60)
    h.close()
    h.clock.wall_ms = T0 - 86_400_000  # the wall clock is a day behind
    h.clock.mono_ms += 10_000_000
    h.open()
    h.tick()
    assert types(h) == [("clock_step", "new")]
    base = h.clock.wall_ms
    h.clock.set(base + 230_000)
    h.tick()
    assert types(h) == [("clock_step", "new")]
    h.clock.set(base + 245_000)  # 60 s had passed before, 300 s limit
    h.tick()
    assert types(h) == [("clock_step", "new"), ("door_held_open", "new")]


def test_forward_step_does_not_burst_offline(h: Harness) -> None:
    """NTP moves the clock 2 days forward: the pipeline marks devices silent, but the rules wait a
    full expected interval before calling them offline, and the door timer keeps its remaining."""
    h.at(0)
    for i in range(1, 7):
        h.send(f"plug-b3-{i}", "state", {"linkquality": 80})
    h.send("door-b1", "state", {"contact": False})
    h.at(10)
    h.clock.step(2 * 86_400_000)
    h.tick()
    assert types(h) == [("clock_step", "new")]
    for i in range(1, 7):  # the plugs are alive and report within their interval
        h.clock.set(h.clock.wall_ms + 20_000)
        h.send(f"plug-b3-{i}", "state", {"linkquality": 80})
    h.clock.set(h.clock.wall_ms + 400_000)  # < the plugs' 600 s interval since their reports
    h.tick()
    got = types(h)
    assert ("building_offline", "new") not in got and ("device_offline", "new") not in got
    assert ("door_held_open", "new") in got  # its 300 s ran out after the step, once
