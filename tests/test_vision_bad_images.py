"""Bad images never crash anything: each is refused with a reason (-> dead letter) and the worker
process keeps analysing the next frame."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_config import load_config
from gateway.vision.manager import CameraManager
from gateway.vision.worker import FrameError, decode_jpeg, jpeg_size
from tests.support import wait_until
from tests.vision_site import jpeg, write_camera_site

LIMITS = {"max_bytes": 4_000_000, "max_pixels": 8_300_000}


def small_jpeg(w: int = 64, h: int = 48) -> bytes:
    return jpeg(np.full((h, w, 3), 128, np.uint8))


def with_size(data: bytes, w: int, h: int) -> bytes:
    """Patch the SOF header to announce w x h (a decompression bomb costs nothing to send)."""
    i = data.index(b"\xff\xc0")
    return data[: i + 5] + struct.pack(">HH", h, w) + data[i + 9 :]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "image_empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image_not_jpeg"),
        (b"not an image at all", "image_not_jpeg"),
        (small_jpeg()[:200], "image_truncated"),
        (small_jpeg()[: len(small_jpeg()) // 2], "image_truncated"),
        (b"\xff\xd8\xff\xe0\x00\x10", "image_truncated"),
        (with_size(small_jpeg(), 8165, 6124), "image_too_many_pixels"),  # 50 MP announced
        (b"\xff\xd8" + b"\x00" * 5_000_000, "image_too_large"),
    ],
)
def test_refused_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as exc:
        decode_jpeg(data, **LIMITS)
    assert exc.value.reason == reason


def test_wrong_dimensions() -> None:
    with pytest.raises(FrameError) as exc:
        decode_jpeg(small_jpeg(64, 48), **LIMITS, expect=(360, 640))
    assert exc.value.reason == "image_wrong_size"
    assert jpeg_size(small_jpeg(64, 48)) == (64, 48)
    assert decode_jpeg(small_jpeg(64, 48), **LIMITS, expect=(48, 64)).shape == (48, 64, 3)


def test_real_50mp_header_is_refused_without_decoding() -> None:
    # A genuine 50 MP JPEG of a flat colour is small in bytes but 150 MB decoded.
    big = cv2.imencode(".jpg", np.zeros((6124, 8165, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 10])[1].tobytes()
    with pytest.raises(FrameError) as exc:
        decode_jpeg(big, **LIMITS)
    assert exc.value.reason == "image_too_many_pixels"


def test_worker_survives_bad_frames_and_dead_letters_them(tmp_path: Path) -> None:
    path, lot = write_camera_site(tmp_path, 1883)
    cfg = load_config(path)
    published: list[tuple[str, bytes]] = []
    dead: list[tuple[str, str]] = []
    lock = threading.Lock()

    def pub(topic: str, payload: bytes) -> None:
        with lock:
            published.append((topic, payload))

    def dl(rx: int, topic: str, reason: str, detail: str, size: int, excerpt: bytes) -> None:
        with lock:
            dead.append((topic, reason))

    mgr = CameraManager(cfg, publish=pub, dead_letter=dl)
    mgr.pool.start(mgr.specs())
    try:
        topic = "edge/v1/cameras/cam1/snapshot"
        bad = [
            b"",
            jpeg(lot.reference)[:5000],  # right size, cut short in transfer
            small_jpeg(64, 48),
            with_size(small_jpeg(), 8165, 6124),
            b"\xff\xd8" + b"\x01" * 5_000_000,
            b"GIF89a....",
        ]
        for b in bad:
            mgr.frame("cam1", b, topic)
        assert wait_until(lambda: len(dead) == len(bad), 30), dead
        assert sorted(r for _t, r in dead) == sorted(
            [
                "image_empty",
                "image_truncated",
                "image_wrong_size",
                "image_too_many_pixels",
                "image_too_large",
                "image_not_jpeg",
            ]
        )
        # the same worker still analyses a good frame
        mgr.frame("cam1", jpeg(lot.reference), topic)
        assert wait_until(lambda: any(t.endswith("/availability") for t, _p in published), 30), published
        assert mgr.pool.restarts == 0
    finally:
        mgr.pool.stop()


def test_hd_frames_are_decoded_and_analysed_at_half_size() -> None:
    from gateway.vision.worker import CameraSpec, FrameResult, _Camera, work_reduce
    from tests import vision_synth as vs

    assert [work_reduce(w) for w in (320, 640, 1280, 1920, 2560, 3840)] == [1, 1, 2, 2, 4, 4]  # >= 560 px wide
    lot = vs.make_lot(3, 1280, 720)
    spaces = [(str(i), p.tolist()) for i, p in enumerate(lot.spaces)]
    cam = _Camera(CameraSpec("hd", jpeg(lot.reference, 95), spaces, [("z", [(900, 60), (1250, 60), (1250, 300)], 1.0)]))
    assert cam.shape == (720, 1280) and cam.reduce == 2
    fr = vs.render(lot, 2, "daylight")
    data = jpeg(fr.image)
    img = decode_jpeg(data, **LIMITS, expect=cam.shape, reduce=cam.reduce)
    assert img.shape == (360, 640, 3)
    res = FrameResult("hd", 1, 0)
    cam.analyse(img, res, data)
    assert set(res.spaces) == {s for s, _p in spaces} and res.unusable is None
    right = sum((res.spaces[str(i)][0] == "occupied") == occ for i, occ in enumerate(fr.occupied))
    assert right >= len(spaces) - 1  # an ordinary daylight frame: at most one space off
    full = FrameResult("hd", 2, 0)
    cam.analyse(fr.image, full, None)  # a full-size frame (RTSP) is brought to the analysis size
    same = sum(full.spaces[k][0] == res.spaces[k][0] for k in res.spaces)
    assert same >= len(spaces) - 1, (full.spaces, res.spaces)
    with pytest.raises(FrameError) as exc:
        cam.analyse(np.zeros((480, 640, 3), np.uint8), FrameResult("hd", 3, 0), None)
    assert exc.value.reason == "image_wrong_size"
