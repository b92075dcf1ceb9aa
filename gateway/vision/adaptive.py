"""Per-space references that adapt to the site: how each empty space looks at this time of day,
in this weather.

A camera sees its own spaces empty many times a day. The calibrated reference is one daylight
image; at night, in rain or under overcast skies an empty space looks different (lamps, wet
ground, flat light), and comparing unlike with unlike is what made the model call empty spaces
occupied. So each space keeps up to :data:`SLOTS` *looks* of itself empty, each with the light
of the view when it was taken (:class:`~gateway.vision.features.ViewStats` of the background).

- **Use**: the look whose view light is nearest the current frame's (:func:`regime_distance`),
  if nearer than :data:`MATCH`; otherwise the space has no adapted reference for this light and
  only the calibrated one counts.
- **Update**: only from a frame in which the model called the space *confidently empty*
  (the caller decides, never from an occupied or unknown space, never from an unusable frame):
  the nearest look within :data:`MERGE` moves towards the frame (exponential average, weight
  :data:`ALPHA`: one odd frame does not replace it), otherwise a new look is added and, when all
  slots are taken, the look used least recently is dropped. The calibrated reference itself is
  never changed.

Memory: 20 bytes per space pixel per look (five float32 planes), e.g. 12 spaces of ~3,000
pixels at the 640-pixel working width: 4 looks x 12 x 3,000 x 20 B = 2.9 MB per camera.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, field

from gateway.vision.features import PLANES, Pixels, ViewStats

SLOTS = 4
MATCH = 0.45  # regime distance up to which a look is used
MERGE = 0.2  # ... and up to which a new empty frame is blended into it rather than added
ALPHA = 0.35


def regime_distance(x: ViewStats, y: ViewStats) -> float:
    """How different the light of two views is: log brightness, colour of the light (Lab units
    scaled so 25 counts like a doubling) and sharpness/noise (log ratio of gradients)."""
    colour = math.hypot(x.a - y.a, x.b - y.b) / 25.0
    sharp = abs(math.log((x.gmed + 1e-3) / (y.gmed + 1e-3)))
    return abs(x.level - y.level) + colour + 0.5 * sharp


@dataclass(eq=False)  # identity, not array comparison
class _Look:
    pixels: Pixels
    view: ViewStats
    used: int


@dataclass
class SpaceLooks:
    looks: list[_Look] = field(default_factory=list)

    def nearest(self, view: ViewStats) -> tuple[_Look | None, float]:
        best, dist = None, math.inf
        for look in self.looks:
            d = regime_distance(look.view, view)
            if d < dist:
                best, dist = look, d
        return best, dist

    def match(self, view: ViewStats, tick: int) -> tuple[Pixels, ViewStats] | None:
        look, dist = self.nearest(view)
        if look is None or dist > MATCH:
            return None
        look.used = tick
        return look.pixels, look.view

    def learn(self, pixels: Pixels, view: ViewStats, tick: int) -> None:
        look, dist = self.nearest(view)
        if look is not None and dist <= MERGE:
            look.pixels.blend(pixels, ALPHA)
            old = astuple(look.view)
            look.view = ViewStats(*(o + ALPHA * (n - o) for o, n in zip(old, astuple(view), strict=True)))
            look.used = tick
            return
        copy = pixels.copy()
        if len(self.looks) >= SLOTS:
            self.looks.remove(min(self.looks, key=lambda lk: lk.used))
        self.looks.append(_Look(copy, view, tick))

    @property
    def nbytes(self) -> int:
        return sum(sum(getattr(lk.pixels, n).nbytes for n in PLANES) for lk in self.looks)
