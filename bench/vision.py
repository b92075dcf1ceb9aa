"""Camera analytics benchmark: how many cameras a Pi-class gateway can take.

    .venv/bin/python bench/vision.py [--frames 60] [--cameras 8] [--skip-accuracy]

1. Throughput: one worker process (OpenCV limited to one thread, as in the gateway) analyses
   1280x720 JPEG snapshots of a synthetic lot (~15 spaces, one restricted zone): JPEG decode +
   occupancy for every space + background subtraction. fps_per_core = frames / CPU seconds of
   that process (not wall time, so other load on the box does not distort it).
2. Memory per camera: RSS growth of a worker process per added camera state (reference
   image, precomputed planes, background model after a few frames), averaged over --cameras.
3. Accuracy: balanced accuracy on the held-out synthetic split (tests/vision_eval.py).

Last line: RESULT accuracy=... fps_per_core=... mb_per_camera=...
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._wait import receive  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _throughput(frames: int, out: Connection) -> None:
    import cv2

    from gateway.vision.worker import CameraSpec, FrameResult, _Camera, decode_jpeg
    from tests import vision_synth as vs

    cv2.setNumThreads(1)
    lot = vs.make_lot(3, 1280, 720)
    ref = cv2.imencode(".jpg", lot.reference, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    zone = [(900.0, 60.0), (1250.0, 60.0), (1250.0, 300.0), (900.0, 300.0)]
    spec = CameraSpec("bench", ref, [(str(i), p.tolist()) for i, p in enumerate(lot.spaces)], [("z", zone, 1.0)])
    cam = _Camera(spec)
    jpegs = []
    for i in range(min(frames, 20)):
        fr = vs.render(lot, i, vs.CONDITIONS[i % len(vs.CONDITIONS)])
        jpegs.append(cv2.imencode(".jpg", fr.image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    t0, w0 = time.process_time(), time.perf_counter()
    for i in range(frames):
        data = jpegs[i % len(jpegs)]
        img = decode_jpeg(data, max_bytes=10_000_000, max_pixels=10_000_000, expect=cam.shape)
        cam.analyse(img, FrameResult("bench", i, 0), data)
    cpu = time.process_time() - t0
    out.send(
        (
            "fps",
            frames / cpu,
            frames / (time.perf_counter() - w0),
            len(lot.spaces),
            sum(len(j) for j in jpegs) / len(jpegs),
        )
    )


def _memory(cameras: int, out: Connection) -> None:
    import cv2

    from gateway.vision.worker import CameraSpec, FrameResult, _Camera
    from tests import vision_synth as vs

    cv2.setNumThreads(1)
    lots = [vs.make_lot(100 + i, 1280, 720) for i in range(cameras)]
    frames = [[vs.render(lot, j, "daylight").image for j in range(3)] for lot in lots]
    refs = [cv2.imencode(".jpg", lot.reference, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for lot in lots]
    # warm up the libraries so their one-off allocations are not counted per camera
    warm = _Camera(
        CameraSpec(
            "w",
            refs[0],
            [(str(i), p.tolist()) for i, p in enumerate(lots[0].spaces)],
            [("z", [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0)], 1.0)],
        )
    )
    for f in frames[0]:
        warm.analyse(f, FrameResult("w", 0, 0), None)
    del warm
    base = rss_mb()
    cams = []
    for i, lot in enumerate(lots):
        spaces = [(str(k), p.tolist()) for k, p in enumerate(lot.spaces)]
        cam = _Camera(
            CameraSpec(f"c{i}", refs[i], spaces, [("z", [(900.0, 60.0), (1250.0, 60.0), (1250.0, 300.0)], 1.0)])
        )
        for f in frames[i]:
            cam.analyse(f, FrameResult(f"c{i}", 0, 0), None)
        cams.append(cam)
    out.send(("mem", (rss_mb() - base) / cameras, base))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--limit", type=float, default=300.0, help="seconds each worker may take to report")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    out_r, out_w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_throughput, args=(args.frames, out_w))
    p.start()
    _, fps_cpu, fps_wall, n_spaces, jpeg_bytes = receive(out_r, p, "the throughput worker's report", limit_s=args.limit)
    p.join()
    print(
        f"throughput: 1280x720, {n_spaces} spaces + 1 zone, JPEG ~{jpeg_bytes / 1024:.0f} KiB: "
        f"{fps_cpu:.1f} frames per CPU-second ({fps_wall:.1f} fps wall) in one worker process"
    )
    p = ctx.Process(target=_memory, args=(args.cameras, out_w))
    p.start()
    _, mb_per_cam, base = receive(out_r, p, "the memory worker's report", limit_s=args.limit)
    p.join()
    print(f"memory: {mb_per_cam:.1f} MB RSS per added camera (worker base {base:.0f} MB incl. OpenCV/numpy)")
    acc = float("nan")
    if not args.skip_accuracy:
        from tests.vision_eval import evaluate, table

        counts = evaluate("heldout")
        print(table(counts))
        acc = counts["all"].balanced
    print(f"RESULT accuracy={acc:.4f} fps_per_core={fps_cpu:.1f} mb_per_camera={mb_per_cam:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
