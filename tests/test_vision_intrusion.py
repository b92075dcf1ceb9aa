"""Intrusion: a moving blob inside a restricted-zone polygon during armed hours -> an occupancy
reading for the camera's device with a stored snapshot; outside armed hours -> nothing; motion
outside the polygon -> nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge_config import load_config
from gateway.vision.intrusion import MotionDetector
from gateway.vision.manager import CameraManager
from tests.support import wait_until
from tests.vision_site import jpeg, write_camera_site

TZ = ZoneInfo("Asia/Shanghai")
ZONE = [[250, 40], [400, 40], [400, 150], [250, 150]]


def frames(base: np.ndarray, path: list[tuple[int, int]], quiet: int = 8) -> list[np.ndarray]:
    """``quiet`` still frames (background learning), then a person-sized blob moving along ``path``."""
    rng = np.random.default_rng(1)
    out = []
    for _ in range(quiet):
        f = base.astype(np.int16) + rng.normal(0, 2, base.shape).astype(np.int16)
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    for x, y in path:
        f = base.copy()
        cv2.ellipse(f, (x, y), (14, 30), 0, 0, 360, (40, 60, 200), -1)
        out.append(f)
    return out


def test_motion_detector_counts_only_inside_the_polygon() -> None:
    base = np.full((360, 640, 3), 100, np.uint8)
    det = MotionDetector([("z", ZONE)], (360, 640))
    inside = [det.update(f)["z"] for f in frames(base, [(300 + 8 * i, 90) for i in range(5)])]
    det2 = MotionDetector([("z", ZONE)], (360, 640))
    outside = [det2.update(f)["z"] for f in frames(base, [(100 + 8 * i, 280) for i in range(5)])]
    assert max(inside) > 5.0
    assert max(outside) == 0.0


def run_manager(tmp_path: Path, armed: tuple[str, str], path: list[tuple[int, int]], at: dt.datetime) -> list[dict]:
    site, lot = write_camera_site(tmp_path, 1883, armed=armed, zone=ZONE)
    cfg = load_config(site)
    published: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def pub(t: str, p: bytes) -> None:
        with lock:
            published.append((t, p))

    now = int(at.timestamp() * 1000)
    mgr = CameraManager(cfg, publish=pub, dead_letter=lambda *a: None, clock=lambda: now)
    mgr.pool.start(mgr.specs())
    try:
        fs = frames(lot.reference, path)
        for n, f in enumerate(fs, 1):
            mgr.frame("cam1", jpeg(f), "edge/v1/cameras/cam1/snapshot")
            # one at a time: the worker queue is bounded and the background model needs every frame
            assert wait_until(lambda n=n: mgr.cams["cam1"].frames >= n, 20)
    finally:
        mgr.pool.stop()
    states = [json.loads(p) for t, p in published if t == "edge/v1/devices/cam1/state"]
    for s in states:
        sid = s["meta"].get("snapshot")
        assert sid and mgr.snapshots.get(sid) is not None
        f = mgr.snapshots.dir / f"{sid}.jpg"
        assert os.stat(f).st_mode & 0o777 == 0o600
    return states


MOVE_IN = [(300 + 10 * i, 95) for i in range(5)]
MOVE_OUT = [(100 + 10 * i, 300) for i in range(5)]
NIGHT = dt.datetime(2026, 3, 2, 23, 30, tzinfo=TZ)  # a Monday
DAY = dt.datetime(2026, 3, 2, 14, 0, tzinfo=TZ)


def test_motion_in_zone_while_armed_raises_a_reading_with_snapshot(tmp_path: Path) -> None:
    states = run_manager(tmp_path, ("22:00", "06:00"), MOVE_IN, NIGHT)
    assert states, "no intrusion reading"
    assert states[0]["values"] == {"occupancy": True}
    assert states[0]["meta"]["zone"] == "backyard"


def test_motion_in_zone_outside_armed_hours_is_ignored(tmp_path: Path) -> None:
    assert run_manager(tmp_path, ("22:00", "06:00"), MOVE_IN, DAY) == []


def test_motion_outside_the_polygon_is_ignored(tmp_path: Path) -> None:
    assert run_manager(tmp_path, ("22:00", "06:00"), MOVE_OUT, NIGHT) == []
