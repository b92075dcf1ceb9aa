"""Things standing in a synthetic lot (tests/vision_synth.py): cars, motorbikes, people, bicycles,
pillars and trees, drawn in perspective with a height.

The ground plane of a row maps metres to pixels through a homography; an object is a footprint
in the ground plane and is raised by ``height`` metres *upwards in the image*, scaled by the
local pixels per metre and the lot's ``tall`` factor (how steeply the camera looks down: 0 = from
straight above, where nothing has an image height). So a car in the front row hides the bottom
of the space behind it, and a pillar in the aisle hides part of the space behind it, as on a
real camera.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

Colour = tuple[float, float, float]


def rounded_rect(cx: float, cy: float, length: float, width: float, angle: float, r: float) -> np.ndarray:
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


def to_img(poly: np.ndarray, hom: np.ndarray) -> np.ndarray:
    """Ground polygon (metres) -> float image points."""
    return np.asarray(cv2.perspectiveTransform(poly.reshape(1, -1, 2).astype(np.float32), hom)[0], np.float32)


def px_per_m(hom: np.ndarray, x: float, y: float) -> float:
    p = to_img(np.float32([[x, y], [x + 1.0, y]]), hom)
    return float(np.hypot(*(p[1] - p[0])))


def fill(img: np.ndarray, pts: np.ndarray, colour: Colour | tuple[float]) -> None:
    """Anti-aliased fill with 2 bits of sub-pixel precision."""
    cv2.fillPoly(img, [np.round(pts * 4).astype(np.int32)], colour, cv2.LINE_AA, shift=2)


def _hull(*polys: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.convexHull(np.vstack(polys).astype(np.float32)).reshape(-1, 2), np.float32)


def _up(pts: np.ndarray, dy: float) -> np.ndarray:
    return pts - np.float32([0.0, dy])


def _shade(c: Sequence[float], k: float) -> Colour:
    return (float(min(255, c[0] * k)), float(min(255, c[1] * k)), float(min(255, c[2] * k)))


def car(
    img: np.ndarray,
    shadow: np.ndarray,
    hom: np.ndarray,
    tall: float,
    cx: float,
    cy: float,
    length: float,
    width: float,
    angle: float,
    colour: Colour,
    rng: np.random.Generator,
) -> np.ndarray:
    """A car: contact shadow on the ground, body box, glass, roof. Returns its footprint (image)."""
    foot = to_img(rounded_rect(cx, cy, length, width, angle, 0.35), hom)
    h_px = 1.45 * px_per_m(hom, cx, cy) * tall
    fill(shadow, to_img(rounded_rect(cx + 0.1, cy + 0.15, length + 0.35, width + 0.35, angle, 0.45), hom), (1.0,))
    side = _hull(foot, _up(foot, 0.55 * h_px))
    fill(img, side, _shade(colour, 0.8))
    fill(img, _up(foot, 0.55 * h_px), colour)
    cab = to_img(rounded_rect(cx, cy + 0.1 * length, length * 0.5, width * 0.82, angle, 0.2), hom)
    glass = _shade((45.0, 40.0, 35.0), float(rng.uniform(0.6, 1.7)))
    fill(img, _hull(_up(cab, 0.55 * h_px), _up(cab, h_px)), glass)
    roof = to_img(rounded_rect(cx, cy + 0.1 * length, length * 0.38, width * 0.72, angle, 0.2), hom)
    fill(img, _up(roof, h_px), _shade(colour, float(rng.uniform(0.85, 1.12))))
    return foot


def motorbike(
    img: np.ndarray,
    shadow: np.ndarray,
    hom: np.ndarray,
    tall: float,
    cx: float,
    cy: float,
    angle: float,
    colour: Colour,
    rng: np.random.Generator,
) -> None:
    """A parked motorbike: 2.1 m x 0.8 m, dark wheels, tank/seat in its colour, ~1.1 m tall."""
    length, width = 2.1, 0.8
    h_px = 1.1 * px_per_m(hom, cx, cy) * tall
    fill(shadow, to_img(rounded_rect(cx, cy + 0.1, length + 0.3, width + 0.3, angle, 0.3), hom), (1.0,))
    foot = to_img(rounded_rect(cx, cy, length, width * 0.5, angle, 0.15), hom)
    fill(img, _hull(foot, _up(foot, 0.45 * h_px)), (25.0, 25.0, 28.0))  # wheels, engine
    body = to_img(rounded_rect(cx, cy, length * 0.7, width * 0.7, angle, 0.2), hom)
    fill(img, _hull(_up(body, 0.45 * h_px), _up(body, 0.8 * h_px)), colour)
    bar = to_img(rounded_rect(cx, cy - 0.75, 0.12, width, angle, 0.04), hom)
    fill(img, _hull(_up(bar, 0.8 * h_px), _up(bar, h_px)), (40.0, 40.0, 45.0))
    seat = to_img(rounded_rect(cx, cy + 0.25, 0.7, 0.35, angle, 0.1), hom)
    fill(img, _up(seat, 0.82 * h_px), _shade((30.0, 30.0, 30.0), float(rng.uniform(0.8, 1.5))))


def person(img: np.ndarray, hom: np.ndarray, tall: float, cx: float, cy: float, rng: np.random.Generator) -> None:
    """A standing person, 1.6-1.85 m: legs, torso in a random shirt colour, head."""
    ppm = px_per_m(hom, cx, cy)
    h = float(rng.uniform(1.6, 1.85)) * ppm * max(tall, 0.5)
    base = to_img(np.float32([[cx, cy]]), hom)[0]
    w = 0.45 * ppm
    x, y = float(base[0]), float(base[1])
    legs = np.float32([[x - w / 2, y], [x + w / 2, y], [x + w / 2, y - 0.47 * h], [x - w / 2, y - 0.47 * h]])
    fill(img, legs, (60.0, 50.0, 40.0) if rng.random() < 0.6 else (150.0, 140.0, 130.0))
    shirt = tuple(float(c) for c in rng.integers(20, 230, 3))
    torso = np.float32(
        [[x - w / 2, y - 0.47 * h], [x + w / 2, y - 0.47 * h], [x + w / 2, y - 0.85 * h], [x - w / 2, y - 0.85 * h]]
    )
    fill(img, torso, shirt)  # type: ignore[arg-type]
    cv2.circle(img, (round(x), round(y - 0.92 * h)), max(2, round(0.08 * h)), (120, 150, 190), -1, cv2.LINE_AA)


def bicycle(img: np.ndarray, hom: np.ndarray, tall: float, cx: float, cy: float, rng: np.random.Generator) -> None:
    """A bicycle standing along the bay: two thin wheels and a frame; mostly see-through."""
    ppm = px_per_m(hom, cx, cy)
    a, b = to_img(np.float32([[cx, cy - 0.55], [cx, cy + 0.55]]), hom)
    r = 0.34 * ppm * max(tall, 0.5)
    colour = tuple(float(c) for c in rng.integers(10, 200, 3))
    th = max(1, round(ppm * 0.04))
    ca = (round(float(a[0])), round(float(a[1]) - r))
    cb = (round(float(b[0])), round(float(b[1]) - r))
    ax = (max(2, round(r * 0.35)), max(2, round(r)))
    for c in (ca, cb):
        cv2.ellipse(img, c, ax, 0, 0, 360, (25, 25, 25), th + 1, cv2.LINE_AA)
    top = ((ca[0] + cb[0]) // 2, min(ca[1], cb[1]) - round(0.8 * r))
    for p, q in ((ca, top), (cb, top), (ca, cb)):
        cv2.line(img, p, q, colour, th, cv2.LINE_AA)  # type: ignore[arg-type]


def pillar(img: np.ndarray, hom: np.ndarray, cx: float, cy: float, rng: np.random.Generator) -> None:
    """A concrete pillar from the ground to the top of the image (garage, covered lot)."""
    foot = to_img(rounded_rect(cx, cy, 0.5, 0.5, 0.0, 0.05), hom)
    shade = float(rng.uniform(110, 190))
    fill(img, _hull(foot, np.float32([[p[0], -5.0] for p in foot])), (shade, shade, shade * 1.02))


def tree(img: np.ndarray, hom: np.ndarray, tall: float, cx: float, cy: float, rng: np.random.Generator) -> None:
    """A tree: brown trunk rising from the ground, a green crown above it."""
    ppm = px_per_m(hom, cx, cy)
    base = to_img(np.float32([[cx, cy]]), hom)[0]
    w = float(rng.uniform(0.25, 0.45)) * ppm
    h = float(rng.uniform(2.5, 4.0)) * ppm * max(tall, 0.3)
    x, y = float(base[0]), float(base[1])
    fill(img, np.float32([[x - w / 2, y], [x + w / 2, y], [x + w / 2, y - h], [x - w / 2, y - h]]), (40.0, 60.0, 90.0))
    g = float(rng.uniform(0.6, 1.2))
    cv2.circle(img, (round(x), round(y - h)), max(3, round(1.4 * ppm)), (40 * g, 110 * g, 50 * g), -1, cv2.LINE_AA)
