"""What a fixed camera knows from one frame to the next: a parked car stays exactly as it was, an
empty bay stays empty, and a car that arrives or leaves changes its bay.

Per space, each usable frame is compared with the space's previous usable frame (the coarse log
plane of gateway/vision/features.py, the view's change of median log level taken off, so a cloud
or the camera's exposure does not count): **unchanged** when fewer than :data:`STILL` of the
space's pixels, and fewer than :data:`STILL_CELL` of any 3 x 3 cell's, depart by more than
:data:`CHANGED`. Consecutive unchanged frames are one *run*.

- **Hold**: an unchanged space keeps the last confident state of its run when this frame's
  answer is ``unknown`` or the other way with confidence under :data:`HOLD` (the caller,
  gateway/vision/occupancy.py, applies it). A change or an unusable frame ends the run.
- **A change event shows the bay empty**: when a run of at least :data:`STABLE` frames ends in a
  change and the model's log-odds jump by at least :data:`JUMP` across it, the low side was the
  bay empty. An *arrival* (up) returns the run before (its last frame's pixels and light) to teach
  the space's adapted reference; a *departure* (down) returns the bay as the car left it once it
  stays unchanged one more frame. The empty side must have p below :data:`TEACH_BELOW` (not a car
  to the model itself). A one-frame run (a person walking through, a headlight's sweep) teaches
  nothing, and an occupied bay whose look changes every frame never has a run.

Nothing here changes the model's probability: an answer's ``p`` is the frame's own, so the
ordinary rule (a confident "empty" call teaches) is as before.
State per space: its pixels in the previous usable frame (20 bytes per space pixel) and a few
numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gateway.vision.features import CELLS, PLANES, Pixels, Space, ViewStats

CHANGED = 0.2  # coarse log change (after the view's illumination change) counted as changed
STILL = 0.1  # share of a space's pixels changed up to which the space is unchanged ...
STILL_CELL = 0.3  # ... provided no 3 x 3 cell has more than this share changed
RUN = 8  # frames of a run whose log-odds are kept
HOLD = 0.9  # an unchanged space keeps its state unless the frame says otherwise at least this surely
STABLE = 2  # frames a run must last to count as a state (not a passer-by or a headlight's sweep)
JUMP = 3.0  # change of the model's log-odds across a change event that shows an arrival or departure
TEACH_BELOW = 0.9  # ... and the empty side must not look surely occupied to the model itself


def still(sp: Space, coarse: np.ndarray, prev: np.ndarray, illum: float) -> bool:
    """Whether a space's coarse log plane is unchanged from ``prev`` (``illum``: the view's change
    of median log level between the two frames)."""
    changed = (np.abs(coarse - prev - illum) > CHANGED).astype(np.float64)
    if float(changed.mean()) >= STILL:
        return False
    cells = np.bincount(sp.cell, weights=changed, minlength=CELLS) / sp.cell_n
    return bool(float(cells[sp.cell_ok].max(initial=0.0)) < STILL_CELL)


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


@dataclass
class Track:
    """One space's memory of its previous usable frame and of the run it is in."""

    px: Pixels | None = None  # the space's pixels in the previous usable frame ...
    view: ViewStats | None = None  # ... and that frame's light
    run: list[float] = field(default_factory=list)  # model log-odds of the current run's frames
    state: str | None = None  # last confident state in this run
    pending: float | None = None  # a departure: the log-odds of the run before, awaiting a still frame

    def update(
        self, sp: Space, px: Pixels, view: ViewStats, p: float
    ) -> tuple[str | None, tuple[Pixels, ViewStats] | None]:
        """Take this frame's model probability; returns (the state held from before if the space
        is unchanged, else None; pixels and light of the bay seen empty, to teach its adapted
        reference, when a change event shows it)."""
        z = _logit(p)
        unchanged = (
            self.px is not None
            and self.view is not None
            and still(sp, px.coarse, self.px.coarse, view.level - self.view.level)
        )
        teach: tuple[Pixels, ViewStats] | None = None
        held: str | None = None
        if unchanged and self.run:
            self.run.append(z)
            del self.run[:-RUN]
            held = self.state
            if self.pending is not None:
                if max(self.run[-2:]) <= self.pending - JUMP and p < TEACH_BELOW:
                    teach = (px, view)  # the car left and the bay stayed as it left it
                self.pending = None
        else:
            before, self.pending = self.run, None
            if len(before) >= STABLE and self.px is not None and self.view is not None:
                z_before = sum(before) / len(before)
                if z - z_before >= JUMP and z_before < _logit(TEACH_BELOW):
                    teach = (self.px, self.view)  # a car arrived: the run before was the bay empty
                elif z_before - z >= JUMP:
                    self.pending = z_before
            self.run, self.state = [z], None
        self.px, self.view = px, view
        return held, teach

    def forget(self) -> None:
        """An unusable frame: whatever happened meanwhile is not known."""
        self.px, self.view, self.run, self.state, self.pending = None, None, [], None, None

    @property
    def nbytes(self) -> int:
        return 0 if self.px is None else sum(getattr(self.px, n).nbytes for n in PLANES)
