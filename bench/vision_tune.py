"""Choose the occupancy model's constants on the TUNE split only (never the held-out split).

    .venv/bin/python bench/vision_tune.py [--lots 10] [--frames 4]

Generates the tune split of tests/vision_synth.py, computes the features of
gateway/vision/occupancy.py for every space, fits an L2-regularised logistic regression
(Newton's method, standardised features), checks it with leave-lots-out cross-validation on the
tune split, and prints the constants to paste into gateway/vision/occupancy.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.vision import occupancy as oc  # noqa: E402
from tests import vision_synth as vs  # noqa: E402


def collect(split: str, lots: int, frames: int) -> tuple[np.ndarray, np.ndarray, list[str], list[int]]:
    xs: list[list[float]] = []
    ys: list[int] = []
    conds: list[str] = []
    lot_ids: list[int] = []
    models: dict[int, oc.OccupancyModel] = {}
    for lot, fr in vs.dataset(split, lots, frames):
        model = models.get(lot.seed)
        if model is None:
            model = oc.OccupancyModel(lot.reference, [(str(i), p.tolist()) for i, p in enumerate(lot.spaces)])
            models[lot.seed] = model
        for f, occ in zip(model.features(fr.image), fr.occupied, strict=True):
            xs.append([f[k] for k in oc.FEATURES])
            ys.append(int(occ))
            conds.append(fr.condition)
            lot_ids.append(lot.seed)
    return np.array(xs), np.array(ys), conds, lot_ids


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    a = np.hstack([np.ones((len(z), 1)), z])
    w = np.zeros(a.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(a @ w)))
        g = a.T @ (p - y) + l2 * np.r_[0, w[1:]]
        hess = (a * (p * (1 - p))[:, None]).T @ a + l2 * np.diag(np.r_[0, np.ones(len(w) - 1)])
        step = np.linalg.solve(hess, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, scale, w[1:], float(w[0])


def predict(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(b + ((x - mean) / scale) @ w)))


def report(y: np.ndarray, pred: np.ndarray, conds: list[str]) -> float:
    out = []
    for c in [*vs.CONDITIONS, "all"]:
        sel = np.array([cc == c or c == "all" for cc in conds])
        yy, pp = y[sel], pred[sel]
        tp, fp = int(((pp == 1) & (yy == 1)).sum()), int(((pp == 1) & (yy == 0)).sum())
        fn, tn = int(((pp == 0) & (yy == 1)).sum()), int(((pp == 0) & (yy == 0)).sum())
        prec, rec = tp / max(1, tp + fp), tp / max(1, tp + fn)
        spec = tn / max(1, tn + fp)
        bal = (rec + spec) / 2
        out.append(bal)
        print(
            f"  {c:10s} n={len(yy):4d} precision={prec:.3f} recall={rec:.3f} specificity={spec:.3f} balanced={bal:.3f}"
        )
    return out[-1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lots", type=int, default=10)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--features", default=",".join(oc.FEATURES))
    args = ap.parse_args()
    feats = args.features.split(",")
    idx = [oc.FEATURES.index(f) for f in feats]
    x, y, conds, lots = collect("tune", args.lots, args.frames)
    x = x[:, idx]
    print(f"tune split: {len(y)} spaces, {int(y.sum())} occupied")
    for j, f in enumerate(feats):
        print(
            f"  {f:8s} empty mean={x[y == 0, j].mean():+.3f} sd={x[y == 0, j].std():.3f}  "
            f"occupied mean={x[y == 1, j].mean():+.3f} sd={x[y == 1, j].std():.3f}"
        )
    # leave-lots-out cross-validation (2 folds by lot parity), tune split only
    lot_arr = np.array(lots)
    cv_pred = np.zeros(len(y))
    for fold in (0, 1):
        tr = lot_arr % 2 != fold
        m, s, w, b = fit(x[tr], y[tr], args.l2)
        cv_pred[~tr] = predict(x[~tr], m, s, w, b)
    print("cross-validation on the tune split (train on half the lots, test on the others):")
    report(y, (cv_pred >= 0.5).astype(int), conds)
    mean, scale, w, b = fit(x, y, args.l2)
    print("fit on the whole tune split:")
    report(y, (predict(x, mean, scale, w, b) >= 0.5).astype(int), conds)
    print("# --- paste into gateway/vision/occupancy.py ---")
    print("MEAN: dict[str, float] = {" + ", ".join(f'"{f}": {v:.6g}' for f, v in zip(feats, mean, strict=True)) + "}")
    print("SCALE: dict[str, float] = {" + ", ".join(f'"{f}": {v:.6g}' for f, v in zip(feats, scale, strict=True)) + "}")
    print("WEIGHTS: dict[str, float] = {" + ", ".join(f'"{f}": {v:.6g}' for f, v in zip(feats, w, strict=True)) + "}")
    print(f"BIAS = {b:.6g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
