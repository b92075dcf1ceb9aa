"""Deterministic synthetic parking lots with ground truth, under the light and weather of a real lot.

A *lot* is one camera view: asphalt or concrete with texture and stains, painted bay lines, one
or two rows of spaces seen in perspective (a homography from the ground plane in metres to the
image; camera height, yaw and roll differ per lot), and its empty **reference** image
(calibration, taken in ordinary daylight). A *frame* re-renders the lot with cars and other
things in it under one *condition* (tests/vision_weather.py does the light and the lens):

=============  ==========================================================================
daylight       gain, colour temperature, brightness gradient, sometimes soft tree shadows
overcast       flat, low-contrast, bluish light; weak contact shadows
rain           wet darker ground, puddles, mirror reflections of cars, streaks, lens drops
night          low light, sodium lamps, headlight cones, parked cars with lights on, noise
dusk           dim warm/blue light, lamps coming on, noise
low_sun        warm light, long hard shadows of cars across neighbouring spaces
fog            scattering, thicker far away
glare          sun veil, bright blob and flare rings
dirty_lens     blur, lower contrast, brownish smudges
shake          the camera moved: shift 3-10 px, rotation up to 1.5 deg, zoom up to 2 %
occlusion      pillars, trees and cars in the aisle hide parts of spaces (truth unchanged)
people         a person or a bicycle stands in an empty space (truth: empty)
straddle       a car across the line of two spaces (truth: both occupied)
motorbike      parked motorbikes instead of cars (truth: occupied)
ground_colour  cars whose colour is within a few levels of the ground's
noise          Gaussian sensor noise plus salt-and-pepper pixels
jpeg           heavy JPEG compression
=============  ==========================================================================

``UNUSABLE`` conditions (covered lens, dense fog, white-out glare) must be refused by the frame
quality check, not classified. Every frame also gets mild variation (gain, sub-pixel shake,
JPEG q 60-90). Cars are boxes with a height in perspective, with glass and roof, in colours
from white to black including asphalt-like grey.

Each space of a frame has a ``kind``: ``""``, ``"car"``, ``"motorbike"``, ``"straddle"`` (part of
a car across two spaces), ``"person"``, ``"bicycle"`` or ``"occluded"``; the hard ones
(:data:`HARD_KINDS`) are reported separately. Frames of a lot come in *sequences*
(:func:`sequence`): a camera watching its lot for a while under one condition, cars coming and
going, so per-space references can adapt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from tests import vision_objects as ob
from tests import vision_weather as wx

W, H = 640, 360
CONDITIONS = (
    "daylight",
    "overcast",
    "rain",
    "night",
    "dusk",
    "low_sun",
    "fog",
    "glare",
    "dirty_lens",
    "shake",
    "occlusion",
    "people",
    "straddle",
    "motorbike",
    "ground_colour",
    "noise",
    "jpeg",
)
UNUSABLE = ("covered", "dense_fog", "whiteout")
HARD_KINDS = frozenset({"person", "bicycle", "straddle", "occluded"})
SPLIT_SEED = {"tune": 0, "heldout": 10_000}

CAR_COLOURS: list[tuple[str, tuple[float, float, float]]] = [  # BGR
    ("white", (235, 236, 238)),
    ("black", (22, 22, 26)),
    ("silver", (172, 172, 176)),
    ("dark_grey", (66, 68, 72)),
    ("asphalt", (0, 0, 0)),  # replaced by the lot's ground tone
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
    tall: float = 0.4  # image height of objects per metre of height, relative to ground scale
    neighbours: list[tuple[int, int]] = field(default_factory=list)  # adjacent spaces of one row


@dataclass
class Frame:
    image: np.ndarray  # uint8 BGR
    occupied: list[bool]
    condition: str
    params: dict[str, float] = field(default_factory=dict)
    kinds: list[str] = field(default_factory=list)

    @property
    def hard(self) -> list[bool]:
        return [k in HARD_KINDS for k in self.kinds]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def make_lot(seed: int, w: int = W, h: int = H) -> Lot:
    """One camera view of a parking area, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    concrete = rng.random() < 0.25
    tone = int(rng.integers(135, 175)) if concrete else int(rng.integers(70, 128))
    asphalt = tuple(int(np.clip(tone + t, 0, 255)) for t in rng.uniform(-5, 5, 3))
    img = np.empty((h, w, 3), np.float32)
    img[:] = asphalt
    img += (wx.smooth_noise(rng, (h, w), (9, 16)) * _u(rng, 4, 9))[..., None]
    img += (cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.7) * _u(rng, 3, 8))[..., None]
    img -= (wx.blobs(rng, (h, w), int(rng.integers(4, 12)), (6, 40), 3.0) * _u(rng, 5, 20))[..., None]
    horizon = int(rng.integers(18, 40) * h / H)
    img[:horizon] = np.float32([60, 110, 70]) * _u(rng, 0.7, 1.2)
    img[:horizon] += wx.smooth_noise(rng, (horizon, w), (3, 20))[..., None] * 12
    spaces: list[np.ndarray] = []
    ground: list[tuple[np.ndarray, tuple[float, float, float, float]]] = []
    neighbours: list[tuple[int, int]] = []
    rows = [(0.55, 0.96)] if rng.random() < 0.3 else [(0.14, 0.44), (0.55, 0.96)]
    roll = math.radians(_u(rng, -6, 6))
    line = (float(rng.integers(190, 235)),) * 3 if rng.random() < 0.8 else (40.0, 200.0, 225.0)
    width = _u(rng, 2.3, 2.7)
    depth = _u(rng, 4.8, 5.5)
    for top_f, bot_f in rows:
        n = int(rng.integers(5, 9))
        gw = n * width
        y0, y1 = top_f * h, bot_f * h
        shrink_l, shrink_r = _u(rng, 0.02, 0.2) * w, _u(rng, 0.02, 0.2) * w
        x_left, x_right = _u(rng, 0.02, 0.08) * w, w - _u(rng, 0.02, 0.08) * w
        skew = _u(rng, -0.06, 0.06) * w
        dst = np.float32([[x_left + shrink_l + skew, y0], [x_right - shrink_r + skew, y0], [x_right, y1], [x_left, y1]])
        c, s = math.cos(roll), math.sin(roll)
        dst = np.float32(
            [[w / 2 + (x - w / 2) * c - (y - h / 2) * s, h / 2 + (x - w / 2) * s + (y - h / 2) * c] for x, y in dst]
        )
        hom = cv2.getPerspectiveTransform(np.float32([[0, 0], [gw, 0], [gw, depth], [0, depth]]), dst)
        for i in range(n + 1):
            p = ob.to_img(np.float32([[i * width, 0], [i * width, depth]]), hom)
            cv2.line(img, _pt(p[0]), _pt(p[1]), line, max(2, round(3 * w / W)), cv2.LINE_AA)
        first = len(spaces)
        for i in range(n):
            rect = (i * width, 0.0, (i + 1) * width, depth)
            quad = np.float32([[rect[0], rect[1]], [rect[2], rect[1]], [rect[2], rect[3]], [rect[0], rect[3]]])
            poly = ob.to_img(quad, hom)
            if poly.min() < 0 or poly[:, 0].max() >= w or poly[:, 1].max() >= h:
                continue
            spaces.append(np.round(poly).astype(np.int32))
            ground.append((hom, rect))
            if len(spaces) - 1 > first and ground[-2][1][2] == rect[0]:
                neighbours.append((len(spaces) - 2, len(spaces) - 1))
    base = np.clip(img, 0, 255)
    reference = _jpeg(base.astype(np.uint8), 90)
    return Lot(seed, base, reference, spaces, ground, asphalt, _u(rng, 0.25, 0.55), neighbours)  # type: ignore[arg-type]


