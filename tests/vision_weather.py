"""Light, weather and lens effects for the synthetic lots (tests/vision_synth.py).

Each function changes a float32 BGR image in place or returns a new one; all are deterministic in
the ``rng`` they are given. They model what a real outdoor camera sees and what the issue-26
field set showed the classifier had never been fitted on: flat overcast light, wet reflective
ground in rain, night with street lamps and headlights, dusk, low sun with long shadows, fog,
sun glare, a dirty or misted lens, and camera shake or re-pointing. The *unusable* effects
(covered lens, dense fog, white-out glare) are what the frame-quality check must refuse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    small = rng.standard_normal((cells[0], cells[1])).astype(np.float32)
    return np.asarray(cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), np.float32)


def blobs(rng: np.random.Generator, shape: tuple[int, int], n: int, size: tuple[int, int], blur: float) -> np.ndarray:
    """A soft 0..1 mask of ``n`` random ellipses (tree shadows, puddles, smudges)."""
    h, w = shape
    m = np.zeros((h, w), np.float32)
    for _ in range(n):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        ax = (int(rng.integers(size[0], size[1])), int(rng.integers(size[0] // 2 + 1, size[1] // 2 + 2)))
        cv2.ellipse(m, c, ax, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    return np.asarray(cv2.GaussianBlur(m, (0, 0), blur), np.float32)


def lamps(rng: np.random.Generator, shape: tuple[int, int], n: int, strength: tuple[float, float]) -> np.ndarray:
    """Street-lamp pools of light (a gain field to add to the ambient level)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w), np.float32)
    for _ in range(n):
        lx, ly = rng.uniform(0, w), rng.uniform(-0.2 * h, 0.6 * h)
        d2 = ((xx - lx) ** 2 + (yy - ly) ** 2) / (rng.uniform(0.2, 0.5) * w) ** 2
        out += np.exp(-d2) * rng.uniform(*strength)
    return out


def headlights(img: np.ndarray, rng: np.random.Generator, n: int) -> None:
    """Cones of headlight on the ground from cars driving through (additive, white)."""
    h, w = img.shape[:2]
    for _ in range(n):
        cone = np.zeros((h, w), np.float32)
        x0, y0 = rng.uniform(0, w), rng.uniform(0.3 * h, h)
        ang = rng.uniform(0, 2 * math.pi)
        ln = rng.uniform(0.12, 0.35) * w
        spread = rng.uniform(0.2, 0.4)
        pts = np.float32(
            [
                [x0, y0],
                [x0 + ln * math.cos(ang - spread), y0 + ln * math.sin(ang - spread)],
                [x0 + ln * math.cos(ang + spread), y0 + ln * math.sin(ang + spread)],
            ]
        )
        cv2.fillPoly(cone, [np.round(pts).astype(np.int32)], 1.0)
        cone = cv2.GaussianBlur(cone, (0, 0), 0.02 * w)
        img += (cone * rng.uniform(40, 100))[..., None] * np.float32([0.9, 1.0, 1.0])


def car_lights(img: np.ndarray, rngs: Sequence[np.random.Generator], feet: list[np.ndarray], share: float) -> None:
    """Parked cars with their lights on: two bright spots at the near end of the footprint;
    ``rngs[i]`` decides for ``feet[i]`` (a persistent car's own stream keeps its lights as they
    were)."""
    for foot, rng in zip(feet, rngs, strict=True):
        if rng.random() >= share:
            continue
        near = foot[np.argsort(foot[:, 1])[-6:]]
        xs = np.sort(near[:, 0])
        y = float(near[:, 1].mean())
        r = max(2, round((xs[-1] - xs[0]) * 0.08))
        col = (60, 60, 255) if rng.random() < 0.5 else (250, 250, 255)
        for x in (xs[0] + 1.5 * r, xs[-1] - 1.5 * r):
            cv2.circle(img, (round(float(x)), round(y - r)), r, col, -1, cv2.LINE_AA)


def reflections(img: np.ndarray, objects: np.ndarray, rng: np.random.Generator) -> None:
    """Wet ground mirrors what stands on it: each object's pixels flipped below its base, faint and
    smeared downwards (spills into the space or aisle in front)."""
    h = img.shape[0]
    n, labels, stats, _c = cv2.connectedComponentsWithStats((objects > 0.5).astype(np.uint8))
    alpha = float(rng.uniform(0.18, 0.35))
    ground = 1.0 - np.clip(objects, 0, 1)
    add = np.zeros_like(img)
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if area < 30:
            continue
        depth = min(bh, h - (y + bh))
        if depth <= 2:
            continue
        src = (
            img[y + bh - depth : y + bh, x : x + bw][::-1]
            * (labels[y + bh - depth : y + bh, x : x + bw][::-1] == i)[..., None]
        )
        add[y + bh : y + bh + depth, x : x + bw] += src
    add = cv2.GaussianBlur(add, (0, 0), sigmaX=1.5, sigmaY=4.0)
    img += alpha * add * ground[..., None]


