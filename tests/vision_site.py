"""A small site with one camera for the vision tests (reuses tests/conftest.py's MINI_SITE)."""

from __future__ import annotations

from pathlib import Path

import cv2

from tests import vision_synth as vs
from tests.conftest import MINI_DEVICES, write_site

CAM_DEVICES = [
    ("cam1", "native", "cam1", None, "camera", "location: {area: 地面停车场}"),
    ("cam1-fire1", "native", "cam1.fire1", None, "parking_sensor", "location: {parking_space: fire1}"),
    ("cam1-p01", "native", "cam1.p01", None, "parking_sensor", "location: {parking_space: p01}"),
]


def write_camera_site(
    d: Path,
    port: int,
    *,
    armed: tuple[str, str] = ("00:00", "00:00"),
    zone: list[list[int]] | None = None,
    offline_after_s: int = 120,
    source: str = "{kind: mqtt}",
) -> tuple[Path, vs.Lot]:
    lot = vs.make_lot(7)
    ref = d / "cam1_ref.jpg"
    cv2.imwrite(str(ref), lot.reference, [cv2.IMWRITE_JPEG_QUALITY, 95])
    path = write_site(d, port, devices=MINI_DEVICES + CAM_DEVICES)
    zone = zone or [[250, 40], [400, 40], [400, 150], [250, 150]]
    s0, s1 = (p.tolist() for p in lot.spaces[:2])
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "    type: parking_sensor\n    location: {parking_space: fire1}",
        "    type: parking_sensor\n    location: {parking_space: fire1}\n    overrides: {fire_lane_max_min: 1}",
    )
    text += f"""rules:
  startup_grace_s: 0
  offline_hold_s: 0
  intrusion_zones:
    - id: backyard
      name: 后院
      devices: [cam1]
      armed: [{{start: "{armed[0]}", end: "{armed[1]}"}}]
cameras:
  workers: 1
  snapshots: {{path: {d / "snapshots"}, quota_mb: 1}}
  cameras:
    - id: cam1
      device: cam1
      source: {source}
      reference_image: {ref}
      confirm_frames: 1
      offline_after_s: {offline_after_s}
      motion_cooldown_s: 0
      spaces:
        - {{space_id: fire1, device: cam1-fire1, polygon: {s0}}}
        - {{space_id: p01, device: cam1-p01, polygon: {s1}}}
      zones:
        - {{zone_id: backyard, polygon: {zone}, min_area_pct: 2}}
"""
    path.write_text(text, encoding="utf-8")
    return path, lot


def jpeg(img: object, q: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])  # type: ignore[call-overload]
    assert ok
    return bytes(buf.tobytes())
