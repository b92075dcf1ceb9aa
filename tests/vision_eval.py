"""Occupancy accuracy that is never measured on a lot or condition the model was fitted on.

Used by bench/vision.py (the figures in docs/vision.md), bench/vision_tune.py (the deployed
constants) and tests/test_vision_accuracy.py.

Data: for each lot (tests/vision_synth.py) and condition, a *sequence* of frames (cars come and
go), processed in order by one :class:`~gateway.vision.occupancy.OccupancyModel` per sequence,
so per-space references adapt as they would on site; every sequence starts from the calibrated
reference alone.

- **Training rows** (:func:`training_rows`): features of every space; the adapted references are
  taught from the spaces that are truly empty (the labels are known there).
- **Evaluation** (:func:`run_folds`): for each fold a logistic model is fitted (:func:`fit`) on
  the training rows outside the fold, then the fold's sequences are replayed through a fresh
  model with those weights; now the references adapt only from the model's own confident
  "empty" calls, as deployed. Folds:

  - ``loco`` leave-one-condition-out *and* lot-out: a fold is (one condition, one lot group);
    the model is fitted on the other conditions of the other lots. The condition and the lots
    of the test frames were both never seen in fitting.
  - ``lolo`` leave-lot-group-out: fitted on every condition of the other lots.

An ``unknown`` answer counts as not correct: balanced accuracy is (share of occupied spaces
called occupied + share of empty spaces called empty) / 2, unknowns in both denominators.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from gateway.vision import features as ft
from gateway.vision.occupancy import OccupancyModel, Weights
from tests import vision_synth as vs

# The evaluation set of bench/vision.py and docs/vision.md.
LOTS = 12
FRAMES = 12
# The generator's two ways of drawing parked vehicles (tests/vision_synth.sequence): "persistent"
# (a parked car stays the same car until it leaves, as a real camera sees it; the evaluation set
# since 2026-12-06) and "redrawn" (every parked car drawn anew in every frame; the set before,
# with 6-frame sequences, kept to compare a classifier on both).
GENERATORS = ("persistent", "redrawn")
REDRAWN_FRAMES = 6
LOT_GROUPS = 4
L2 = 1.0
# Spaces whose "empty" truth is doubtful as a teacher: an adapted reference must not learn a
# person or a bicycle as part of the empty bay.
NO_TEACH = frozenset({"person", "bicycle"})


@dataclass
class Seq:
    lot: vs.Lot
    condition: str
    frames: list[vs.Frame]


def sequences(
    split: str = "tune",
    lots: int = LOTS,
    frames: int = FRAMES,
    conditions: Sequence[str] = vs.CONDITIONS,
    generator: str = "persistent",
) -> list[Seq]:
    if generator not in GENERATORS:
        raise ValueError(f"generator {generator!r}: one of {GENERATORS}")
    base = vs.SPLIT_SEED[split]
    out = []
    for i in range(lots):
        lot = vs.make_lot(base + i)
        for cond in conditions:
            frs = vs.sequence(lot, cond, base + 100 * i, frames, split, persistent=generator == "persistent")
            out.append(Seq(lot, cond, frs))
    return out


def _model(lot: vs.Lot, weights: Weights | None) -> OccupancyModel:
    """A camera on ``lot``; ``weights`` None = the deployed constants (gateway/vision/weights.py)."""
    return OccupancyModel(lot.reference, [(str(i), p.tolist()) for i, p in enumerate(lot.spaces)], weights)


# Features only (training rows): the decisions of this model are never used.
_ZERO = Weights(np.zeros(len(ft.FEATURES)), np.ones(len(ft.FEATURES)), np.zeros(len(ft.FEATURES)), 0.0)


@dataclass
class Rows:
    x: np.ndarray
    y: np.ndarray
    condition: np.ndarray  # str
    lot: np.ndarray  # int seed
    unusable: int = 0  # frames of usable conditions the quality check refused


def training_rows(seqs: Iterable[Seq]) -> Rows:
    xs, ys, cs, ls = [], [], [], []
    refused = 0
    for s in seqs:
        model = _model(s.lot, _ZERO)
        for fr in s.frames:
            m = model.measure(fr.image)
            if m.x is None:
                refused += 1
                continue
            model.learn(m, [not o and k not in NO_TEACH for o, k in zip(fr.occupied, fr.kinds, strict=True)])
            xs.append(m.x)
            ys.extend(int(o) for o in fr.occupied)
            cs.extend([s.condition] * len(fr.occupied))
            ls.extend([s.lot.seed] * len(fr.occupied))
    return Rows(np.vstack(xs), np.array(ys), np.array(cs), np.array(ls), refused)


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2, **kw: float) -> Weights:
    """L2-regularised logistic regression on standardised features (Newton's method)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    a = np.hstack([np.ones((len(z), 1)), z])
    w = np.zeros(a.shape[1])
    reg = l2 * np.diag(np.r_[0.0, np.ones(len(w) - 1)])
    for _ in range(60):
        p = 1 / (1 + np.exp(-np.clip(a @ w, -50, 50)))
        g = a.T @ (p - y) + reg @ w
        hess = (a * (p * (1 - p))[:, None]).T @ a + reg
        step = np.linalg.solve(hess, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Weights(mean, scale, w[1:], float(w[0]), **kw)


@dataclass
class Outcome:
    condition: str
    lot: int
    kind: str
    truth: bool
    state: str  # occupied | empty | unknown


def replay(s: Seq, weights: Weights | None) -> list[Outcome]:
    model = _model(s.lot, weights)
    out = []
    for fr in s.frames:
        res = model.classify(fr.image)
        for i, (truth, kind) in enumerate(zip(fr.occupied, fr.kinds, strict=True)):
            out.append(Outcome(s.condition, s.lot.seed, kind, truth, res[str(i)].state))
    return out


def groups(seqs: Sequence[Seq], n: int = LOT_GROUPS) -> dict[int, int]:
    """lot seed -> group number (lots dealt round-robin)."""
    seeds = sorted({s.lot.seed for s in seqs})
    return {seed: i % n for i, seed in enumerate(seeds)}


def folds(seqs: Sequence[Seq], rows: Rows, scheme: str) -> Iterator[tuple[np.ndarray, list[Seq]]]:
    """(training-row mask, test sequences) per fold: ``loco`` = one condition of one lot group,
    trained on the other conditions of the other groups; ``lolo`` = one lot group, trained on
    the other groups."""
    grp = groups(seqs)
    row_grp = np.array([grp[int(seed)] for seed in rows.lot])
    by_fold: dict[tuple[str, int], list[Seq]] = {}
    for s in seqs:
        by_fold.setdefault((s.condition if scheme == "loco" else "*", grp[s.lot.seed]), []).append(s)
    for (cond, g), test in sorted(by_fold.items()):
        train = row_grp != g
        if scheme == "loco":
            train &= rows.condition != cond
        yield train, test


def run_folds(seqs: Sequence[Seq], rows: Rows, scheme: str, **kw: float) -> list[Outcome]:
    out: list[Outcome] = []
    for train, test in folds(seqs, rows, scheme):
        weights = fit(rows.x[train], rows.y[train], **kw)
        for s in test:
            out.extend(replay(s, weights))
    return out


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    unknown_pos: int = 0  # truly occupied, answered unknown
    unknown_neg: int = 0

    def add(self, truth: bool, state: str) -> None:
        if state == "unknown":
            if truth:
                self.unknown_pos += 1
            else:
                self.unknown_neg += 1
        elif truth:
            self.tp += state == "occupied"
            self.fn += state == "empty"
        else:
            self.tn += state == "empty"
            self.fp += state == "occupied"

    @property
    def pos(self) -> int:
        return self.tp + self.fn + self.unknown_pos

    @property
    def neg(self) -> int:
        return self.tn + self.fp + self.unknown_neg

    @property
    def n(self) -> int:
        return self.pos + self.neg

    @property
    def recall(self) -> float:
        return self.tp / max(1, self.pos)

    @property
    def specificity(self) -> float:
        return self.tn / max(1, self.neg)

    @property
    def precision(self) -> float:
        return self.tp / max(1, self.tp + self.fp)

    @property
    def balanced(self) -> float:
        """Balanced accuracy; a class with no member counts as the other's (hard-case subsets)."""
        if not self.pos:
            return self.specificity
        if not self.neg:
            return self.recall
        return (self.recall + self.specificity) / 2

    @property
    def unknown_pct(self) -> float:
        return 100.0 * (self.unknown_pos + self.unknown_neg) / max(1, self.n)

    @property
    def wrong_pct(self) -> float:
        return 100.0 * (self.fp + self.fn) / max(1, self.n)


@dataclass
class Report:
    by_condition: dict[str, Counts] = field(default_factory=dict)
    hard: dict[str, Counts] = field(default_factory=dict)
    all: Counts = field(default_factory=Counts)

    @property
    def min_condition(self) -> tuple[str, float]:
        c = min(self.by_condition, key=lambda k: self.by_condition[k].balanced)
        return c, self.by_condition[c].balanced


def report(outcomes: Iterable[Outcome]) -> Report:
    r = Report()
    for o in outcomes:
        r.by_condition.setdefault(o.condition, Counts()).add(o.truth, o.state)
        r.all.add(o.truth, o.state)
        if o.kind in vs.HARD_KINDS:
            r.hard.setdefault(o.kind, Counts()).add(o.truth, o.state)
            r.hard.setdefault("all hard", Counts()).add(o.truth, o.state)
    return r


def table(r: Report) -> str:
    lines = [
        "| condition | spaces | recall | specificity | balanced accuracy | unknown % | wrong % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [*r.by_condition.items(), ("**all**", r.all), *((f"hard: {k}", v) for k, v in sorted(r.hard.items()))]
    for name, k in rows:
        lines.append(
            f"| {name} | {k.n} | {k.recall:.3f} | {k.specificity:.3f} | {k.balanced:.3f} |"
            f" {k.unknown_pct:.1f} | {k.wrong_pct:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import sys
    import time

    t0 = time.process_time()
    lots = int(sys.argv[1]) if len(sys.argv) > 1 else LOTS
    seqs = sequences("tune", lots, FRAMES)
    rows = training_rows(seqs)
    print(
        f"{len(rows.y)} spaces, {rows.unusable} usable-condition frames refused; {time.process_time() - t0:.0f} s CPU"
    )
    for scheme in ("loco", "lolo"):
        rep = report(run_folds(seqs, rows, scheme))
        print(f"\n{scheme}\n" + table(rep))
    print(f"{time.process_time() - t0:.0f} s CPU")