def _pt(p: np.ndarray) -> tuple[int, int]:
    return round(float(p[0])), round(float(p[1]))


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
    assert ok
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR))


def _colour(rng: np.random.Generator, lot: Lot, near_ground: bool) -> tuple[float, float, float]:
    name, colour = CAR_COLOURS[int(rng.integers(0, len(CAR_COLOURS)))]
    if near_ground or name == "asphalt":
        spread = 12 if near_ground else 8
        return tuple(float(np.clip(c + rng.uniform(-spread, spread), 0, 255)) for c in lot.asphalt)  # type: ignore[return-value]
    k = float(rng.uniform(0.85, 1.1))
    return (colour[0] * k, colour[1] * k, colour[2] * k)


def _centre(lot: Lot, k: int) -> tuple[np.ndarray, float, float]:
    hom, (x0, y0, x1, y1) = lot.ground[k]
    return hom, (x0 + x1) / 2, (y0 + y1) / 2


def _vehicle_rng(lot: Lot, ident: int, split: str) -> np.random.Generator:
    """The random stream of one parked vehicle: the same at every frame while it stays."""
    return np.random.default_rng([lot.seed, ident, SPLIT_SEED[split], 5])


def _place(
    lot: Lot,
    rng: np.random.Generator,
    cond: str,
    occupied: list[bool],
    vehicles: Sequence[int] | None = None,
    straddlers: Sequence[tuple[int, int, int]] | None = None,
    split: str = "tune",
) -> tuple[list[tuple[float, str, object, np.random.Generator]], list[str]]:
    """Decide what stands where: (sort depth, kind, drawing args, the stream its look is drawn
    from) and the space kinds. Without ``vehicles`` every vehicle is drawn anew from the frame's
    ``rng`` (placement, size, colour, lights); with it, ``vehicles[k]`` (>= 0) identifies the
    vehicle parked in space ``k`` and its look comes from its own stream, so it is the same car
    in every frame until it leaves; ``straddlers`` (space a, space b, vehicle) likewise."""
    n = len(lot.spaces)
    kinds = ["car" if o else "" for o in occupied]
    items: list[tuple[float, str, object, np.random.Generator]] = []
    straddled: set[int] = set()
    if vehicles is not None:
        pairs = [(a, b, _vehicle_rng(lot, v, split)) for a, b, v in straddlers or ()]
    elif cond == "straddle" and lot.neighbours:
        pairs = [(a, b, rng) for a, b in [lot.neighbours[int(i)] for i in rng.permutation(len(lot.neighbours))[:2]]]
    else:
        pairs = []
    for a, b, vr in pairs:
        if a in straddled or b in straddled:
            continue
        straddled |= {a, b}
        occupied[a] = occupied[b] = True
        kinds[a] = kinds[b] = "straddle"
        hom, _x0, cy = _centre(lot, a)
        items.append((cy, "car", (hom, lot.ground[a][1][2] + vr.uniform(-0.3, 0.3), cy), vr))
    for k in range(n):
        if not occupied[k] or k in straddled:
            continue
        hom, cx, cy = _centre(lot, k)
        vr = rng if vehicles is None else _vehicle_rng(lot, vehicles[k], split)
        if cond == "motorbike" and vr.random() < 0.6:
            kinds[k] = "motorbike"
            items.append((cy, "motorbike", (hom, cx + vr.uniform(-0.5, 0.5), cy + vr.uniform(-1.0, 1.0)), vr))
        else:
            items.append((cy, "car", (hom, cx + vr.uniform(-0.3, 0.3), cy + vr.uniform(-0.35, 0.35)), vr))
    if cond == "people":
        empty = [k for k in range(n) if not occupied[k]]
        for k in [empty[int(i)] for i in rng.permutation(len(empty))[: int(rng.integers(2, 5))]]:
            hom, cx, cy = _centre(lot, k)
            kinds[k] = "person" if rng.random() < 0.55 else "bicycle"
            items.append((cy + 1, kinds[k], (hom, cx + rng.uniform(-0.6, 0.6), cy + rng.uniform(-1.5, 1.5)), rng))
    return items, kinds


