"""Per-space references adapt to the site's light, only from spaces the model called
confidently empty: a space occupied in every frame never teaches its reference; a look of the
empty space at night does not replace the daylight one."""

from __future__ import annotations

import numpy as np

from gateway.vision.adaptive import SLOTS, SpaceLooks
from gateway.vision.features import Pixels, ViewStats
from gateway.vision.occupancy import OccupancyModel
from tests import vision_synth as vs


def px(level: float, n: int = 50) -> Pixels:
    v = np.full(n, level, np.float32)
    return Pixels(v.copy(), v.copy(), v * 0 + 0.1, v * 0 + 128, v * 0 + 128)


def view(level: float, gmed: float = 0.05) -> ViewStats:
    return ViewStats(level, 128.0, 128.0, gmed)


def test_looks_are_kept_per_light_and_the_least_used_goes() -> None:
    looks = SpaceLooks()
    looks.learn(px(5.0), view(5.0), 1)  # day
    looks.learn(px(3.0), view(3.0), 2)  # night: too different to blend into the day look
    assert len(looks.looks) == 2
    day = looks.match(view(5.05), 3)
    night = looks.match(view(3.1), 4)
    assert day is not None and float(day[0].log[0]) == 5.0
    assert night is not None and float(night[0].log[0]) == 3.0
    looks.learn(px(5.1), view(5.1), 5)  # close to the day look: blended, not added
    assert len(looks.looks) == 2 and 5.0 < float(looks.match(view(5.0), 6)[0].log[0]) < 5.1  # type: ignore[index]
    for k in range(SLOTS):
        looks.learn(px(10.0 + k), view(10.0 + k), 10 + k)
    assert len(looks.looks) == SLOTS
    assert looks.match(view(3.0), 20) is None  # night was used least recently: dropped
    assert looks.match(view(9.0), 21) is None  # no look within reach of this light


def test_an_occupied_space_never_teaches_its_reference() -> None:
    lot = vs.make_lot(vs.SPLIT_SEED["heldout"] + 3)
    model = OccupancyModel(lot.reference, [(str(i), p.tolist()) for i, p in enumerate(lot.spaces)])
    occupied = [i % 2 == 0 for i in range(len(lot.spaces))]
    taught = [False] * len(lot.spaces)
    right = total = 0
    for j in range(5):
        res = model.classify(vs.render(lot, j, "night", "heldout", occupied=occupied, scene=1).image)
        for i, d in enumerate(res.values()):
            taught[i] |= d.state == "empty" and d.p < model.weights.adapt_below
            right += (d.state == "occupied") == occupied[i] and d.state != "unknown"
            total += 1
    assert right / total > 0.8
    for i, looks in enumerate(model.looks):
        assert bool(looks.looks) == taught[i], i  # a look exists only where a confident empty taught it
    assert not any(taught[i] for i in range(len(lot.spaces)) if occupied[i])
    assert any(taught)
