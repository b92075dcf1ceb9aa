"""``edge-gateway camera calibrate``: save a camera's reference image and draw its polygons.

The installer takes a snapshot when the watched spaces are empty in ordinary daylight, runs
this command, and checks the overlay: every space outline (green, with its id) must sit on the
painted bay, every restricted zone (red) on its area. The reference is written (JPEG, q 95) to
the camera's ``reference_image`` path, which the occupancy model compares frames against.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_config import SiteConfig


def calibrate(
    cfg: SiteConfig, camera_id: str, image_path: Path, out: Path | None, base_dir: Path | None = None
) -> list[str]:
    """Returns lines to print; raises ValueError with a message for the installer."""
    import cv2
    import numpy as np

    cam = next((c for c in cfg.cameras.cameras if c.id == camera_id), None)
    if cam is None:
        known = ", ".join(c.id for c in cfg.cameras.cameras) or "none configured"
        raise ValueError(f"no camera {camera_id!r} under cameras.cameras (known: {known})")
    data = image_path.read_bytes()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{image_path}: not an image OpenCV can read")
    h, w = img.shape[:2]
    lines = [f"camera {camera_id}: image {w}x{h}"]
    problems = []
    for name, poly in [(s.space_id, s.polygon) for s in cam.spaces] + [(z.zone_id, z.polygon) for z in cam.zones]:
        if any(x >= w or y >= h for x, y in poly):
            problems.append(f"polygon of {name} reaches outside the {w}x{h} image")
    if problems:
        raise ValueError("; ".join(problems))
    if cam.reference_image is None:
        raise ValueError(f"camera {camera_id} has no reference_image path in the config; set one first")
    ref_path = (
        cam.reference_image if cam.reference_image.is_absolute() else (base_dir or Path.cwd()) / cam.reference_image
    )
    ref_path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError("could not encode the reference image")
    ref_path.write_bytes(buf.tobytes())
    lines.append(f"reference saved: {ref_path}")
    overlay = img.copy()
    for s in cam.spaces:
        pts = np.round(np.asarray(s.polygon, np.float32)).astype(np.int32)
        cv2.polylines(overlay, [pts], True, (0, 255, 0), 2, cv2.LINE_AA)
        cx, cy = pts.mean(axis=0).astype(int)
        cv2.putText(overlay, s.space_id, (int(cx) - 20, int(cy)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 0), 1)
    for z in cam.zones:
        pts = np.round(np.asarray(z.polygon, np.float32)).astype(np.int32)
        cv2.polylines(overlay, [pts], True, (0, 0, 255), 2, cv2.LINE_AA)
        x, y = pts.min(axis=0)
        cv2.putText(overlay, z.zone_id, (int(x) + 3, int(y) + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1)
    out = out or ref_path.with_name(ref_path.stem + "_overlay.png")
    cv2.imwrite(str(out), overlay)
    lines.append(f"overlay written: {out} ({len(cam.spaces)} spaces green, {len(cam.zones)} zones red)")
    return lines
