"""Parking-space occupancy from a camera frame against a calibrated empty reference.

Method (see docs/vision.md): for each space polygon, features that do not depend on the
absolute brightness are computed between the frame and the reference image of the empty
spaces, then combined by a fixed logistic model whose weights came from the *tune* split of the
synthetic set (bench/vision_tune.py). No raw pixel difference is used anywhere:

- everything works on ``log(gray + 10)``, so a global or local change of illumination (daylight,
  a shadow) is an additive offset and disappears in gradients and after removing the median;
- ``edge``: share of the space whose log-gradient exceeds a threshold, frame minus reference
  (a car brings outlines, windows, a roof; asphalt and shadows' soft edges do not);
- ``grad``: log ratio of mean log-gradient magnitude frame / reference;
- ``ncc``: zero-mean normalised cross-correlation of the log images (texture of the empty bay
  still there, whatever the light);
- ``spread``: mean absolute deviation of the log ratio frame/reference inside the space from its
  own median (a uniform shadow or gain change is flat; a car is not);
- ``changed``: share of the space whose log ratio departs more than 0.4 from the frame-wide
  median log ratio (illumination of the whole view);
- ``chroma``: mean change of the Lab a/b chroma inside the space, less the frame-wide change
  (colour cast of the light);
- ``texture``: log ratio of the standard deviations of the log images.

The frame is blurred lightly first (sensor noise, JPEG blocks, salt-and-pepper via a median
filter) and the polygon is shrunk so painted lines and neighbours' overhang do not count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

FEATURES = (
    "edge",
    "grad",
    "ncc",
    "spread",
    "changed",
    "chroma",
    "texture",
    "cell_edge",
    "cell_grad",
    "cell_ncc",
    "cell_spread",
    "noise",
)
GRID = 3  # cells per side for the occluder-robust (median over cells) features

# Logistic model: p(occupied) = sigmoid(BIAS + sum(W[f] * (x[f] - MEAN[f]) / SCALE[f])).
# These numbers came from bench/vision_tune.py on the tune split only (seeds 0..; see docs).
MEAN: dict[str, float] = {
    "edge": 0.0589587,
    "grad": 0.978379,
    "ncc": 0.407398,
    "spread": 0.132321,
    "changed": 0.311569,
    "chroma": 11.4201,
    "texture": 1.11761,
    "cell_edge": 0.0570241,
    "cell_grad": 0.964738,
    "cell_ncc": 0.40707,
    "cell_spread": 0.0989967,
    "noise": 0.154555,
}
SCALE: dict[str, float] = {
    "edge": 0.0825054,
    "grad": 0.89838,
    "ncc": 0.46548,
    "spread": 0.131086,
    "changed": 0.35197,
    "chroma": 17.0264,
    "texture": 1.03823,
    "cell_edge": 0.0879648,
    "cell_grad": 0.931701,
    "cell_ncc": 0.440285,
    "cell_spread": 0.110017,
    "noise": 0.200407,
}
WEIGHTS: dict[str, float] = {
    "edge": -0.133101,
    "grad": 2.86001,
    "ncc": 0.0726789,
    "spread": -1.22609,
    "changed": 1.52537,
    "chroma": 1.65657,
    "texture": -1.37842,
    "cell_edge": 1.0092,
    "cell_grad": 1.82227,
    "cell_ncc": -1.72238,
    "cell_spread": 2.8503,
    "noise": -0.110938,
}
BIAS = 1.6086
THRESHOLD = 0.5

EDGE_T = 0.12  # log-gradient magnitude counted as an edge
CHANGE_T = 0.4  # log-ratio departure counted as changed
LOG_OFFSET = 10.0
EDGE_NOISE_K = 3.0  # edge threshold at least this many times the background median gradient


@dataclass(frozen=True)
class SpaceGeometry:
    """A space polygon precomputed against one image size: crop box and shrunk mask."""

    space_id: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    mask: np.ndarray  # bool, box-sized


def geometry(space_id: str, polygon: Sequence[Sequence[float]], shape: tuple[int, int]) -> SpaceGeometry:
    """Crop box and inner mask of a polygon for images of ``shape`` (h, w)."""
    h, w = shape
    poly = np.asarray(polygon, np.float32)
    x, y, bw, bh = cv2.boundingRect(poly)
    pad = 2
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(w, x + bw + pad), min(h, y + bh + pad)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise ValueError(f"space {space_id}: polygon lies outside the {w}x{h} image or is too small")
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(poly - [x0, y0]).astype(np.int32)], 1)
    area = int(mask.sum())
    # shrink by ~8 % of the polygon's smaller extent (painted lines, neighbours' overhang)
    e = max(1, round(0.08 * min(bw, bh)))
    inner = cv2.erode(mask, np.ones((2 * e + 1, 2 * e + 1), np.uint8))
    if inner.sum() < max(16, area * 0.25):
        inner = mask
    if inner.sum() < 16:
        raise ValueError(f"space {space_id}: polygon covers fewer than 16 pixels")
    return SpaceGeometry(space_id, (x0, y0, x1, y1), inner.astype(bool))


@dataclass
class Prepared:
    """Per-image precomputation shared by every space of a camera."""

    log: np.ndarray  # float32 log(gray + offset), denoised
    grad: np.ndarray  # float32 log-gradient magnitude
    ab: np.ndarray  # float32 (h, w, 2) Lab chroma


def prepare(image: np.ndarray) -> Prepared:
    """Denoise and convert one BGR uint8 image (the frame or the reference)."""
    img = cv2.medianBlur(image, 3)  # salt-and-pepper, JPEG ringing
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    lg = np.log(gray + LOG_OFFSET)
    gx = cv2.Sobel(lg, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lg, cv2.CV_32F, 0, 1, ksize=3)
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)
    ab = lab[..., 1:].astype(np.float32)
    return Prepared(lg, cv2.magnitude(gx, gy) / 8.0, ab)


@dataclass(frozen=True)
class FrameStats:
    """What the whole view says about the light and the sensor, from outside the spaces."""

    illum: float  # median log ratio frame/reference (global illumination change)
    cast: np.ndarray  # median Lab a/b shift (colour of the light)
    noise: float  # log ratio of median log-gradient magnitude (sensor noise, blur)
    edge_t_frame: float  # edge thresholds adapted to each image's background gradient level
    edge_t_ref: float


def frame_stats(frame: Prepared, ref: Prepared, background: np.ndarray | None = None) -> FrameStats:
    """Frame-wide statistics over ``background`` (pixels outside every space, subsampled by 4;
    None = the whole image): aisles and kerbs are mostly free, so they tell the light and noise."""
    step = 4
    sl = (slice(None, None, step), slice(None, None, step))
    bg = background if background is not None and background.sum() >= 64 else None
    pick = (lambda a: a[sl][bg]) if bg is not None else (lambda a: a[sl].reshape(-1, *a.shape[2:]))
    d = pick(frame.log) - pick(ref.log)
    dab = pick(frame.ab) - pick(ref.ab)
    gf_med = float(np.median(pick(frame.grad)))
    gr_med = float(np.median(pick(ref.grad)))
    return FrameStats(
        illum=float(np.median(d)),
        cast=np.median(dab.reshape(-1, 2), axis=0),
        noise=math.log((gf_med + 1e-3) / (gr_med + 1e-3)),
        edge_t_frame=max(EDGE_T, EDGE_NOISE_K * gf_med),
        edge_t_ref=max(EDGE_T, EDGE_NOISE_K * gr_med),
    )


def _cell_stats(
    lf: np.ndarray, lr: np.ndarray, gf: np.ndarray, gr: np.ndarray, tf: float, tr: float
) -> tuple[float, float, float, float]:
    d = lf - lr
    sf, sr = float(lf.std()), float(lr.std())
    ncc = float(((lf - lf.mean()) * (lr - lr.mean())).mean() / (sf * sr + 1e-6))
    return (
        float((gf > tf).mean() - (gr > tr).mean()),
        math.log((float(gf.mean()) + 1e-3) / (float(gr.mean()) + 1e-3)),
        ncc,
        float(np.abs(d - np.median(d)).mean()),
    )


def features(frame: Prepared, ref: Prepared, g: SpaceGeometry, fs: FrameStats) -> dict[str, float]:
    x0, y0, x1, y1 = g.box
    m = g.mask
    clf = frame.log[y0:y1, x0:x1]
    clr = ref.log[y0:y1, x0:x1]
    cgf = frame.grad[y0:y1, x0:x1]
    cgr = ref.grad[y0:y1, x0:x1]
    lf, lr, gf, gr = clf[m], clr[m], cgf[m], cgr[m]
    d = lf - lr
    dmed = float(np.median(d))
    sf, sr = float(lf.std()), float(lr.std())
    cf, cr = lf - lf.mean(), lr - lr.mean()
    ncc = float((cf * cr).mean() / (sf * sr + 1e-6))
    dab = frame.ab[y0:y1, x0:x1][m] - ref.ab[y0:y1, x0:x1][m] - fs.cast
    # occluder-robust: the same statistics per cell of a GRID x GRID split, median over cells
    tf, tr = fs.edge_t_frame, fs.edge_t_ref
    hh, ww = m.shape
    cells = []
    for i in range(GRID):
        for j in range(GRID):
            sl = (slice(i * hh // GRID, (i + 1) * hh // GRID), slice(j * ww // GRID, (j + 1) * ww // GRID))
            cm = m[sl]
            if cm.sum() >= 8:
                cells.append(_cell_stats(clf[sl][cm], clr[sl][cm], cgf[sl][cm], cgr[sl][cm], tf, tr))
    med = np.median(np.array(cells), axis=0) if cells else np.zeros(4)
    return {
        "edge": float((gf > tf).mean() - (gr > tr).mean()),
        "grad": math.log((float(gf.mean()) + 1e-3) / (float(gr.mean()) + 1e-3)),
        "ncc": ncc,
        "spread": float(np.abs(d - dmed).mean()),
        "changed": float((np.abs(d - fs.illum) > CHANGE_T).mean()),
        "chroma": float(np.abs(dab).sum(axis=1).mean()),
        "texture": math.log((sf + 1e-3) / (sr + 1e-3)),
        "cell_edge": float(med[0]),
        "cell_grad": float(med[1]),
        "cell_ncc": float(med[2]),
        "cell_spread": float(med[3]),
        "noise": fs.noise,
    }


def score(feats: dict[str, float]) -> float:
    """Probability-like occupancy score in 0..1 from the fixed logistic model."""
    z = BIAS + sum(WEIGHTS[f] * (feats[f] - MEAN[f]) / SCALE[f] for f in FEATURES)
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


class OccupancyModel:
    """One camera's calibrated reference and space geometry; classifies frames."""

    def __init__(self, reference: np.ndarray, spaces: Sequence[tuple[str, Sequence[Sequence[float]]]]) -> None:
        if reference.ndim != 3 or reference.shape[2] != 3:
            raise ValueError("the reference must be a BGR colour image")
        self.shape = (int(reference.shape[0]), int(reference.shape[1]))
        self.ref = prepare(reference)
        self.spaces = [geometry(sid, poly, self.shape) for sid, poly in spaces]
        outside = np.ones(self.shape, np.uint8)
        for _sid, poly in spaces:
            cv2.fillPoly(outside, [np.round(np.asarray(poly, np.float32)).astype(np.int32)], 0)
        eroded = cv2.erode(outside, np.ones((7, 7), np.uint8))  # keep clear of the painted lines
        self.background = np.asarray(eroded)[::4, ::4].astype(bool)

    def features(self, image: np.ndarray) -> list[dict[str, float]]:
        if image.shape[:2] != self.shape:
            raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, reference {self.shape[1]}x{self.shape[0]}")
        fr = prepare(image)
        fs = frame_stats(fr, self.ref, self.background)
        return [features(fr, self.ref, g, fs) for g in self.spaces]

    def classify(self, image: np.ndarray) -> dict[str, tuple[bool, float]]:
        """space id -> (occupied, score)."""
        out: dict[str, tuple[bool, float]] = {}
        for g, f in zip(self.spaces, self.features(image), strict=True):
            s = score(f)
            out[g.space_id] = (s >= THRESHOLD, s)
        return out
