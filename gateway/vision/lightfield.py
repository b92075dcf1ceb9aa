"""How the light has changed over the view, predicted for the spaces from the ground around them.

A bay that has never been seen empty in today's light (a building's shadow, a low sun's long
shadows, wet ground) is otherwise compared only with the calibrated daylight image. The ground
outside every space (aisles, kerbs) is mostly free, and a shadow or a change of light that falls
on it usually falls on the bays beside it as well: the log ratio frame / reference on those
background samples, spread over the view, predicts how each bay would look empty *now*, without
ever learning anything from the bay itself (so a car in it cannot poison the prediction).

The log ratio is put on a grid of :data:`CELL` px and spread by normalised convolution (a
Gaussian of :data:`SIGMA` cells over the sum and over the count; where no background sample is
within reach, the view's median change, with a weight of :data:`PRIOR`). One reweighting pass
(Cauchy weights of scale :data:`ROBUST`) keeps a car passing in the aisle from spreading its own
darkness into the bays beside it.
"""

from __future__ import annotations

import cv2
import numpy as np

CELL = 8  # px per grid cell at the working size
SIGMA = 1.5  # grid cells
ROBUST = 0.25  # log units: residuals larger than this count less in the second pass
PRIOR = 1e-5  # weight of the view's median change where there is no background


class LightField:
    """The reference's log grey at the background samples and their places on the grid;
    :meth:`field` per frame."""

    def __init__(self, shape: tuple[int, int], background: np.ndarray, ref_log: np.ndarray) -> None:
        h, w = shape
        self.shape = shape
        self.grid = ((h + CELL - 1) // CELL, (w + CELL - 1) // CELL)
        ys, xs = np.divmod(background, w)
        self.cell = ((ys // CELL) * self.grid[1] + xs // CELL).astype(np.int32)
        self.index = background
        self.ref = ref_log.ravel()[background].astype(np.float64)
        self.n = self.grid[0] * self.grid[1]

    def _spread(self, d: np.ndarray, wt: np.ndarray, prior: float) -> np.ndarray:
        num = np.bincount(self.cell, weights=d * wt, minlength=self.n).reshape(self.grid).astype(np.float32)
        den = np.bincount(self.cell, weights=wt, minlength=self.n).reshape(self.grid).astype(np.float32)
        num_b = np.asarray(cv2.GaussianBlur(num, (0, 0), SIGMA))
        den_b = np.asarray(cv2.GaussianBlur(den, (0, 0), SIGMA))
        return np.asarray((num_b + PRIOR * prior) / (den_b + PRIOR), np.float32)

    def field(self, frame_log: np.ndarray) -> np.ndarray:
        """Image-sized log change of the light (frame minus reference) predicted from the background."""
        d = frame_log.ravel()[self.index] - self.ref
        prior = float(np.median(d))
        grid = self._spread(d, np.ones_like(d), prior)
        r = d - grid.ravel()[self.cell]
        grid = self._spread(d, 1.0 / (1.0 + (r / ROBUST) ** 2), prior)
        h, w = self.shape
        full = cv2.resize(grid, (self.grid[1] * CELL, self.grid[0] * CELL), interpolation=cv2.INTER_LINEAR)
        return np.asarray(full)[:h, :w]
