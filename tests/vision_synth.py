"""Deterministic synthetic parking-lot images with ground truth (issue 7 accuracy tests).

A *lot* is one camera view: asphalt with texture and stains, painted bay lines, one or two rows
of spaces seen in perspective (a homography from the ground plane in metres to the image), and
its empty **reference** image (calibration). A *frame* re-renders the lot with cars in some
spaces under one *condition*:

- ``daylight``  global gain/offset, colour temperature, a brightness gradient
- ``shadows``   hard-edged building shadows and soft tree-blob shadows across spaces
- ``noise``     Gaussian sensor noise plus salt-and-pepper pixels
- ``occlusion`` a tree trunk, pole or person standing over part of a space (truth unchanged)
- ``night``     low light, sodium street-lamp glow, headlight cones on the ground, more noise
- ``jpeg``      heavy JPEG compression

Every frame also gets mild variation (gain, sub-pixel camera shake, JPEG q 60-90). Cars are
rotated rounded rectangles in the ground plane (so they follow the perspective) with windows,
a roof panel and a soft contact shadow, in colours including black, dark grey, white and
asphalt-like grey, small cars to vans, off-centre and slightly skewed.

Two splits: ``tune`` (lot/frame seeds 0..k, parameter ranges ``TUNE``) used to choose the
method's thresholds, and ``heldout`` (seeds from 10_000, ranges ``HELDOUT``, several outside the
tune ranges: darker nights, stronger shadows, more noise, lower JPEG quality, bigger occluders)
which is never used for tuning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

W, H = 640, 360
CONDITIONS = ("daylight", "shadows", "noise", "occlusion", "night", "jpeg")

# Parameter ranges per split. Held-out ranges deliberately extend past the tune ranges.
TUNE: dict[str, tuple[float, float]] = {
    "gain": (0.7, 1.3),
    "shadow": (0.42, 0.62),  # multiplicative factor inside a shadow
    "noise_sigma": (5.0, 13.0),
    "salt": (0.002, 0.01),
    "night_gain": (0.22, 0.35),
    "jpeg_q": (22, 40),
    "occluder_frac": (0.15, 0.3),  # share of a space's width an occluder covers
}
HELDOUT: dict[str, tuple[float, float]] = {
    "gain": (0.55, 1.5),
    "shadow": (0.32, 0.5),
    "noise_sigma": (10.0, 18.0),
    "salt": (0.005, 0.02),
    "night_gain": (0.16, 0.26),
    "jpeg_q": (14, 30),
    "occluder_frac": (0.2, 0.4),
}
SPLIT_SEED = {"tune": 0, "heldout": 10_000}

CAR_COLOURS: list[tuple[str, tuple[int, int, int]]] = [  # BGR
    ("white", (235, 236, 238)),
    ("black", (22, 22, 26)),
    ("silver", (172, 172, 176)),
    ("dark_grey", (66, 68, 72)),
    ("asphalt", (0, 0, 0)),  # replaced by the lot's asphalt tone
    ("red", (40, 40, 190)),
    ("blue", (160, 80, 30)),
    ("navy", (80, 40, 25)),
    ("green", (60, 120, 50)),
    ("yellow", (40, 190, 220)),
    ("beige", (150, 180, 200)),
]


@dataclass
class Lot:
    seed: int
    base: np.ndarray  # float32 BGR, empty lot at reference light
    reference: np.ndarray  # uint8 BGR, JPEG round-tripped (what calibration stores)
    spaces: list[np.ndarray]  # int polygons (4 x 2) in image pixels
    ground: list[tuple[np.ndarray, tuple[float, float, float, float]]]  # (H ground->image, space rect)
    asphalt: tuple[int, int, int]


@dataclass
class Frame:
    image: np.ndarray  # uint8 BGR
    occupied: list[bool]
    condition: str
    params: dict[str, float] = field(default_factory=dict)


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    small = rng.standard_normal((cells[0], cells[1])).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def make_lot(seed: int, w: int = W, h: int = H) -> Lot:
    """One camera view of a parking area, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    tone = int(rng.integers(78, 128))
    tint = rng.uniform(-4, 4, 3)
    asphalt = tuple(int(np.clip(tone + t, 0, 255)) for t in tint)
    img = np.empty((h, w, 3), np.float32)
    img[:] = asphalt
    mott = _smooth_noise(rng, (h, w), (9, 16)) * rng.uniform(4, 9)
    grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.7) * rng.uniform(4, 8)
    img += (mott + grain)[..., None]
    # stains / oil spots / patches
    for _ in range(int(rng.integers(4, 12))):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        ax = (int(rng.integers(6, 40)), int(rng.integers(4, 20)))
        stain = np.zeros((h, w), np.float32)
        cv2.ellipse(stain, c, ax, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
        stain = cv2.GaussianBlur(stain, (0, 0), 3)
        img -= stain[..., None] * rng.uniform(5, 20)
    # upper band: kerb, grass/building edge
    horizon = int(rng.integers(18, 40))
    img[:horizon] = np.array([60, 110, 70], np.float32) * rng.uniform(0.7, 1.2)
    img[:horizon] += _smooth_noise(rng, (horizon, w), (3, 20))[..., None] * 12
    spaces: list[np.ndarray] = []
    ground: list[tuple[np.ndarray, tuple[float, float, float, float]]] = []
    rows = [(0.58, 0.96)] if rng.random() < 0.3 else [(0.16, 0.46), (0.56, 0.96)]
    for top_f, bot_f in rows:
        n = int(rng.integers(6, 10))
        depth = 5.0
        width = 2.5
        gw = n * width
        y0, y1 = top_f * h, bot_f * h
        shrink = rng.uniform(0.06, 0.16) * w
        x_left, x_right = rng.uniform(0.02, 0.08) * w, w - rng.uniform(0.02, 0.08) * w
        skew = rng.uniform(-0.05, 0.05) * w
        dst = np.float32(
            [
                [x_left + shrink + skew, y0],
                [x_right - shrink + skew, y0],
                [x_right, y1],
                [x_left, y1],
            ]
        )
        src = np.float32([[0, 0], [gw, 0], [gw, depth], [0, depth]])
        hom = cv2.getPerspectiveTransform(src, dst)
        line = (int(rng.integers(190, 235)),) * 3
        for i in range(n + 1):
            pts = cv2.perspectiveTransform(np.float32([[[i * width, 0], [i * width, depth]]]), hom)[0]
            cv2.line(img, _pt(pts[0]), _pt(pts[1]), line, 3, cv2.LINE_AA)
        pts = cv2.perspectiveTransform(np.float32([[[0, depth], [gw, depth]]]), hom)[0]
        cv2.line(img, _pt(pts[0]), _pt(pts[1]), line, 3, cv2.LINE_AA)
        for i in range(n):
            rect = (i * width, 0.0, (i + 1) * width, depth)
            quad = np.float32([[[rect[0], rect[1]], [rect[2], rect[1]], [rect[2], rect[3]], [rect[0], rect[3]]]])
            poly = cv2.perspectiveTransform(quad, hom)[0]
            spaces.append(np.round(poly).astype(np.int32))
            ground.append((hom, rect))
    base = np.clip(img, 0, 255)
    reference = _jpeg(base.astype(np.uint8), 90)
    return Lot(seed, base, reference, spaces, ground, asphalt)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def _rounded_rect(cx: float, cy: float, length: float, width: float, angle: float, r: float) -> np.ndarray:
    """Ground-plane polygon of a rounded rectangle, long axis along y (into the bay)."""
    pts = []
    hx, hy = width / 2 - r, length / 2 - r
    for corner, (sx, sy) in enumerate([(1, 1), (-1, 1), (-1, -1), (1, -1)]):
        start = corner * 90
        for k in range(5):
            a = math.radians(start + k * 22.5)
            pts.append((sx * hx + r * math.cos(a), sy * hy + r * math.sin(a)))
    ca, sa = math.cos(angle), math.sin(angle)
    return np.float32([[cx + x * ca - y * sa, cy + x * sa + y * ca] for x, y in pts])


def _to_img(poly: np.ndarray, hom: np.ndarray) -> np.ndarray:
    out = cv2.perspectiveTransform(poly.reshape(1, -1, 2).astype(np.float32), hom)[0]
    return np.round(out * 4).astype(np.int32)  # 2 bits of sub-pixel precision


def _fill(img: np.ndarray, poly: np.ndarray, colour: tuple[float, ...]) -> None:
    cv2.fillPoly(img, [poly], colour, cv2.LINE_AA, shift=2)


def _draw_car(img: np.ndarray, rng: np.random.Generator, lot: Lot, k: int, colour: tuple[int, int, int]) -> None:
    hom, (x0, y0, x1, y1) = lot.ground[k]
    length = rng.uniform(3.5, 4.9)
    width = rng.uniform(1.55, 1.95)
    cx = (x0 + x1) / 2 + rng.uniform(-0.3, 0.3)
    cy = (y0 + y1) / 2 + rng.uniform(-0.35, 0.35)
    ang = math.radians(rng.uniform(-6, 6))
    # soft contact shadow
    sh = np.zeros(img.shape[:2], np.float32)
    _fill(sh, _to_img(_rounded_rect(cx + 0.15, cy + 0.2, length + 0.3, width + 0.3, ang, 0.4), hom), (1.0,))
    sh = cv2.GaussianBlur(sh, (0, 0), 2.0)
    img *= (1 - 0.45 * sh)[..., None]
    col = np.array(colour, np.float32) * rng.uniform(0.85, 1.1)
    _fill(img, _to_img(_rounded_rect(cx, cy, length, width, ang, 0.35), hom), tuple(float(c) for c in col))
    # roof panel (slightly different shade), windscreen and rear window
    roof = np.clip(col * rng.uniform(0.8, 1.15), 0, 255)
    _fill(
        img, _to_img(_rounded_rect(cx, cy, length * 0.42, width * 0.78, ang, 0.2), hom), tuple(float(c) for c in roof)
    )
    glass = tuple(float(v) for v in np.array([45, 40, 35], np.float32) * rng.uniform(0.6, 1.6))
    for off, frac in ((-length * 0.27, 0.13), (length * 0.26, 0.1)):
        ocx = cx - off * math.sin(ang)
        ocy = cy + off * math.cos(ang)
        _fill(img, _to_img(_rounded_rect(ocx, ocy, length * frac, width * 0.8, ang, 0.1), hom), glass)


def _occluder(img: np.ndarray, rng: np.random.Generator, poly: np.ndarray, frac: float) -> None:
    x, y, w, h = cv2.boundingRect(poly)
    kind = rng.integers(0, 3)
    cx = int(x + rng.uniform(0.2, 0.8) * w)
    bw = max(3, int(w * frac))
    bottom = int(y + rng.uniform(0.5, 1.0) * h)
    if kind == 0:  # pole: thin, grey, tall
        bw = max(3, bw // 2)
        cv2.rectangle(img, (cx - bw // 2, 0), (cx + bw // 2, bottom), (120, 120, 125), -1)
    elif kind == 1:  # tree: brown trunk, green crown
        cv2.rectangle(img, (cx - bw // 2, bottom - int(h * 1.4)), (cx + bw // 2, bottom), (40, 60, 90), -1)
        cv2.circle(img, (cx, bottom - int(h * 1.4)), int(w * 0.5), (40, 110, 50), -1, cv2.LINE_AA)
    else:  # person: legs, torso, head
        top = bottom - int(h * rng.uniform(0.7, 1.0))
        shirt = tuple(float(c) for c in rng.integers(20, 230, 3))
        cv2.rectangle(img, (cx - bw // 2, top + (bottom - top) // 3), (cx + bw // 2, bottom), (60, 50, 40), -1)
        cv2.rectangle(
            img, (cx - bw // 2, top + (bottom - top) // 8), (cx + bw // 2, top + (bottom - top) // 2), shirt, -1
        )
        cv2.circle(img, (cx, top + (bottom - top) // 12), max(2, bw // 3), (120, 150, 190), -1, cv2.LINE_AA)


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def render(lot: Lot, seed: int, condition: str, split: str = "tune", occupancy: float = 0.5) -> Frame:
    """One frame of ``lot`` under ``condition`` with a random set of occupied spaces."""
    ranges = TUNE if split == "tune" else HELDOUT
    rng = np.random.default_rng([lot.seed, seed, CONDITIONS.index(condition), SPLIT_SEED[split]])
    h, w = lot.base.shape[:2]
    img = lot.base.copy()
    occupied = [bool(rng.random() < occupancy) for _ in lot.spaces]
    for k, occ in enumerate(occupied):
        if occ:
            name, colour = CAR_COLOURS[int(rng.integers(0, len(CAR_COLOURS)))]
            if name == "asphalt":
                colour = tuple(int(np.clip(c + rng.uniform(-8, 8), 0, 255)) for c in lot.asphalt)  # type: ignore[assignment]
            _draw_car(img, rng, lot, k, colour)
    params: dict[str, float] = {}
    # mild variation everywhere
    gain = rng.uniform(0.9, 1.1)
    light = np.full((h, w), gain, np.float32)
    tint = np.array([1.0, 1.0, 1.0], np.float32) + rng.uniform(-0.03, 0.03, 3).astype(np.float32)
    if condition == "daylight":
        gain = _u(rng, ranges["gain"])
        gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :] * rng.uniform(-0.2, 0.2)
        gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None] * rng.uniform(-0.15, 0.15)
        light = gain * (1 + gx + gy)
        tint = np.array([1.0, 1.0, 1.0], np.float32) + rng.uniform(-0.1, 0.1, 3).astype(np.float32)
        params["gain"] = gain
    elif condition == "shadows":
        factor = _u(rng, ranges["shadow"])
        mask = np.zeros((h, w), np.float32)
        # building shadow: a big polygon with a straight edge across the lot
        xa, xb = rng.uniform(0, w), rng.uniform(0, w)
        side = rng.random() < 0.5
        poly = np.int32([[xa, 0], [xb, h], [0 if side else w, h], [0 if side else w, 0]])
        cv2.fillPoly(mask, [poly], 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(1.0, 4.0))
        # tree shadows: soft blobs
        for _ in range(int(rng.integers(2, 6))):
            blob = np.zeros((h, w), np.float32)
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.ellipse(
                blob,
                c,
                (int(rng.integers(20, 70)), int(rng.integers(10, 40))),
                float(rng.uniform(0, 180)),
                0,
                360,
                1.0,
                -1,
            )
            mask = np.maximum(mask, cv2.GaussianBlur(blob, (0, 0), rng.uniform(3, 8)))
        light = light * (1 - (1 - factor) * mask)
        tint = tint * np.array([1.04, 1.0, 0.97], np.float32)
        params["shadow"] = factor
    elif condition == "night":
        ng = _u(rng, ranges["night_gain"])
        light = np.full((h, w), ng, np.float32)
        for _ in range(int(rng.integers(1, 3))):  # street lamps
            lx, ly = rng.uniform(0, w), rng.uniform(-0.2 * h, 0.5 * h)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            d2 = ((xx - lx) ** 2 + (yy - ly) ** 2) / (rng.uniform(0.25, 0.5) * w) ** 2
            light += np.exp(-d2) * rng.uniform(0.2, 0.5)
        tint = np.array([0.75, 0.95, 1.2], np.float32)  # sodium-orange
        params["night_gain"] = ng
    img = img * light[..., None] * tint
    if condition == "night":
        for _ in range(int(rng.integers(1, 3))):  # headlight cones on the ground
            cone = np.zeros((h, w), np.float32)
            x0, y0 = rng.uniform(0, w), rng.uniform(0.3 * h, h)
            ang = rng.uniform(0, 2 * math.pi)
            ln = rng.uniform(80, 220)
            spread = rng.uniform(0.2, 0.4)
            pts = np.int32(
                [
                    [x0, y0],
                    [x0 + ln * math.cos(ang - spread), y0 + ln * math.sin(ang - spread)],
                    [x0 + ln * math.cos(ang + spread), y0 + ln * math.sin(ang + spread)],
                ]
            )
            cv2.fillPoly(cone, [pts], 1.0)
            cone = cv2.GaussianBlur(cone, (0, 0), 12)
            img += (cone * rng.uniform(40, 90))[..., None] * np.array([0.9, 1.0, 1.0], np.float32)
    if condition == "occlusion":
        frac = _u(rng, ranges["occluder_frac"])
        for k in rng.choice(len(lot.spaces), size=min(len(lot.spaces), int(rng.integers(2, 5))), replace=False):
            _occluder(img, rng, lot.spaces[int(k)], frac)
        params["occluder_frac"] = frac
    sigma = 2.0
    salt = 0.0
    if condition == "noise":
        sigma = _u(rng, ranges["noise_sigma"])
        salt = _u(rng, ranges["salt"])
    elif condition == "night":
        sigma = _u(rng, ranges["noise_sigma"]) * 0.6
    img = img + rng.normal(0, sigma, img.shape).astype(np.float32)
    if salt:
        sp = rng.random((h, w))
        img[sp < salt / 2] = 0
        img[sp > 1 - salt / 2] = 255
    params["noise_sigma"] = sigma
    # sub-pixel camera shake
    m = np.float32([[1, 0, rng.uniform(-1.0, 1.0)], [0, 1, rng.uniform(-1.0, 1.0)]])
    img = cv2.warpAffine(np.clip(img, 0, 255), m, (w, h), borderMode=cv2.BORDER_REFLECT)
    q = int(_u(rng, ranges["jpeg_q"])) if condition == "jpeg" else int(rng.integers(60, 91))
    params["jpeg_q"] = q
    out = _jpeg(img.astype(np.uint8), q)
    return Frame(out, occupied, condition, params)


def dataset(split: str, lots: int = 6, frames_per_condition: int = 4) -> list[tuple[Lot, Frame]]:
    """The whole split: for each lot, ``frames_per_condition`` frames of every condition."""
    base = SPLIT_SEED[split]
    out: list[tuple[Lot, Frame]] = []
    for i in range(lots):
        lot = make_lot(base + i)
        for cond in CONDITIONS:
            for j in range(frames_per_condition):
                out.append((lot, render(lot, base + 100 * i + j, cond, split)))
    return out


def write_samples(directory: str, split: str = "heldout", n: int = 1) -> None:  # pragma: no cover - manual
    """Write a few frames as JPEG for eyeballing (``python -m tests.vision_synth``)."""
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        lot = make_lot(SPLIT_SEED[split] + i)
        cv2.imwrite(str(d / f"lot{i}_reference.jpg"), lot.reference)
        for cond in CONDITIONS:
            fr = render(lot, 1, cond, split)
            img = fr.image.copy()
            for poly, occ in zip(lot.spaces, fr.occupied, strict=True):
                cv2.polylines(img, [poly], True, (0, 0, 255) if occ else (0, 255, 0), 1)
            cv2.imwrite(str(d / f"lot{i}_{cond}.jpg"), img)


if __name__ == "__main__":  # pragma: no cover
    import sys

    write_samples(sys.argv[1] if len(sys.argv) > 1 else "/tmp/vision_samples", n=2)
