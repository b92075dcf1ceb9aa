"""Parking-space occupancy from a camera frame: occupied, empty, or unknown, with a confidence.

Per frame (docs/vision.md "The occupancy method"):

1. **Quality** (gateway/vision/quality.py): a covered, fogged-over, glared-out or frozen frame
   is unusable: every space is ``unknown`` and nothing is learnt from it.
2. **Registration**: the camera's small movements are measured against the reference and undone.
3. **Features** (gateway/vision/features.py), per space, against the calibrated reference,
   against the calibrated reference under the light the background shows now (the predicted
   reference, gateway/vision/lightfield.py) and against the space's adapted reference for the
   current light (gateway/vision/adaptive.py; the predicted one where the space has none).
4. **Logistic model** (:class:`Weights`, fitted by bench/vision_tune.py): p(occupied).
   ``confidence = max(p, 1 - p)``; below ``Weights.confident``, or with most of the space
   saturated (glare, a headlight into the lens), the space is ``unknown``.
5. **Adaptation**: a space called empty with p below ``Weights.adapt_below`` in a usable frame
   updates its adapted reference; an occupied or unknown space never does.
6. **Evidence across frames** (gateway/vision/temporal.py): an unchanged space holds its
   confident state; a car's arrival or departure between two stable runs teaches the adapted
   reference the run that was the bay empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from gateway.vision import features as ft
from gateway.vision import weights as fitted
from gateway.vision.adaptive import SpaceLooks
from gateway.vision.lightfield import LightField
from gateway.vision.quality import Aligner, FrameCheck, Quality
from gateway.vision.temporal import HOLD, Track
from gateway.vision.veil import Veil

MAX_SATURATED_SPACE = 0.5  # a space more than half saturated cannot be judged


@dataclass(frozen=True)
class Weights:
    """A fitted logistic model over :data:`gateway.vision.features.FEATURES`."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    bias: float
    confident: float = 0.7  # below this confidence a space is unknown
    adapt_below: float = 0.2  # p(occupied) under which an empty space teaches its reference

    def p(self, x: np.ndarray) -> np.ndarray:
        z = self.bias + ((x - self.mean) / self.scale) @ self.coef
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))))


def default_weights() -> Weights:
    names = ft.FEATURES
    if set(fitted.WEIGHTS) != set(names):
        raise RuntimeError("gateway/vision/weights.py does not match the feature list; rerun bench/vision_tune.py")
    return Weights(
        np.array([fitted.MEAN[n] for n in names]),
        np.array([fitted.SCALE[n] for n in names]),
        np.array([fitted.WEIGHTS[n] for n in names]),
        fitted.BIAS,
        fitted.CONFIDENT,
        fitted.ADAPT_BELOW,
    )


@dataclass(frozen=True)
class Decision:
    state: str  # "occupied" | "empty" | "unknown"
    p: float  # probability of a vehicle (0.5 when nothing could be measured)
    confidence: float  # max(p, 1 - p); 0 for an unusable frame
    reason: str | None = None  # why unknown: covered | fog | glare | frozen | low_confidence


@dataclass
class Measurement:
    quality: Quality
    x: np.ndarray | None = None  # (spaces, features)
    pixels: list[ft.Pixels] | None = None
    view: ft.ViewStats | None = None
    sat: np.ndarray | None = None


