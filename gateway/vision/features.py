"""Brightness-independent features of one parking space: a frame against an empty reference.

Everything works on ``log(gray + 10)``: a change of illumination (daylight level, a shadow, a
lamp) multiplies the light, so in the log domain it is an additive offset that gradients and
median-removal cancel. No raw pixel difference is used. The view's light, colour cast and
sharpness are measured on the pixels **outside every space** (aisles, kerbs), which are mostly
free, and every space is judged relative to them: fog or a dirty lens lowers every gradient in the
view, a car raises those of its own space.

A space is a fixed set of pixels (its polygon shrunk by 8 %: painted lines, a neighbour's
overhang), split into a 3 x 3 grid of cells. Statistics are computed over the whole space and per
cell with ``np.bincount`` (no Python loop over cells); the **median over cells** ignores a pole,
a trunk or a person covering a third of the space, which a car covering most cells does not.
The same function compares the frame with the calibrated reference, with the calibrated reference
under the light the background shows now (gateway/vision/lightfield.py) and with the space's
adapted reference (gateway/vision/adaptive.py), which is only the space's pixels, so all are 1-D
arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from gateway.vision.veil import Veil

LOG_OFFSET = 10.0
LOG_SAT = math.log(248 + LOG_OFFSET)  # saturated (glare, headlight straight into the lens)
EDGE_T = 0.12  # log-gradient magnitude counted as an edge
CHANGE_T = 0.4  # log-ratio departure from the view's illumination change counted as changed
CHANGE_LO = 0.15
CHANGE_COARSE = 0.2
COARSE_SIGMA = 3.0  # px at the working width: wider than a rain streak or a JPEG block edge
CELL_CHANGED = 0.35  # a cell with more changed pixels than this counts as covered
GRID = 3
CELLS = GRID * GRID

# Per reference (calibrated: no prefix; adapted: "a_").
PAIR = (
    "edge",  # share of strong-gradient pixels, frame minus reference
    "ncc",  # normalised cross-correlation of the log images (the bay's own texture still there)
    "spread",  # mean |log ratio - its median| (a shadow is flat, a car is not)
    "chroma",  # Lab a/b change less the view's colour cast
    "texture",  # log ratio of the standard deviations
    "cell_edge",
    "cell_ncc",
    "cell_spread",
    "cell_changed",  # medians over the 3 x 3 cells of the same
    "covered",  # share of cells that changed (a car: most; a person or a pole: one to three)
    "rel_grad",  # grad less the view's gradient change (fog, blur, night noise affect all)
    "ncc_coarse",  # ncc after a wider blur: rain streaks, noise and JPEG blocks averaged out
    "changed_lo",  # share departing > CHANGE_LO (a car close to the ground's colour)
    "spread_coarse",  # spread of the coarse log ratio
    "changed_coarse",  # share whose coarse log ratio departs > CHANGE_COARSE from the view's change
    "cell_changed_coarse",  # median over cells of the same
)
# Frame-wide levels (brightness, noise) are deliberately not features: in a linear model they
# would shift every space of a frame alike, which fits the conditions trained on and nothing else.
FRAME = (
    "sat",  # share of the space's pixels saturated
)
# Three references per space: the calibrated image (no prefix), the calibrated image under the
# light the background shows now ("p_", gateway/vision/lightfield.py), and the space's adapted look
# for this light ("a_"; the predicted reference again where the space has none yet).
FEATURES = PAIR + tuple("p_" + f for f in PAIR) + tuple("a_" + f for f in PAIR) + FRAME


@dataclass
class Prepared:
    """Per-image planes shared by every space of a camera (float32, image-sized)."""

    log: np.ndarray  # log(gray + offset), denoised
    coarse: np.ndarray  # the same blurred by COARSE_SIGMA
    grad: np.ndarray  # log-gradient magnitude
    a: np.ndarray  # Lab a
    b: np.ndarray  # Lab b


def prepare(image: np.ndarray, veil: Veil | None = None) -> Prepared:
    """Denoise and convert one BGR uint8 image (the frame or the reference); ``veil`` (the
    reference's grey and background tiles) first takes the additive light off the frame."""
    img = cv2.medianBlur(image, 3)  # salt-and-pepper, JPEG ringing
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if veil is not None:
        gray = np.maximum(gray - veil.offset(gray), 0.0)
    lg = np.log(gray + LOG_OFFSET)
    gx = cv2.Sobel(lg, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lg, cv2.CV_32F, 0, 1, ksize=3)
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)
    _l, a, b = cv2.split(lab)
    coarse = cv2.GaussianBlur(lg, (0, 0), COARSE_SIGMA)
    return Prepared(lg, coarse, cv2.magnitude(gx, gy) / 8.0, a.astype(np.float32), b.astype(np.float32))


