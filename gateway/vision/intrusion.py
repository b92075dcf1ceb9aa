"""Motion inside restricted-zone polygons by background subtraction (OpenCV MOG2).

Per camera one :class:`MotionDetector` (stateful: it learns the background from successive
frames, so one camera's frames must always reach the same worker process). Frames are scaled
to at most ``WORK_WIDTH`` pixels wide, the foreground mask (shadows, marked 127 by MOG2, are
ignored) is cleaned by a morphological opening, and each zone reports the share of its area
that moved. Whether a zone is armed is decided by the host (site time zone, the
``rules.intrusion_zones`` schedule): see :func:`zone_armed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

import cv2
import numpy as np

WORK_WIDTH = 320
WARMUP_FRAMES = 5  # no motion reported while the background model is still empty


class MotionDetector:
    def __init__(self, zones: Sequence[tuple[str, Sequence[Sequence[float]]]], shape: tuple[int, int]) -> None:
        h, w = shape
        self.scale = min(1.0, WORK_WIDTH / w)
        self.size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
        self.shape = shape
        self.zones: list[tuple[str, np.ndarray, int]] = []
        for zid, poly in zones:
            m = np.zeros((self.size[1], self.size[0]), np.uint8)
            pts = np.round(np.asarray(poly, np.float32) * self.scale).astype(np.int32)
            cv2.fillPoly(m, [pts], 1)
            self.zones.append((zid, m.astype(bool), max(1, int(m.sum()))))
        self.bg = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=25, detectShadows=True)
        self.frames = 0
        self.kernel = np.ones((3, 3), np.uint8)

    def update(self, image: np.ndarray) -> dict[str, float]:
        """Feed one frame; zone id -> percent of the zone's area in motion."""
        small = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA) if self.scale < 1 else image
        small = cv2.GaussianBlur(small, (5, 5), 0)
        fg = self.bg.apply(small)
        self.frames += 1
        if self.frames <= WARMUP_FRAMES:
            return {zid: 0.0 for zid, _m, _a in self.zones}
        moving = cv2.morphologyEx((fg == 255).astype(np.uint8), cv2.MORPH_OPEN, self.kernel)
        return {zid: 100.0 * float(moving[m].sum()) / area for zid, m, area in self.zones}


def zone_armed(zone: object, ts_ms: int, tz: ZoneInfo) -> bool:
    """Is the ``rules.intrusion_zones`` entry armed at ``ts_ms``? Same rule as gateway.rules."""
    from gateway.rules.base import in_window

    return any(in_window(ts_ms, tz, w.start, w.end, w.days) for w in zone.armed)  # type: ignore[attr-defined]