def _occluders(
    img: np.ndarray,
    lot: Lot,
    rng: np.random.Generator,
    sc: np.random.Generator,
    feet: list[np.ndarray],
    lights: list[np.random.Generator],
) -> None:
    """Pillars and trees (fixed for the scene) and passing cars in front of a row: they hide part
    of the spaces behind."""
    shadow = np.zeros(img.shape[:2], np.float32)
    for _ in range(int(sc.integers(1, 3))):
        hom, (x0, _y0, x1, y1) = lot.ground[int(sc.integers(0, len(lot.ground)))]
        if sc.random() < 0.5:
            ob.pillar(img, hom, x0 + sc.uniform(-0.3, x1 - x0), y1 + sc.uniform(0.2, 0.8), sc)
        else:
            ob.tree(img, hom, lot.tall, x0 + sc.uniform(0, x1 - x0), y1 + sc.uniform(0.3, 1.0), sc)
    for _ in range(int(rng.integers(0, 2))):
        hom, (x0, _y0, x1, y1) = lot.ground[int(rng.integers(0, len(lot.ground)))]
        col = _colour(rng, lot, False)
        x = x0 + rng.uniform(0, x1 - x0)
        feet.append(ob.car(img, shadow, hom, lot.tall, x, y1 + rng.uniform(1.2, 2.0), 4.4, 1.8, math.pi / 2, col, rng))
        lights.append(rng)