@dataclass(frozen=True)
class ViewStats:
    """What the pixels outside every space say about an image's light and sharpness."""

    level: float  # median log gray
    a: float  # median Lab a, b (colour of the light)
    b: float
    gmed: float  # median log-gradient (sensor noise, blur, fog)


def view_stats(p: Prepared, background: np.ndarray) -> ViewStats:
    """``background``: flat indices of pixels outside every space (subsampled)."""
    lg = p.log.ravel()[background]
    level = float(np.median(lg))
    return ViewStats(
        level,
        float(np.median(p.a.ravel()[background])),
        float(np.median(p.b.ravel()[background])),
        float(np.median(p.grad.ravel()[background])),
    )


@dataclass
class Space:
    """A space's pixels: flat indices into the image and the 3 x 3 cell of each."""

    space_id: str
    index: np.ndarray  # int64 flat indices
    cell: np.ndarray  # int64 cell number 0..8 per pixel
    cell_n: np.ndarray  # float64 pixels per cell (>= 1)
    cell_ok: np.ndarray  # bool: cells with enough pixels to count


def space(space_id: str, polygon: Sequence[Sequence[float]], shape: tuple[int, int]) -> Space:
    h, w = shape
    poly = np.asarray(polygon, np.float32)
    x, y, bw, bh = cv2.boundingRect(poly)
    if x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
        raise ValueError(f"space {space_id}: polygon lies outside the {w}x{h} image")
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    area = int(mask.sum())
    e = max(1, round(0.08 * min(bw, bh)))  # shrink: painted lines, neighbours' overhang
    inner = cv2.erode(mask, np.ones((2 * e + 1, 2 * e + 1), np.uint8))
    if inner.sum() < max(16, area * 0.25):
        inner = mask
    if inner.sum() < 16:
        raise ValueError(f"space {space_id}: polygon covers fewer than 16 pixels")
    ys, xs = np.nonzero(inner)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    cy = np.minimum((ys - y0) * GRID // max(1, y1 - y0), GRID - 1)
    cx = np.minimum((xs - x0) * GRID // max(1, x1 - x0), GRID - 1)
    cell = (cy * GRID + cx).astype(np.int64)
    n = np.bincount(cell, minlength=CELLS).astype(np.float64)
    return Space(space_id, (ys * w + xs).astype(np.int64), cell, np.maximum(n, 1.0), n >= 8)


@dataclass
class Pixels:
    """One image's values at one space's pixels."""

    log: np.ndarray
    coarse: np.ndarray
    grad: np.ndarray
    a: np.ndarray
    b: np.ndarray

    @staticmethod
    def take(p: Prepared, sp: Space) -> Pixels:
        i = sp.index
        return Pixels(p.log.ravel()[i], p.coarse.ravel()[i], p.grad.ravel()[i], p.a.ravel()[i], p.b.ravel()[i])

    def copy(self) -> Pixels:
        return Pixels(*(getattr(self, n).copy() for n in PLANES))

    def blend(self, other: Pixels, alpha: float) -> None:
        """Move towards ``other`` (exponential average, in place)."""
        for name in PLANES:
            mine = getattr(self, name)
            mine += alpha * (getattr(other, name) - mine)


PLANES = ("log", "coarse", "grad", "a", "b")


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    cx, cy = x - x.mean(), y - y.mean()
    return float((cx * cy).mean() / (math.sqrt(float((cx * cx).mean()) * float((cy * cy).mean())) + 1e-6))


def _cells(sp: Space, v: np.ndarray) -> np.ndarray:
    return np.asarray(np.bincount(sp.cell, weights=v, minlength=CELLS) / sp.cell_n)


def pair_features(sp: Space, f: Pixels, fv: ViewStats, r: Pixels, rv: ViewStats) -> list[float]:
    """The :data:`PAIR` features of frame pixels ``f`` against reference pixels ``r``."""
    illum = fv.level - rv.level
    # The view's gradient change (fog, flat light, a dirty lens lower it; night noise and rain
    # streaks raise it): the edge threshold follows it, so a car in fog is measured against foggy
    # asphalt rather than a clear day. (Scaling the change thresholds by the view's contrast as
    # well was tried: worse in rain and fog once the veil is taken off, see docs/vision.md.)
    kg = min(4.0, max(0.25, (fv.gmed + 1e-3) / (rv.gmed + 1e-3)))
    view_grad = math.log(kg)
    d = f.log - r.log
    dc = f.coarse - r.coarse
    chc = (np.abs(dc - illum) > CHANGE_COARSE).astype(np.float64)
    ef = (f.grad > EDGE_T * kg).astype(np.float64)
    er = (r.grad > EDGE_T).astype(np.float64)
    ch = (np.abs(d - illum) > CHANGE_T).astype(np.float64)
    mf, mr = float(f.log.mean()), float(r.log.mean())
    cf, cr = f.log - mf, r.log - mr
    sf, sr = float(np.sqrt((cf * cf).mean())), float(np.sqrt((cr * cr).mean()))
    grad = math.log((float(f.grad.mean()) + 1e-3) / (float(r.grad.mean()) + 1e-3))
    dmed = float(np.median(d))
    chroma = float((np.abs(f.a - r.a - (fv.a - rv.a)) + np.abs(f.b - r.b - (fv.b - rv.b))).mean())
    # per cell: means via bincount; ncc from the cell's own means and variances
    ok = sp.cell_ok
    c_ef, c_er, c_ch = _cells(sp, ef), _cells(sp, er), _cells(sp, ch)
    c_mf, c_mr, c_d = _cells(sp, f.log), _cells(sp, r.log), _cells(sp, d)
    c_ff, c_rr, c_fr = _cells(sp, f.log * f.log), _cells(sp, r.log * r.log), _cells(sp, f.log * r.log)
    var_f = np.maximum(c_ff - c_mf * c_mf, 0.0)
    var_r = np.maximum(c_rr - c_mr * c_mr, 0.0)
    c_ncc = (c_fr - c_mf * c_mr) / (np.sqrt(var_f * var_r) + 1e-6)
    c_spread = _cells(sp, np.abs(d - c_d[sp.cell]))
    if not ok.any():
        ok = np.ones(CELLS, bool)
    return [
        float(ef.mean() - er.mean()),
        float((cf * cr).mean() / (sf * sr + 1e-6)),
        float(np.abs(d - dmed).mean()),
        chroma,
        math.log((sf + 1e-3) / (sr + 1e-3)),
        float(np.median(c_ef[ok] - c_er[ok])),
        float(np.median(c_ncc[ok])),
        float(np.median(c_spread[ok])),
        float(np.median(c_ch[ok])),
        float((c_ch[ok] > CELL_CHANGED).mean()),
        grad - view_grad,
        _ncc(f.coarse, r.coarse),
        float((np.abs(d - illum) > CHANGE_LO).mean()),
        float(np.abs(dc - float(np.median(dc))).mean()),
        float(chc.mean()),
        float(np.median(_cells(sp, chc)[ok])),
    ]


def saturated(f: Pixels) -> float:
    return float((f.log >= LOG_SAT).mean())