class OccupancyModel:
    """One camera: calibrated reference, space pixels, adapted references, frame checks."""

    def __init__(
        self,
        reference: np.ndarray,
        spaces: Sequence[tuple[str, Sequence[Sequence[float]]]],
        weights: Weights | None = None,
    ) -> None:
        if reference.ndim != 3 or reference.shape[2] != 3:
            raise ValueError("the reference must be a BGR colour image")
        self.shape = (int(reference.shape[0]), int(reference.shape[1]))
        self.weights = weights or default_weights()
        self.spaces = [ft.space(sid, poly, self.shape) for sid, poly in spaces]
        outside = np.ones(self.shape, np.uint8)
        for _sid, poly in spaces:
            cv2.fillPoly(outside, [np.round(np.asarray(poly, np.float32)).astype(np.int32)], 0)
        eroded = np.asarray(cv2.erode(outside, np.ones((7, 7), np.uint8)))  # clear of the painted lines
        sub = np.zeros(self.shape, bool)
        sub[::4, ::4] = True  # a quarter of a quarter is plenty for medians
        bg = np.flatnonzero(eroded.astype(bool) & sub)
        self.background = bg if bg.size >= 64 else np.flatnonzero(sub)
        ref = ft.prepare(reference)
        ref_gray = cv2.cvtColor(cv2.GaussianBlur(cv2.medianBlur(reference, 3), (0, 0), 1.2), cv2.COLOR_BGR2GRAY)
        self.veil = Veil(ref_gray.astype(np.float32), self.background)
        self.ref_view = ft.view_stats(ref, self.background)
        self.ref_pixels = [ft.Pixels.take(ref, sp) for sp in self.spaces]
        self.light = LightField(self.shape, self.background, ref.log)
        self.looks = [SpaceLooks() for _ in self.spaces]
        self.tracks = [Track() for _ in self.spaces]
        self.temporal = True  # evidence across frames (gateway/vision/temporal.py)
        self.revealed: list[tuple[ft.Pixels, ft.ViewStats] | None] = [None] * len(self.spaces)
        self.check = FrameCheck(reference)
        self.aligner = Aligner(reference)
        self.tick = 0
        self.last_quality = Quality(True, None, 1.0, 1.0, 0.0)

    def measure(self, image: np.ndarray) -> Measurement:
        if image.shape[:2] != self.shape:
            raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, reference {self.shape[1]}x{self.shape[0]}")
        self.tick += 1
        q = self.last_quality = self.check.check(image)
        if not q.usable:
            return Measurement(q)
        fr = ft.prepare(self.aligner.apply(image), self.veil)
        view = ft.view_stats(fr, self.background)
        rows, pixels, sats = [], [], []
        field = self.light.field(fr.log).ravel()
        # The predicted reference already carries the light change, so its view level is the frame's;
        # colour cast and sharpness are still the calibrated image's, taken off as for it.
        pred_view = ft.ViewStats(view.level, self.ref_view.a, self.ref_view.b, self.ref_view.gmed)
        for sp, ref_px, looks in zip(self.spaces, self.ref_pixels, self.looks, strict=True):
            px = ft.Pixels.take(fr, sp)
            static = ft.pair_features(sp, px, view, ref_px, self.ref_view)
            light = field[sp.index]
            pred_px = ft.Pixels(ref_px.log + light, ref_px.coarse + light, ref_px.grad, ref_px.a, ref_px.b)
            predicted = ft.pair_features(sp, px, view, pred_px, pred_view)
            match = looks.match(view, self.tick)
            adapted = ft.pair_features(sp, px, view, *match) if match is not None else predicted
            sat = ft.saturated(px)
            rows.append(static + predicted + adapted + [sat])
            pixels.append(px)
            sats.append(sat)
        return Measurement(q, np.array(rows, np.float64), pixels, view, np.array(sats))

    def decide(self, m: Measurement) -> list[Decision]:
        """Per space: the model's answer, held where the space is unchanged since it was confident
        (gateway/vision/temporal.py). Change events that show the bay empty are kept in
        ``self.revealed`` for :meth:`learn`."""
        self.revealed = [None] * len(self.spaces)
        if m.x is None or m.sat is None or m.pixels is None or m.view is None:
            for track in self.tracks:
                track.forget()
            return [Decision("unknown", 0.5, 0.0, m.quality.reason) for _ in self.spaces]
        out = []
        w = self.weights
        for i, (sp, track, px, p_frame, sat) in enumerate(
            zip(self.spaces, self.tracks, m.pixels, w.p(m.x), m.sat, strict=True)
        ):
            p, held = float(p_frame), None
            if self.temporal:
                held, self.revealed[i] = track.update(sp, px, m.view, p)
            conf = float(max(p, 1 - p))
            if sat > MAX_SATURATED_SPACE:
                d = Decision("unknown", p, conf, "glare")
            elif conf < w.confident:
                d = Decision("unknown", p, conf, "low_confidence")
            else:
                d = Decision("occupied" if p >= 0.5 else "empty", p, conf)
            if held is not None and d.state != held and d.reason != "glare" and conf < HOLD:
                d = Decision(held, p, conf)  # unchanged since it was confidently so
            if d.state != "unknown":
                track.state = d.state
            out.append(d)
        return out

    def learn(self, m: Measurement, empty: Sequence[bool]) -> None:
        """Teach the adapted references of the spaces marked ``empty`` (usable frames only), and
        of those a change event has just shown empty (:meth:`decide`)."""
        if m.pixels is None or m.view is None:
            return
        for looks, px, e, shown in zip(self.looks, m.pixels, empty, self.revealed, strict=True):
            if e:
                looks.learn(px, m.view, self.tick)
            elif shown is not None:
                looks.learn(shown[0], shown[1], self.tick)

    def classify(self, image: np.ndarray) -> dict[str, Decision]:
        """space id -> decision; confidently empty spaces then adapt their references."""
        m = self.measure(image)
        ds = self.decide(m)
        self.learn(m, [d.state == "empty" and d.p < self.weights.adapt_below for d in ds])
        return {sp.space_id: d for sp, d in zip(self.spaces, ds, strict=True)}

    @property
    def adapted_bytes(self) -> int:
        return sum(lk.nbytes for lk in self.looks) + sum(t.nbytes for t in self.tracks)
