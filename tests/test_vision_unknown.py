"""``unknown`` is a reading of its own: the manager publishes ``vehicle_unknown`` without
``vehicle_present``, the fire-lane rule neither raises nor clears on it, and a camera whose frames
stay unusable raises a device-health incident (camera_unusable) that clears on a usable frame."""

from __future__ import annotations

import json
from pathlib import Path

from edge_config import load_config
from gateway.vision.manager import CameraManager
from gateway.vision.worker import FrameResult
from tests.rules_harness import DEVICES, Harness, write_rules_site
from tests.vision_site import write_camera_site

CAM_SPACE = ("cam-fire2", "native", "cam-fire2", None, "parking_sensor", "location: {parking_space: fire2}")
CAM = ("cam-2", "native", "cam-2", None, "camera", "location: {area: 地面停车场}")
FIRE2 = "        - {id: fire2, kind: fire_lane}"


def manager(tmp_path: Path, now: list[int]) -> tuple[CameraManager, list[tuple[str, dict]]]:
    site, _lot = write_camera_site(tmp_path, 1883)
    text = site.read_text(encoding="utf-8").replace(
        "      confirm_frames: 1\n", "      confirm_frames: 1\n      unusable_after_s: 60\n"
    )
    site.write_text(text, encoding="utf-8")
    sent: list[tuple[str, dict]] = []

    def pub(topic: str, payload: bytes) -> None:
        sent.append((topic, json.loads(payload) if payload.startswith(b"{") else {"raw": payload.decode()}))

    return CameraManager(load_config(site), publish=pub, dead_letter=lambda *a: None, clock=lambda: now[0]), sent


def frame(ts: int, state: str, unusable: str | None = None) -> FrameResult:
    p = {"occupied": 0.97, "empty": 0.02, "unknown": 0.55}[state]
    why = (unusable or "low_confidence") if state == "unknown" else None
    return FrameResult("cam1", 1, ts, spaces={"fire1": (state, p, max(p, 1 - p), why)}, unusable=unusable)


def test_manager_publishes_unknown_without_vehicle_present(tmp_path: Path) -> None:
    now = [1_000_000]
    mgr, sent = manager(tmp_path, now)
    mgr._on_result(frame(now[0], "occupied"))
    mgr._on_result(frame(now[0] + 1000, "unknown"))
    mgr._on_result(frame(now[0] + 2000, "empty"))
    space = [body for topic, body in sent if topic == "edge/v1/devices/cam1.fire1/state"]
    assert [b["values"] for b in space] == [
        {"vehicle_present": True, "vehicle_unknown": False},
        {"vehicle_unknown": True},
        {"vehicle_present": False, "vehicle_unknown": False},
    ]
    assert space[1]["meta"]["reason"] == "low_confidence" and space[1]["meta"]["confidence"] == 0.55


def test_a_camera_that_stays_unusable_reports_it_once_and_clears(tmp_path: Path) -> None:
    now = [1_000_000]
    mgr, sent = manager(tmp_path, now)
    for k in range(8):  # 70 s of covered frames, one every 10 s; unusable_after_s is 60
        mgr._on_result(frame(now[0] + k * 10_000, "unknown", "covered"))
    cam = [b for topic, b in sent if topic == "edge/v1/devices/cam1/state"]
    assert [b["values"] for b in cam] == [{"image_unusable": True}]
    assert cam[0]["meta"]["reason"] == "covered" and cam[0]["ts"] == now[0] + 60_000
    space = [b for topic, b in sent if topic == "edge/v1/devices/cam1.fire1/state"]
    assert [b["meta"]["reason"] for b in space] == ["covered"]  # unknown, published once (debounced)
    mgr._on_result(frame(now[0] + 80_000, "empty"))
    cam = [b for topic, b in sent if topic == "edge/v1/devices/cam1/state"]
    assert [b["values"] for b in cam] == [{"image_unusable": True}, {"image_unusable": False}]
    assert mgr.status()["cameras"]["cam1"]["unusable_since_ms"] is None


def harness(tmp_path: Path) -> Harness:
    site = write_rules_site(tmp_path, devices=[*DEVICES, CAM_SPACE, CAM], extra_spaces=FIRE2)
    return Harness(tmp_path, load_config(site))


def state(h: Harness, dev: str, values: dict) -> None:
    h.publish(f"edge/v1/devices/{dev}/state", json.dumps({"values": values}).encode())


def fire(h: Harness) -> list[tuple[str, str]]:
    return [(i["type"], i["state"]) for i in h.incidents() if i["type"] == "parking_fire_lane"]


def test_unknown_alone_never_raises_a_fire_lane_incident(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.at(0)
    for t in range(0, 600, 60):
        h.at(t)
        state(h, "cam-fire2", {"vehicle_unknown": True})
    h.at(900)
    assert fire(h) == []


def test_unknown_neither_clears_an_open_incident_nor_restarts_its_timer(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.at(0)
    state(h, "cam-fire2", {"vehicle_present": True, "vehicle_unknown": False})
    h.at(100)
    state(h, "cam-fire2", {"vehicle_unknown": True})  # glare over the space for a while
    h.at(181)
    assert fire(h) == [("parking_fire_lane", "new")]  # the confident reading's timer ran on
    state(h, "cam-fire2", {"vehicle_unknown": True})
    h.at(600)
    assert fire(h) == [("parking_fire_lane", "new")]  # not cleared by unknown
    assert [i["auto_cleared_ms"] for i in h.incidents() if i["type"] == "parking_fire_lane"] == [None]
    state(h, "cam-fire2", {"vehicle_present": False, "vehicle_unknown": False})
    h.at(900)
    assert [i["auto_cleared_ms"] is not None for i in h.incidents() if i["type"] == "parking_fire_lane"] == [True]


def test_image_unusable_raises_a_device_health_incident_that_clears(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.at(0)
    state(h, "cam-2", {"image_unusable": True})
    [inc] = [i for i in h.incidents() if i["type"] == "camera_unusable"]
    assert inc["category"] == "device_health" and inc["state"] == "new"
    h.at(60)
    state(h, "cam-2", {"image_unusable": False})
    h.at(600)
    [inc] = [i for i in h.incidents() if i["type"] == "camera_unusable"]
    assert inc["auto_cleared_ms"] is not None
