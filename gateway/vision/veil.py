"""Additive light over the view (fog, a glare veil, a misted lens, flat overcast light), measured
against the reference on the background and taken off the frame before the log (features.prepare)."""

from __future__ import annotations

import cv2
import numpy as np

VEIL_TILES = (3, 4)  # rows, columns


class Veil:
    """Additive light over the view: fog, a glare veil, a misted lens, flat overcast light.

    Such light adds to every pixel (I = J t + A (1 - t)); in the log domain it squeezes a car's
    contrast towards nothing, which no gain correction undoes. Per tile of a :data:`VEIL_TILES`
    grid, the background pixels of frame and reference (outside every space, so mostly the same
    asphalt) are matched by their 5th/50th/95th percentiles: frame ~ gain x reference + offset.
    The positive offset, smoothed over the image, is taken off the frame's grey before the log.
    A multiplicative change (night, shadow, gain) leaves the offset near zero.
    """

    def __init__(self, ref_gray: np.ndarray, background: np.ndarray) -> None:
        h, w = ref_gray.shape
        ty, tx = VEIL_TILES
        ys, xs = np.divmod(background, w)
        self.tile = (ys * ty // h) * tx + (xs * tx // w)
        self.index = background
        self.shape = (h, w)
        self.ref_q = [self._q(ref_gray.ravel()[background[self.tile == t]]) for t in range(ty * tx)]

    @staticmethod
    def _q(v: np.ndarray) -> np.ndarray | None:
        return np.percentile(v, (5, 50, 95)) if v.size >= 40 else None

    def offset(self, gray: np.ndarray) -> np.ndarray:
        ty, tx = VEIL_TILES
        vals = gray.ravel()[self.index]
        grid = np.zeros((ty, tx), np.float32)
        known = np.zeros((ty, tx), bool)
        for t, rq in enumerate(self.ref_q):
            fq = self._q(vals[self.tile == t]) if rq is not None else None
            if rq is None or fq is None:
                continue
            gain = float(np.clip((fq[2] - fq[0]) / max(rq[2] - rq[0], 4.0), 0.05, 3.0))
            grid[t // tx, t % tx] = max(0.0, float(fq[1] - gain * rq[1]))
            known[t // tx, t % tx] = True
        if not known.any():
            return np.zeros(self.shape, np.float32)
        grid[~known] = float(np.median(grid[known]))
        return np.asarray(cv2.resize(grid, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_LINEAR))
