"""Is this frame fit to judge from, and where does it sit against the reference?

:class:`FrameCheck` looks at a small grey copy of each frame (160 px wide) next to the same copy
of the calibrated reference:

- ``glare``: more than :data:`MAX_SATURATED` of the frame saturated (sun straight into the lens).
- ``fog``: the frame's contrast (standard deviation of log grey) below :data:`MIN_CONTRAST` of
  the reference's (dense fog, a misted-over lens; ordinary fog keeps about half).
- ``covered``: the lot's own structure is gone (a hand, a bag, a sticker over the lens): the
  correlation of the frame's gradient image with the reference's below :data:`MIN_STRUCTURE`
  *and* the frame's detail (mean log-gradient) under :data:`COVERED_DETAIL` of the
  reference's. Night, rain, long shadows and a moved camera can lower the correlation but keep
  (or raise) the detail; ordinary fog lowers the detail but keeps the correlation.
- ``frozen``: the frame is pixel-identical to the previous one :data:`FROZEN_FRAMES` times in a
  row. A live sensor never delivers two identical frames (noise); a stuck encoder or a camera
  serving a cached snapshot does.

The camera's own small movements (shake, wind, a slight re-pointing) are measured by
:func:`align`: phase correlation gives the shift, ECC (OpenCV, Euclidean motion) refines shift and
rotation on the same small images, and the frame is warped back onto the reference so every
polygon still covers its space. A failed or implausible estimate (over :data:`MAX_SHIFT` of the
width) leaves the frame as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SMALL_W = 160
STRUCTURE_BLUR = 2.0  # px at SMALL_W: tolerant of a camera shifted by ~8 px at 640
MIN_STRUCTURE = 0.3
COVERED_DETAIL = 0.4
MIN_CONTRAST = 0.2
MAX_SATURATED = 0.4
FROZEN_FRAMES = 2
ALIGN_W = 320
MAX_SHIFT = 0.05


def _small(image: np.ndarray, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    size = (width, max(1, round(h * width / w)))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA))


def _grad(small: np.ndarray, blur: float = 1.0) -> np.ndarray:
    lg = np.log(cv2.GaussianBlur(small.astype(np.float32), (0, 0), blur) + 10.0)
    return np.asarray(cv2.magnitude(cv2.Sobel(lg, cv2.CV_32F, 1, 0), cv2.Sobel(lg, cv2.CV_32F, 0, 1)), np.float32)


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    return float((x * y).mean() / (x.std() * y.std() + 1e-9))


@dataclass(frozen=True)
class Quality:
    usable: bool
    reason: str | None  # covered | fog | glare | frozen
    structure: float
    contrast: float
    saturated: float
    detail: float = 1.0  # mean log-gradient, frame / reference


class FrameCheck:
    """Per camera: the reference's small copy and the previous frame's (frozen detection)."""

    def __init__(self, reference: np.ndarray) -> None:
        self.ref = _small(reference, SMALL_W)
        self.ref_grad = _grad(self.ref, STRUCTURE_BLUR)
        self.ref_detail = float(_grad(self.ref).mean())
        self.ref_contrast = float(np.log(self.ref.astype(np.float32) + 10.0).std())
        self.ref_level = float(np.median(self.ref))
        self.prev: np.ndarray | None = None
        self.same = 0

    def check(self, image: np.ndarray) -> Quality:
        small = _small(image, SMALL_W)
        if self.prev is not None and np.array_equal(small, self.prev):
            self.same += 1
        else:
            self.same = 0
        self.prev = small
        structure = _ncc(_grad(small, STRUCTURE_BLUR), self.ref_grad)
        contrast = float(np.log(small.astype(np.float32) + 10.0).std()) / (self.ref_contrast + 1e-6)
        sat = float((small >= 250).mean())
        detail = float(_grad(small).mean()) / (self.ref_detail + 1e-6)
        reason = None
        if self.same >= FROZEN_FRAMES:
            reason = "frozen"
        elif sat > MAX_SATURATED:
            reason = "glare"
        elif contrast < MIN_CONTRAST:
            reason = "fog" if float(np.median(small)) > self.ref_level else "covered"
        elif structure < MIN_STRUCTURE and detail < COVERED_DETAIL:
            reason = "covered"
        return Quality(reason is None, reason, structure, contrast, sat, detail)


class Aligner:
    """Registers frames onto the reference (small shifts and rotations of the camera)."""

    def __init__(self, reference: np.ndarray) -> None:
        h, w = reference.shape[:2]
        self.scale = w / ALIGN_W
        self.shape = (h, w)
        self.ref = self._plane(reference)
        self.window = cv2.createHanningWindow((self.ref.shape[1], self.ref.shape[0]), cv2.CV_32F)

    @staticmethod
    def _plane(image: np.ndarray) -> np.ndarray:
        # gradient of log brightness: the same under any light level, dominated by fixed lines
        return _grad(_small(image, ALIGN_W))

    def estimate(self, image: np.ndarray) -> np.ndarray | None:
        """2x3 matrix mapping frame pixels to reference pixels, or None (no usable estimate)."""
        cur = self._plane(image)
        (dx, dy), _resp = cv2.phaseCorrelate(self.ref, cur, self.window)
        warp = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        try:
            crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-4)
            _cc, found = cv2.findTransformECC(self.ref, cur, warp, cv2.MOTION_EUCLIDEAN, crit, None, 3)  # type: ignore[call-overload]
            warp = np.asarray(found, np.float32)
        except cv2.error:
            pass  # ECC did not converge: keep the phase-correlation shift
        warp[:, 2] *= self.scale
        shift = math.hypot(float(warp[0, 2]), float(warp[1, 2]))
        if shift > MAX_SHIFT * self.shape[1] or abs(float(warp[1, 0])) > 0.05:
            return None
        if shift < 0.5 and abs(float(warp[1, 0])) < 0.002:
            return None  # nothing worth a resampling
        return warp

    def apply(self, image: np.ndarray) -> np.ndarray:
        warp = self.estimate(image)
        if warp is None:
            return image
        h, w = self.shape
        # ECC's warp maps reference coordinates into the frame: sample the frame through it
        return np.asarray(
            cv2.warpAffine(
                image, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
            )
        )
