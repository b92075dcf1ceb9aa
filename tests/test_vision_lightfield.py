"""The light over a bay is predicted from the ground around it (gateway/vision/lightfield.py):
a change of the whole view, a building's shadow across half the lot, and a dark car in the aisle
(which must not darken the prediction for the bays beside it); and, with the deployed model, an
empty lot half in a building's shadow is answered empty while the cars in that shadow stay
occupied."""

from __future__ import annotations

import math

import numpy as np

from gateway.vision.lightfield import LightField
from gateway.vision.occupancy import OccupancyModel
from tests import vision_synth as vs

H, W = 120, 200


def ground(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asarray(np.log(100 + 30 * rng.random((H, W)) + 10), np.float32)


def everywhere() -> np.ndarray:
    return np.arange(H * W)


def test_a_change_of_the_whole_view_is_predicted_everywhere() -> None:
    ref = ground()
    field = LightField((H, W), everywhere()[::3], ref).field(ref + math.log(0.4))
    assert field.shape == (H, W)
    assert np.allclose(field, math.log(0.4), atol=1e-3)


def test_a_shadow_over_half_the_view_is_predicted_where_it_falls() -> None:
    ref = ground()
    frame = ref.copy()
    frame[:, W // 2 :] += math.log(0.45)
    # background only outside a "bay" on each side of the shadow's edge
    bays = np.zeros((H, W), bool)
    bays[40:80, 20:70] = bays[40:80, 130:180] = True
    bg = np.flatnonzero(~bays)
    field = LightField((H, W), bg, ref).field(frame)
    assert abs(float(np.median(field[45:75, 25:65]))) < 0.05  # the lit bay: no change
    assert abs(float(np.median(field[45:75, 135:175])) - math.log(0.45)) < 0.05  # the shaded bay


def test_a_dark_car_in_the_aisle_does_not_darken_the_bays_beside_it() -> None:
    ref = ground()
    frame = ref.copy()
    frame[50:70, 90:130] -= 1.5  # a dark car passing in the aisle
    bays = np.zeros((H, W), bool)
    bays[20:48, 90:130] = True  # the bay just above it
    bg = np.flatnonzero(~bays)
    field = LightField((H, W), bg, ref).field(frame)
    bay = float(np.median(field[25:45, 95:125]))
    assert bay > -0.15, bay  # plain averaging would carry a good part of the car's -1.5 into the bay
    mean_of_neighbourhood = float(np.mean((frame - ref)[30:80, 80:140][~bays[30:80, 80:140]]))
    assert mean_of_neighbourhood < -0.3  # ... the car is a large part of the ground around the bay


def test_no_background_at_all_gives_the_views_median_change() -> None:
    ref = ground()
    frame = ref + math.log(2.0)
    bg = np.flatnonzero(np.arange(H * W) % W < 10)  # only a strip at the left edge
    field = LightField((H, W), bg, ref).field(frame)
    assert np.allclose(field[:, -10:], math.log(2.0), atol=1e-3)  # far from it: the median change


def test_an_empty_lot_half_in_a_buildings_shadow_is_answered_empty() -> None:
    lot = vs.make_lot(vs.SPLIT_SEED["heldout"] + 4)
    n = len(lot.spaces)
    occupied = [i % 3 == 0 for i in range(n)]
    w = lot.reference.shape[1]
    shade = np.ones(lot.reference.shape[:2], np.float32)
    shade[:, w // 2 :] = 0.4  # a building's shadow over the right half, not in the reference
    in_shade = [float(p[:, 0].min()) > w // 2 for p in lot.spaces]
    assert sum(in_shade) >= 4 and any(occupied[i] for i in range(n) if in_shade[i])
    model = OccupancyModel(lot.reference, [(str(i), p.tolist()) for i, p in enumerate(lot.spaces)])
    # the first frame of a new camera: no bay has a look of itself in any light yet
    frame = vs.render(lot, 0, "daylight", "heldout", occupied=occupied, scene=1).image.astype(np.float32)
    res = model.classify(np.clip(frame * shade[..., None], 0, 255).astype(np.uint8))
    answers = {i: res[str(i)].state for i in range(n) if in_shade[i]}
    assert answers == {i: "occupied" if occupied[i] else "empty" for i in answers}
