"""Fit the deployed occupancy model and write gateway/vision/weights.py.

    .venv/bin/python bench/vision_tune.py [--lots 12] [--frames 12] [--generator persistent] [--l2 1.0] [--dry-run]

Generates the *tune* split of tests/vision_synth.py (every condition, lots 0..lots-1, frame
sequences), computes the features of gateway/vision/features.py for every space (adapted
references taught by the truly empty spaces, tests/vision_eval.py), fits an L2-regularised
logistic regression on all of it and writes the constants. The held-out split (seeds 10,000..)
is never used here. How well this *procedure* generalises to conditions and lots it has not seen
is what bench/vision.py measures, by refitting it per held-out fold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.vision import features as ft  # noqa: E402
from tests import vision_eval as ve  # noqa: E402

CONFIDENT = 0.7  # confidence below which a space answers unknown (chosen on the folds, docs/vision.md)
ADAPT_BELOW = 0.2  # p(occupied) below which an empty space teaches its adapted reference


def render(weights: ve.Weights, lots: int, frames: int, spaces: int, l2: float, generator: str) -> str:
    names = ft.FEATURES

    def table(label: str, values: object) -> str:
        rows = "".join(f'    "{n}": {float(v):.6g},\n' for n, v in zip(names, values, strict=True))  # type: ignore[call-overload]
        return f"{label}: dict[str, float] = {{\n{rows}}}\n"

    return (
        '"""Constants of the occupancy model (gateway/vision/occupancy.py), written by bench/vision_tune.py.\n\n'
        f"Fitted on the tune split of tests/vision_synth.py: {lots} lots x {len(ve.vs.CONDITIONS)} conditions x"
        f" {frames}-frame\nsequences ({generator} vehicles), {spaces} spaces, L2 {l2}."
        " Do not edit by hand: rerun the script.\n"
        '"""\n\n'
        + table("MEAN", weights.mean)
        + table("SCALE", weights.scale)
        + table("WEIGHTS", weights.coef)
        + f"BIAS = {weights.bias:.6g}\nCONFIDENT = {CONFIDENT}\nADAPT_BELOW = {ADAPT_BELOW}\n"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lots", type=int, default=ve.LOTS)
    # The deployed constants are fitted on the persistent set, the one bench/vision.py's RESULT line
    # is measured on (since the predicted reference of 2026-12-06 changed the features).
    ap.add_argument("--frames", type=int, default=ve.FRAMES)
    ap.add_argument("--generator", choices=ve.GENERATORS, default="persistent")
    ap.add_argument("--l2", type=float, default=ve.L2)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    rows = ve.training_rows(ve.sequences("tune", args.lots, args.frames, generator=args.generator))
    print(f"tune split: {len(rows.y)} spaces, {int(rows.y.sum())} occupied")
    w = ve.fit(rows.x, rows.y, args.l2)
    text = render(w, args.lots, args.frames, len(rows.y), args.l2, args.generator)
    if args.dry_run:
        print(text)
    else:
        (ROOT / "gateway" / "vision" / "weights.py").write_text(text, encoding="utf-8")
        print("written: gateway/vision/weights.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
