"""Frames the occupancy model must not judge (covered lens, dense fog, white-out glare, a frozen
stream) are refused with a reason, every space of them is unknown; frames of every usable
condition pass; a camera that moved a little is registered back onto its reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gateway.vision.occupancy import OccupancyModel
from gateway.vision.quality import Aligner, FrameCheck
from tests import vision_synth as vs

LOTS = [vs.make_lot(vs.SPLIT_SEED["heldout"] + 60 + i) for i in range(2)]
REASONS = {"covered": {"covered"}, "dense_fog": {"fog", "covered"}, "whiteout": {"glare"}}


@pytest.mark.parametrize("cond", vs.UNUSABLE)
def test_unusable_images_are_refused_with_a_reason(cond: str) -> None:
    for lot in LOTS:
        for seed in range(3):
            q = FrameCheck(lot.reference).check(vs.render(lot, seed, cond, "heldout").image)
            assert not q.usable and q.reason in REASONS[cond], (lot.seed, seed, q)


def test_usable_conditions_pass_the_check() -> None:
    for lot in LOTS:
        for cond in vs.CONDITIONS:
            q = FrameCheck(lot.reference).check(vs.render(lot, 5, cond, "heldout").image)
            assert q.usable, (lot.seed, cond, q)


def test_a_frozen_stream_is_refused_until_the_picture_changes() -> None:
    lot = LOTS[0]
    check = FrameCheck(lot.reference)
    frame = vs.render(lot, 1, "daylight").image
    assert [check.check(frame).reason for _ in range(4)] == [None, None, "frozen", "frozen"]
    assert check.check(vs.render(lot, 2, "daylight").image).usable


def test_every_space_of_an_unusable_frame_is_unknown() -> None:
    lot = LOTS[1]
    model = OccupancyModel(lot.reference, [(str(i), p.tolist()) for i, p in enumerate(lot.spaces)])
    result = model.classify(vs.render(lot, 0, "covered").image)
    assert {d.state for d in result.values()} == {"unknown"}
    assert {d.reason for d in result.values()} == {"covered"}
    assert all(d.confidence == 0.0 for d in result.values())


def test_a_moved_camera_is_registered_back() -> None:
    ref = LOTS[0].reference
    h, w = ref.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 1.2, 1.0)
    m[:, 2] += (7.0, -4.0)
    moved = cv2.warpAffine(ref, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    aligned = Aligner(ref).apply(moved)
    inner = (slice(20, h - 20), slice(20, w - 20))  # the borders are extrapolated either way

    def err(img: np.ndarray) -> float:
        return float(np.abs(img[inner].astype(np.float32) - ref[inner].astype(np.float32)).mean())

    assert err(aligned) < err(moved) / 3, (err(aligned), err(moved))