def render(
    lot: Lot,
    seed: int,
    condition: str,
    split: str = "tune",
    occupancy: float = 0.5,
    occupied: list[bool] | None = None,
    scene: int | None = None,
    vehicles: Sequence[int] | None = None,
    straddlers: Sequence[tuple[int, int, int]] | None = None,
) -> Frame:
    """One frame of ``lot`` under ``condition``; ``occupied`` fixes which spaces hold a vehicle
    (else each with probability ``occupancy``). ``scene`` seeds what stays put while the
    condition lasts (puddles, lamps, fog, glare, lens dirt, the camera's pointing, pillars);
    default: ``seed``, i.e. a scene of its own. ``vehicles`` (one per space, -1 = none; with
    ``straddlers``) makes parked vehicles persistent: each is drawn from its own stream, so the
    same vehicle looks the same (colour, place, lights) in every frame it is in (see
    :func:`sequence`); then ``occupied`` follows from them."""
    cond_index = (CONDITIONS + UNUSABLE).index(condition)
    rng = np.random.default_rng([lot.seed, seed, cond_index, SPLIT_SEED[split]])
    sc = np.random.default_rng([lot.seed, seed if scene is None else scene, cond_index, SPLIT_SEED[split], 1])
    h, w = lot.base.shape[:2]
    if vehicles is not None:
        occ = [v >= 0 for v in vehicles]
    elif occupied is not None:
        occ = list(occupied)
    else:
        occ = [bool(rng.random() < occupancy) for _ in lot.spaces]
    img = lot.base.copy()
    params: dict[str, float] = {}
    if condition == "rain":
        wet = _u(sc, 0.55, 0.8)
        puddle = wx.blobs(sc, (h, w), int(sc.integers(3, 9)), (15, 60), 4.0)
        img = img * wet * (1 - puddle[..., None]) + (img * 0.5 + _u(sc, 90, 150)) * puddle[..., None]
        params["wet"] = wet
    items, kinds = _place(lot, rng, condition, occ, vehicles, straddlers, split)
    before = img.copy()
    shadow = np.zeros((h, w), np.float32)
    feet: list[np.ndarray] = []
    lights: list[np.random.Generator] = []  # the stream that decides each car's parking lights
    for _d, kind, args, vr in sorted(items, key=lambda t: t[0]):
        hom, cx, cy = args  # type: ignore[misc]
        if kind == "car":
            length, width = _u(vr, 3.6, 4.9), _u(vr, 1.6, 1.95)
            col = _colour(vr, lot, condition == "ground_colour" and vr.random() < 0.8)
            feet.append(ob.car(img, shadow, hom, lot.tall, cx, cy, length, width, math.radians(_u(vr, -6, 6)), col, vr))
            lights.append(vr)
        elif kind == "motorbike":
            ob.motorbike(img, shadow, hom, lot.tall, cx, cy, math.radians(_u(vr, -10, 10)), _colour(vr, lot, False), vr)
        elif kind == "person":
            ob.person(img, hom, lot.tall, cx, cy, vr)
        else:
            ob.bicycle(img, hom, lot.tall, cx, cy, vr)
    if condition == "occlusion":
        pre = img.copy()
        _occluders(img, lot, rng, sc, feet, lights)
        changed = np.abs(img - pre).max(axis=2) > 2
        for k, poly in enumerate(lot.spaces):
            m = np.zeros((h, w), np.uint8)
            cv2.fillPoly(m, [poly], 1)
            if changed[m.astype(bool)].mean() > 0.08:
                kinds[k] = "occluded"
    objects = (np.abs(img - before).max(axis=2) > 2).astype(np.float32)
    contact = 0.15 if condition in ("overcast", "fog", "rain") else 0.45
    img *= (1 - contact * cv2.GaussianBlur(shadow, (0, 0), 2.0))[..., None]
    img = _light(img, lot, rng, sc, condition, feet, lights, objects, params)
    img = _lens(img, rng, sc, condition, params)
    return Frame(_jpeg(np.clip(img, 0, 255).astype(np.uint8), int(params["jpeg_q"])), occ, condition, params, kinds)


