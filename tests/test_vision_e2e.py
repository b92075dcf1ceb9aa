"""End to end through a real Mosquitto: a JPEG snapshot on edge/v1/cameras/cam1/snapshot ->
worker process -> native reading on the broker -> pipeline (stored before ack) -> the existing
fire-lane rule raises its incident; then the camera goes silent -> its device goes offline; a
bad JPEG on the same topic -> dead letter."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from edge_config import load_config
from gateway.app import Gateway
from gateway.core import incidents as inc
from gateway.install.mosquitto import Mosquitto
from gateway.vision.occupancy import OccupancyModel
from tests import vision_synth as vs
from tests.support import TrackedPublisher, wait_until
from tests.vision_site import jpeg, write_camera_site

pytestmark = pytest.mark.broker


def q(db: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def incidents(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return inc.all_incidents(conn)
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def test_snapshot_to_fire_lane_incident_then_camera_offline(tmp_path: Path, private_broker: Mosquitto) -> None:
    path, lot = write_camera_site(tmp_path, private_broker.port, offline_after_s=5)
    cfg = load_config(path)
    # a daylight frame with a car in space 0 (fire1) that the model sees as occupied
    model = OccupancyModel(lot.reference, [(str(i), p.tolist()) for i, p in enumerate(lot.spaces[:2])])
    frame = None
    for seed in range(50):
        fr = vs.render(lot, seed, "daylight")
        if fr.occupied[0] and model.classify(fr.image)["0"].state == "occupied":
            frame = fr
            break
    assert frame is not None
    db = tmp_path / "gateway.db"
    gw = Gateway(cfg, store_path=db)
    assert gw.cameras is not None
    # The camera's frames are stamped 70 s in the past (within the pipeline's 5-min clock trust), so
    # the 1-minute fire-lane limit has already run out when the reading arrives: no 60 s wait here.
    gw.cameras.clock = lambda: int(time.time() * 1000) - 70_000
    gw.start()
    pub = TrackedPublisher("127.0.0.1", private_broker.port, "vision-e2e")
    try:
        assert wait_until(lambda: gw.broker_connected and gw.cameras.mqtt.connected.is_set(), 15)
        pub.publish_all([("edge/v1/cameras/cam1/snapshot", jpeg(frame.image))])
        assert wait_until(lambda: any(i["type"] == "parking_fire_lane" for i in incidents(db)), 30), incidents(db)
        stored = q(db, "SELECT device_id, vals FROM readings WHERE device_id='cam1-fire1'")
        assert stored and '"vehicle_present":true' in stored[0][1].replace(" ", "")
        [fire] = [i for i in incidents(db) if i["type"] == "parking_fire_lane"]
        assert fire["category"] == "parking"
        # a bad image on the same topic -> dead letter, nothing else breaks
        pub.publish_all([("edge/v1/cameras/cam1/snapshot", jpeg(frame.image)[:4000])])
        assert wait_until(lambda: q(db, "SELECT reason FROM dead_letters WHERE driver='camera'") != [], 15)
        assert q(db, "SELECT reason FROM dead_letters WHERE driver='camera'") == [("image_truncated",)]
        # silence: no more frames -> the camera device is offline
        assert wait_until(lambda: q(db, "SELECT online FROM devices WHERE device_id='cam1'") == [(0,)], 20)
        assert wait_until(lambda: any(i["type"] == "device_offline" for i in incidents(db)), 15), incidents(db)
    finally:
        pub.close()
        gw.stop()


def test_covered_camera_raises_camera_unusable_and_its_spaces_go_unknown(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    path, lot = write_camera_site(tmp_path, private_broker.port)
    text = path.read_text(encoding="utf-8").replace(
        "      offline_after_s: 120\n", "      offline_after_s: 120\n      unusable_after_s: 10\n"
    )
    path.write_text(text, encoding="utf-8")
    db = tmp_path / "gateway.db"
    gw = Gateway(load_config(path), store_path=db)
    assert gw.cameras is not None
    t0 = int(time.time() * 1000) - 60_000
    step = [0]
    gw.cameras.clock = lambda: t0 + step[0] * 6_000  # frames 6 s apart, whatever the wall clock does
    gw.start()
    pub = TrackedPublisher("127.0.0.1", private_broker.port, "vision-covered")
    try:
        assert wait_until(lambda: gw.broker_connected and gw.cameras.mqtt.connected.is_set(), 15)
        for k in range(3):  # 0 s, 6 s, 12 s: unusable for longer than unusable_after_s
            step[0] = k
            pub.publish_all([("edge/v1/cameras/cam1/snapshot", jpeg(vs.render(lot, k, "covered").image))])
            assert wait_until(lambda k=k: gw.cameras.cams["cam1"].frames >= k + 1, 20)
        assert wait_until(lambda: any(i["type"] == "camera_unusable" for i in incidents(db)), 20), incidents(db)
        [inc_] = [i for i in incidents(db) if i["type"] == "camera_unusable"]
        assert inc_["category"] == "device_health" and inc_["devices"] == ["cam1"]
        rows = q(db, "SELECT vals FROM readings WHERE device_id='cam1-fire1'")
        assert rows and all('"vehicle_unknown":true' in r[0].replace(" ", "") for r in rows), rows
        assert not any(i["type"] == "parking_fire_lane" for i in incidents(db))
    finally:
        pub.close()
        gw.stop()
