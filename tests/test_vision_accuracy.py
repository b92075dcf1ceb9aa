"""Occupancy accuracy is never measured on a lot or a condition the model was fitted on.

bench/vision.py reports the full leave-one-condition-out and leave-lot-group-out figures
(docs/vision.md); here: the folds really leave their condition and lots out, an unknown answer
is not counted as correct, and the deployed constants (fitted on the tune split by
bench/vision_tune.py) hold on held-out lots (seeds from 10,000) in every condition.
"""

from __future__ import annotations

import numpy as np

from tests import vision_eval as ve
from tests import vision_synth as vs


def test_folds_never_train_on_the_test_condition_or_lots() -> None:
    seqs = [ve.Seq(vs.make_lot(i), c, []) for i in range(4) for c in ("daylight", "rain", "night")]
    n = len(seqs)
    rows = ve.Rows(
        np.zeros((n, 1)),
        np.zeros(n),
        np.array([s.condition for s in seqs]),
        np.array([s.lot.seed for s in seqs]),
    )
    grp = ve.groups(seqs, 2)
    seen = set()
    for scheme in ("loco", "lolo"):
        for train, test in ve.folds(seqs, rows, scheme):
            test_lots = {s.lot.seed for s in test}
            assert train.any() and not set(rows.lot[train].tolist()) & test_lots
            if scheme == "loco":
                [cond] = {s.condition for s in test}
                assert cond not in set(rows.condition[train].tolist())
            seen |= {(scheme, s.condition, s.lot.seed) for s in test}
    assert len(seen) == 2 * n  # every sequence is tested exactly once per scheme
    assert len(set(grp.values())) == 2


def test_an_unknown_answer_is_not_correct() -> None:
    known, unsure = ve.Counts(), ve.Counts()
    for truth in (True, False):
        known.add(truth, "occupied" if truth else "empty")
        unsure.add(truth, "occupied" if truth else "empty")
        unsure.add(truth, "unknown")
    assert known.balanced == 1.0
    assert unsure.balanced == 0.5 and unsure.unknown_pct == 50.0 and unsure.wrong_pct == 0.0


def test_deployed_model_on_heldout_lots_in_every_condition() -> None:
    seqs = ve.sequences("heldout", lots=3, frames=3)
    rep = ve.report(o for s in seqs for o in ve.replay(s, None))
    print("\n" + ve.table(rep))
    assert rep.all.n > 1000
    assert rep.all.balanced >= 0.95, ve.table(rep)
    assert rep.all.unknown_pct <= 6.0
    for cond in vs.CONDITIONS:  # no condition may collapse
        assert rep.by_condition[cond].balanced >= 0.85, (cond, ve.table(rep))
