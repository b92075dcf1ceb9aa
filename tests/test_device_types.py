"""The device-type table (edge_config.device_types): it covers every built-in type the site file
accepts, and it reproduces exactly the classifications that used to be separate constants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_config import BUILTIN_DEVICE_TYPES, load_config
from edge_config.device_types import DEVICE_TYPES, activity_types, door_types, sim_event_weights
from edge_config.schema import cross_check

EXAMPLE = Path(__file__).resolve().parents[1] / "edge_config" / "examples" / "community.yaml"

# The constants the table replaced, as they were: a change to the table must change these too.
OLD_ACTIVITY_TYPES = {"motion_sensor", "presence_sensor", "fall_radar", "door_contact", "exit_door_contact"}
OLD_DOOR_TYPES = {"exit_door_contact", "door_contact"}
OLD_SIMULATOR_ACTIVE_TYPES = {
    "door_contact": 3.0,
    "exit_door_contact": 1.0,
    "motion_sensor": 2.0,
    "presence_sensor": 1.0,
    "access_controller": 3.0,
    "barrier_gate": 2.0,
    "parking_sensor": 1.0,
    "camera": 1.5,
}
_MAINS, _BATTERY = 600, 90000
# name -> (category, life_safety, expected_interval_s, battery_low_pct, further explicit settings)
OLD_BUILTIN_DEFAULTS: dict[str, tuple[str, bool, int | None, int | None, dict[str, Any]]] = {
    "sos_button": ("eldercare", True, _BATTERY, 20, {}),
    "pull_cord": ("eldercare", True, _BATTERY, 20, {}),
    "fall_radar": ("eldercare", True, _MAINS, None, {}),
    "presence_sensor": ("eldercare", False, _MAINS, None, {"inactivity_hours": 6.0}),
    "motion_sensor": ("security", False, _BATTERY, 20, {}),
    # flapping_max_changes 20: a deliberate change (docs/rules.md "Flapping"), the rest as they were
    "door_contact": ("security", False, _BATTERY, 20, {"door_open_max_s": 300, "flapping_max_changes": 20}),
    "exit_door_contact": ("eldercare", False, _BATTERY, 20, {"door_open_max_s": 300, "flapping_max_changes": 20}),
    "access_controller": ("security", False, _MAINS, None, {}),
    "smoke_detector": ("security", True, _BATTERY, 20, {}),
    "gas_detector": ("security", True, _MAINS, None, {}),
    "water_leak": ("security", False, _BATTERY, 20, {}),
    "wearable": ("eldercare", False, 1800, 20, {}),
    "parking_sensor": ("parking", False, _BATTERY, 20, {}),
    "barrier_gate": ("parking", False, _MAINS, None, {}),
    "camera": ("security", False, _MAINS, None, {}),
    "zigbee_router": ("device_health", False, _MAINS, None, {}),
    "plug": ("device_health", False, _MAINS, None, {}),
}


def _type_problems(type_name: str) -> list[str]:
    """What the site-file checks say about a device of this type (no device_types section)."""
    data = {"devices": [{"id": "d1", "driver": "native", "address": "a1", "type": type_name}]}
    return [msg for loc, msg in cross_check(data) if loc[-1] == "type"]


def test_table_is_the_set_of_built_in_types() -> None:
    assert list(DEVICE_TYPES) == list(OLD_BUILTIN_DEFAULTS)
    assert list(BUILTIN_DEVICE_TYPES) == list(DEVICE_TYPES)
    for name, facts in DEVICE_TYPES.items():
        assert facts.name == name


@pytest.mark.parametrize("type_name", sorted(OLD_BUILTIN_DEFAULTS))
def test_every_table_type_is_accepted(type_name: str) -> None:
    assert _type_problems(type_name) == []


@pytest.mark.parametrize("type_name", ["door", "doorcontact", "sos", "smoke_sensor", "parking"])
def test_a_type_outside_the_table_is_rejected(type_name: str) -> None:
    problems = _type_problems(type_name)
    assert len(problems) == 1 and problems[0].startswith("unknown device type")


def test_example_site_uses_only_table_or_site_defined_types() -> None:
    cfg = load_config(EXAMPLE, env={})
    used = {d.type for d in cfg.devices}
    assert used <= set(DEVICE_TYPES) | set(cfg.device_types)
    assert used & set(DEVICE_TYPES)  # the example exercises the table


def test_built_in_settings_are_unchanged() -> None:
    for name, (category, life_safety, interval, battery, extra) in OLD_BUILTIN_DEFAULTS.items():
        facts = DEVICE_TYPES[name]
        assert (facts.category, facts.life_safety, facts.expected_interval_s, facts.battery_low_pct) == (
            category,
            life_safety,
            interval,
            battery,
        ), name
        assert dict(facts.settings) == extra, name
        settings = BUILTIN_DEVICE_TYPES[name]
        assert settings.category == category and settings.life_safety is life_safety, name
        assert settings.expected_interval_s == interval and settings.battery_low_pct == battery, name
        for key, value in extra.items():
            assert getattr(settings, key) == value, (name, key)
        # Explicitly set fields (what a site file's device_types entry is merged over) are unchanged.
        expected_set = {"category", "life_safety", "expected_interval_s", "battery_low_pct", *extra}
        assert settings.model_fields_set == expected_set, name


def test_activity_types_reproduce_the_old_set() -> None:
    assert activity_types() == OLD_ACTIVITY_TYPES
    assert {n for n, f in DEVICE_TYPES.items() if f.counts_as_activity} == OLD_ACTIVITY_TYPES


def test_door_types_reproduce_the_old_set() -> None:
    assert door_types() == OLD_DOOR_TYPES
    assert {n for n, f in DEVICE_TYPES.items() if f.is_door} == OLD_DOOR_TYPES


def test_simulator_weights_reproduce_the_old_table() -> None:
    assert dict(sim_event_weights()) == OLD_SIMULATOR_ACTIVE_TYPES
    assert {n: f.sim_event_weight for n, f in DEVICE_TYPES.items() if f.sim_event_weight} == (
        OLD_SIMULATOR_ACTIVE_TYPES
    )


def test_table_rows_cannot_be_changed() -> None:
    facts = DEVICE_TYPES["door_contact"]
    with pytest.raises(AttributeError):
        facts.is_door = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        facts.settings["door_open_max_s"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        DEVICE_TYPES["new_type"] = facts  # type: ignore[index]
