"""The RTSP source (cv2.VideoCapture inside the worker process, sampled at interval_s), exercised
with a local video file because no RTSP server is available in the tests."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2

from edge_config import load_config
from gateway.vision.manager import CameraManager
from gateway.vision.occupancy import OccupancyModel
from tests import vision_synth as vs
from tests.support import wait_until
from tests.vision_site import write_camera_site


def test_video_file_as_stream(tmp_path: Path) -> None:
    video = tmp_path / "cam1.avi"
    site, lot = write_camera_site(tmp_path, 1883, source=f"{{kind: rtsp, url: '{video}', interval_s: 0.2}}")
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 360))
    assert w.isOpened()
    model = OccupancyModel(lot.reference, [(str(i), p.tolist()) for i, p in enumerate(lot.spaces[:2])])
    fr = next(
        f
        for f in (vs.render(lot, k, "daylight") for k in range(1, 40))
        if model.classify(f.image)["0"].confidence > 0.9
    )
    for _ in range(30):
        w.write(fr.image)
    w.release()
    cfg = load_config(site)
    published: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def pub(t: str, p: bytes) -> None:
        with lock:
            published.append((t, p))

    mgr = CameraManager(cfg, publish=pub, dead_letter=lambda *a: None)
    assert mgr.mqtt is None  # nothing to subscribe to: frames come from the worker's reader
    mgr.pool.start(mgr.specs())
    try:
        assert wait_until(lambda: any(t.endswith("cam1.fire1/state") for t, _p in published), 30), published
    finally:
        mgr.pool.stop()
    [fire] = [json.loads(p) for t, p in published if t.endswith("cam1.fire1/state")][:1]
    assert fire["values"] == {"vehicle_present": fr.occupied[0], "vehicle_unknown": False}