def _light(
    img: np.ndarray,
    lot: Lot,
    rng: np.random.Generator,
    sc: np.random.Generator,
    cond: str,
    feet: list[np.ndarray],
    lights: list[np.random.Generator],
    objects: np.ndarray,
    params: dict[str, float],
) -> np.ndarray:
    """Light of the scene (``sc``: fixed while the condition lasts) with per-frame drift (``rng``)."""
    h, w = img.shape[:2]
    jitter = _u(rng, 0.9, 1.1)
    gain = np.full((h, w), jitter, np.float32)
    tint = np.float32([1, 1, 1]) + rng.uniform(-0.03, 0.03, 3).astype(np.float32)
    if cond == "daylight":
        g = _u(sc, 0.6, 1.4) * jitter
        gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :] * _u(sc, -0.2, 0.2)
        gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None] * _u(sc, -0.15, 0.15)
        gain = g * (1 + gx + gy)
        if sc.random() < 0.5:
            gain *= 1 - (1 - _u(sc, 0.5, 0.7)) * wx.blobs(sc, (h, w), int(sc.integers(2, 5)), (20, 70), 6.0)
        tint = tint + sc.uniform(-0.1, 0.1, 3).astype(np.float32)
        params["gain"] = g
    elif cond in ("overcast", "rain"):
        gain *= _u(sc, 0.45, 0.8)
        tint = np.float32([1.06, 1.0, 0.94])
    elif cond in ("night", "dusk"):
        g = (_u(sc, 0.12, 0.3) if cond == "night" else _u(sc, 0.25, 0.5)) * jitter
        gain = g + wx.lamps(sc, (h, w), int(sc.integers(1, 3)), (0.2, 0.55) if cond == "night" else (0.05, 0.2))
        tint = np.float32([0.75, 0.95, 1.2]) if cond == "night" else np.float32([1.1, 0.95, 1.0])
        params["gain"] = g
    elif cond == "low_sun":
        gain *= _u(sc, 0.8, 1.4)
        tint = np.float32([0.85, 0.97, 1.15])
        gain *= 1 - (1 - _u(sc, 0.35, 0.55)) * _long_shadows(sc, feet, (h, w))
    img = img * gain[..., None] * tint
    if cond == "overcast":
        img = wx.flatten(img, _u(sc, 0.55, 0.8))
    elif cond == "rain":
        img = wx.flatten(img, _u(sc, 0.7, 0.9))
        wx.reflections(img, objects, rng)
        wx.rain_streaks(img, rng, int(rng.integers(150, 500)))
    elif cond in ("night", "dusk"):
        wx.headlights(img, rng, int(rng.integers(0, 3)))
        wx.car_lights(img, lights, feet, 0.3 if cond == "night" else 0.15)
    elif cond == "fog":
        params["fog_t"] = t = _u(sc, 0.4, 0.75) * _u(rng, 0.95, 1.05)
        img = wx.fog(img, sc, t)
    elif cond == "glare":
        wx.glare(img, sc, _u(sc, 50, 140) * _u(rng, 0.9, 1.1))
    elif cond == "dense_fog":
        img = wx.fog(img, sc, _u(sc, 0.04, 0.12))
    elif cond == "whiteout":
        img = wx.whiteout(img, sc)
    return img


