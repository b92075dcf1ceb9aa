"""The Frigate events driver on real-format samples (tests/payloads/frigate/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers import DRIVERS
from drivers.base import STATE, DecodeError, Reading

P = Path(__file__).parent / "payloads" / "frigate"


def dec(name: str) -> list[Reading]:
    return DRIVERS["frigate"].decode("frigate/events", (P / name).read_bytes())


def test_new_car_in_fire_lane_zone() -> None:
    [r] = dec("new_car_fire_lane.json")
    assert r == Reading(
        "lot_cam/fire_lane_1",
        STATE,
        {"vehicle_present": True},
        1714557601402,
        {
            "camera": "lot_cam",
            "label": "car",
            "event_id": "1714557600.123456-ab12cd",
            "score": 0.83,
            "zone": "fire_lane_1",
        },
    )


def test_car_moving_between_spaces_frees_the_old_one() -> None:
    out = {r.device: r.values["vehicle_present"] for r in dec("update_car_moved.json")}
    assert out == {"lot_cam/space_03": False, "lot_cam/space_04": True}


def test_end_frees_every_zone() -> None:
    out = dec("end_car.json")
    assert [(r.device, dict(r.values)) for r in out] == [("lot_cam/fire_lane_1", {"vehicle_present": False})]
    assert out[0].ts_ms == 1714558230500


def test_person_in_restricted_zone_is_occupancy() -> None:
    [r] = dec("new_person_back_door.json")
    assert (r.device, dict(r.values)) == ("back_door/restricted", {"occupancy": True})


@pytest.mark.parametrize("name", ["false_positive.json", "new_dog.json"])
def test_ignored(name: str) -> None:
    assert dec(name) == []


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("frigate/events", b"{", "malformed_json"),
        ("frigate/events", b'{"type": "new"}', "missing_field"),
        ("frigate/events", b'{"type": "gone", "after": {}}', "bad_value"),
        ("frigate/events", b'{"type": "new", "after": []}', "wrong_type"),
        (
            "frigate/events",
            b'{"type": "new", "after": {"camera": "c", "label": "car", "current_zones": "z"}}',
            "wrong_type",
        ),
        ("frigate/events", b'{"type": "new", "after": {"camera": "../x", "label": "car"}}', "bad_value"),
        ("frigate/cam/car", b"{}", "wrong_type"),
        ("frigate", b"{}", "bad_topic"),
    ],
)
def test_errors(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        DRIVERS["frigate"].decode(topic, payload)
    assert exc.value.reason == reason
