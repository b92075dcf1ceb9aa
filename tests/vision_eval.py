"""Accuracy of gateway/vision/occupancy.py on a split of tests/vision_synth.py, per condition.

Used by tests/test_vision_accuracy.py, bench/vision.py and ``python -m tests.vision_eval``
(prints the markdown table that is in docs/vision.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.vision.occupancy import OccupancyModel
from tests import vision_synth as vs

# The held-out split as evaluated for the docs and the test: lots 10_000.., 6 frames per
# condition and lot. Never used by bench/vision_tune.py.
HELDOUT_LOTS = 8
HELDOUT_FRAMES = 4


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def precision(self) -> float:
        return self.tp / max(1, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self.tp / max(1, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        return self.tn / max(1, self.tn + self.fp)

    @property
    def balanced(self) -> float:
        return (self.recall + self.specificity) / 2


def evaluate(split: str = "heldout", lots: int = HELDOUT_LOTS, frames: int = HELDOUT_FRAMES) -> dict[str, Counts]:
    out: dict[str, Counts] = {c: Counts() for c in (*vs.CONDITIONS, "all")}
    models: dict[int, OccupancyModel] = {}
    for lot, fr in vs.dataset(split, lots, frames):
        model = models.get(lot.seed)
        if model is None:
            model = OccupancyModel(lot.reference, [(str(i), p.tolist()) for i, p in enumerate(lot.spaces)])
            models[lot.seed] = model
        result = model.classify(fr.image)
        for i, truth in enumerate(fr.occupied):
            pred = result[str(i)][0]
            for c in (fr.condition, "all"):
                k = out[c]
                if pred and truth:
                    k.tp += 1
                elif pred:
                    k.fp += 1
                elif truth:
                    k.fn += 1
                else:
                    k.tn += 1
    return out


def table(counts: dict[str, Counts]) -> str:
    lines = [
        "| condition | spaces | precision | recall | specificity | balanced accuracy |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c, k in counts.items():
        name = "**all**" if c == "all" else c
        lines.append(
            f"| {name} | {k.n} | {k.precision:.3f} | {k.recall:.3f} | {k.specificity:.3f} | {k.balanced:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import sys

    split = sys.argv[1] if len(sys.argv) > 1 else "heldout"
    print(table(evaluate(split)))