def rain_streaks(img: np.ndarray, rng: np.random.Generator, n: int) -> None:
    h, w = img.shape[:2]
    layer = np.zeros((h, w), np.float32)
    slant = rng.uniform(-0.25, 0.25)
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        ln = rng.uniform(8, 25)
        cv2.line(layer, (round(x), round(y)), (round(x + slant * ln), round(y + ln)), 1.0, 1, cv2.LINE_AA)
    img += (layer * rng.uniform(25, 60))[..., None]


def droplets(img: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Water drops on the lens: small discs that show a blurred, magnified bit of the scene."""
    h, w = img.shape[:2]
    blurred = cv2.GaussianBlur(img, (0, 0), 5)
    mask = np.zeros((h, w), np.float32)
    for _ in range(n):
        cv2.circle(mask, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(4, 14)), 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.5)[..., None]
    return np.asarray(img * (1 - mask) + (blurred * 1.1 + 10) * mask, np.float32)


def flatten(img: np.ndarray, contrast: float) -> np.ndarray:
    """Flat light: contrast pulled towards the frame's mean (overcast, haze)."""
    mean = img.reshape(-1, 3).mean(axis=0)
    return np.asarray(mean + (img - mean) * contrast, np.float32)


def fog(img: np.ndarray, rng: np.random.Generator, t_near: float) -> np.ndarray:
    """Atmospheric scattering I = J t + A (1 - t); the far (upper) part of the view is foggier."""
    h = img.shape[0]
    t = (t_near * (0.7 + 0.3 * np.linspace(0, 1, h, dtype=np.float32)))[:, None, None]
    air = float(rng.uniform(150, 215))
    return np.asarray(img * t + air * (1 - t), np.float32)


def glare(img: np.ndarray, rng: np.random.Generator, strength: float) -> None:
    """Low sun into the lens: a bright veiling blob, a uniform veil, a few flare rings."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sx, sy = rng.uniform(0, w), rng.uniform(-0.3 * h, 0.4 * h)
    d2 = ((xx - sx) ** 2 + (yy - sy) ** 2) / (rng.uniform(0.25, 0.55) * w) ** 2
    veil = np.exp(-d2) * strength + strength * 0.25
    img += veil[..., None] * np.float32([0.95, 1.0, 1.05])
    for k in range(int(rng.integers(2, 5))):
        f = (k + 1) / 5
        c = (round(sx + (w / 2 - sx) * 2 * f), round(sy + (h / 2 - sy) * 2 * f))
        ring = np.zeros((h, w), np.float32)
        cv2.circle(ring, c, int(rng.integers(8, 30)), 1.0, -1, cv2.LINE_AA)
        img += (cv2.GaussianBlur(ring, (0, 0), 3) * strength * 0.3)[..., None]


def dirty_lens(img: np.ndarray, rng: np.random.Generator, blur: float) -> np.ndarray:
    """Dust, dried rain spots and mist: overall blur, lower contrast, brownish smudges."""
    h, w = img.shape[:2]
    out = cv2.GaussianBlur(img, (0, 0), blur)
    out = flatten(out, float(rng.uniform(0.75, 0.92)))
    smudge = blobs(rng, (h, w), int(rng.integers(3, 9)), (10, 45), 8.0)[..., None] * rng.uniform(0.3, 0.6)
    tone = np.float32([90, 110, 125]) * rng.uniform(0.8, 1.3)
    return np.asarray(out * (1 - smudge) + tone * smudge, np.float32)


def shake(img: np.ndarray, rng: np.random.Generator, shift: float, rot_deg: float, scale: float) -> np.ndarray:
    """Camera moved: a rotation about a point near the centre, a zoom and a shift."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 + rng.uniform(-40, 40), h / 2), rot_deg, scale)
    ang = rng.uniform(0, 2 * math.pi)
    m[:, 2] += (shift * math.cos(ang), shift * math.sin(ang))
    return np.asarray(cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT), np.float32)


# --- images nothing can be read from ------------------------------------------------------------


def covered(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hand, a bag or a sticker over the lens: a dark, nearly uniform, out-of-focus field."""
    h, w = img.shape[:2]
    tone = np.float32(rng.uniform(10, 70, 3))
    field = tone + smooth_noise(rng, (h, w), (2, 3))[..., None] * 6
    leak = float(rng.uniform(0.0, 0.12))
    return np.asarray(field * (1 - leak) + cv2.GaussianBlur(img, (0, 0), 25) * leak, np.float32)


def whiteout(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The sun straight into the lens: most of the frame saturates."""
    out = img.copy()
    glare(out, rng, float(rng.uniform(500, 900)))
    return out