def _long_shadows(sc: np.random.Generator, feet: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Shadows of a low sun: each car's footprint swept along the sun direction by 1-2 times its
    size (image approximation of 3-8 m), plus a building edge."""
    h, w = shape
    m = np.zeros((h, w), np.float32)
    ang = sc.uniform(0, 2 * math.pi)
    reach = _u(sc, 1.0, 2.0)
    for foot in feet:
        size = float(np.ptp(foot[:, 0]))
        d = np.float32([math.cos(ang), 0.5 * math.sin(ang)]) * size * reach
        hull = cv2.convexHull(np.vstack([foot, foot + d]).astype(np.float32))
        cv2.fillPoly(m, [np.round(hull * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    xa, xb = sc.uniform(0, w), sc.uniform(0, w)
    side = 0 if sc.random() < 0.5 else w
    cv2.fillPoly(m, [np.int32([[xa, 0], [xb, h], [side, h], [side, 0]])], 1.0)
    return np.asarray(cv2.GaussianBlur(m, (0, 0), 1.5), np.float32)


def _lens(
    img: np.ndarray, rng: np.random.Generator, sc: np.random.Generator, cond: str, params: dict[str, float]
) -> np.ndarray:
    h, w = img.shape[:2]
    if cond == "rain" and sc.random() < 0.5:
        img = wx.droplets(img, sc, int(sc.integers(3, 15)))
    elif cond == "dirty_lens":
        img = wx.dirty_lens(img, sc, _u(sc, 1.0, 2.5))
    elif cond == "covered":
        img = wx.covered(img, rng)
    sigma = {"noise": _u(rng, 8, 18), "night": _u(rng, 5, 12), "dusk": _u(rng, 3, 8)}.get(cond, 2.0)
    img = img + rng.normal(0, sigma, img.shape).astype(np.float32)
    if cond == "noise":
        salt = _u(rng, 0.003, 0.02)
        sp = rng.random((h, w))
        img[sp < salt / 2] = 0
        img[sp > 1 - salt / 2] = 255
    params["noise_sigma"] = sigma
    img = np.clip(img, 0, 255)
    if cond == "shake":  # re-pointed for the scene, plus a little wind on every frame
        params["shift"] = shift = _u(sc, 3, 10) * w / W
        img = wx.shake(img, sc, shift + _u(rng, -1, 1), _u(sc, -1.5, 1.5) + _u(rng, -0.2, 0.2), _u(sc, 0.98, 1.02))
    else:
        m = np.float32([[1, 0, rng.uniform(-1.0, 1.0)], [0, 1, rng.uniform(-1.0, 1.0)]])
        img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    params["jpeg_q"] = int(_u(rng, 12, 30)) if cond == "jpeg" else int(rng.integers(60, 91))
    return img


def sequence(lot: Lot, condition: str, seed: int, n: int, split: str = "tune", persistent: bool = False) -> list[Frame]:
    """``n`` frames of one lot under one condition, as a camera sees them over a while: each space
    starts free or taken (even odds) and changes between frames with probability 0.3.

    ``persistent`` False (the generator before 2026-12-06, kept for comparison): every parked
    vehicle is drawn anew in every frame (new colour, size, place within the bay, lights), and
    under ``straddle`` two new pairs of bays are straddled in every frame. True (what a real
    camera sees): a vehicle that arrives stays the same vehicle (colour, size, place, lights) in
    every frame until it leaves; a later arrival is another vehicle. Under ``straddle`` up to two
    pairs of neighbouring bays, chosen per sequence, are straddled by one car each, which comes
    (into two empty bays: their own cars leave first) and goes with the same probability 0.3 and
    starts present. Per-frame things stay per-frame either way: people and bicycles, cars passing
    in the aisle, headlight cones, rain streaks and reflections' strength, noise, light drift,
    wind jitter, JPEG quality."""
    rng = np.random.default_rng([lot.seed, seed, 77, SPLIT_SEED[split]])
    occ = [bool(rng.random() < 0.5) for _ in lot.spaces]
    out = []
    if not persistent:
        for j in range(n):
            if j:
                occ = [o != bool(rng.random() < 0.3) for o in occ]
            out.append(render(lot, seed * 1000 + j, condition, split, occupied=occ, scene=seed))
        return out
    counter = iter(range(seed * 10_000, (seed + 1) * 10_000))
    vehicles = [next(counter) if o else -1 for o in occ]
    pairs: list[tuple[int, int]] = []
    if condition == "straddle":
        for a, b in [lot.neighbours[int(i)] for i in rng.permutation(len(lot.neighbours))[:2]]:
            if not any({a, b} & {c, d} for c, d in pairs):
                pairs.append((a, b))
    straddlers = [next(counter) for _ in pairs]  # -1 = gone
    for j in range(n):
        if j:
            for i in range(len(pairs)):
                if rng.random() < 0.3:
                    straddlers[i] = -1 if straddlers[i] >= 0 else next(counter)
            covered = {k for (a, b), v in zip(pairs, straddlers, strict=True) if v >= 0 for k in (a, b)}
            for k in range(len(vehicles)):
                if rng.random() < 0.3 and k not in covered:
                    vehicles[k] = -1 if vehicles[k] >= 0 else next(counter)
        covered = {k for (a, b), v in zip(pairs, straddlers, strict=True) if v >= 0 for k in (a, b)}
        for k in covered:
            vehicles[k] = -1  # a straddling car stands where the bays' own cars were
        present = [(a, b, v) for (a, b), v in zip(pairs, straddlers, strict=True) if v >= 0]
        out.append(
            render(lot, seed * 1000 + j, condition, split, scene=seed, vehicles=list(vehicles), straddlers=present)
        )
    return out


def dataset(
    split: str, lots: int = 6, frames_per_condition: int = 4, conditions: tuple[str, ...] = CONDITIONS
) -> list[tuple[Lot, Frame]]:
    """The whole split: for each lot, a sequence of ``frames_per_condition`` frames per condition."""
    base = SPLIT_SEED[split]
    out: list[tuple[Lot, Frame]] = []
    for i in range(lots):
        lot = make_lot(base + i)
        for cond in conditions:
            out.extend((lot, fr) for fr in sequence(lot, cond, base + 100 * i, frames_per_condition, split))
    return out


def write_samples(directory: str, split: str = "heldout", n: int = 1) -> None:  # pragma: no cover - manual
    """Write a few frames as JPEG for eyeballing (``python -m tests.vision_synth DIR``)."""
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        lot = make_lot(SPLIT_SEED[split] + i)
        cv2.imwrite(str(d / f"lot{i}_reference.jpg"), lot.reference)
        for cond in CONDITIONS + UNUSABLE:
            fr = render(lot, 1, cond, split)
            img = fr.image.copy()
            for poly, occ, kind in zip(lot.spaces, fr.occupied, fr.kinds, strict=True):
                colour = (0, 0, 255) if occ else (0, 255, 0)
                cv2.polylines(img, [poly], True, (255, 0, 255) if kind in HARD_KINDS else colour, 1)
            cv2.imwrite(str(d / f"lot{i}_{cond}.jpg"), img)


if __name__ == "__main__":  # pragma: no cover
    import sys

    write_samples(sys.argv[1] if len(sys.argv) > 1 else "/tmp/vision_samples", n=2)
