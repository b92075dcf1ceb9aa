"""Camera analytics benchmark: accuracy on what the model was not fitted on, and Pi capacity.

    .venv/bin/python bench/vision.py [--lots 12] [--seq N] [--generator both] [--cameras 8] [--skip-accuracy]

1. Throughput: one worker process (OpenCV limited to one thread, as in the gateway) analyses
   1280x720 JPEG snapshots of a synthetic lot (~12 spaces, one restricted zone): JPEG decode
   at the analysis size + frame check + registration + occupancy for every space (calibrated and
   adapted references) + background subtraction. fps_per_core = frames / CPU seconds of that
   process (time.process_time, not wall time: other load on the box does not distort it).
2. Memory per camera: RSS growth of a worker process per added camera (reference planes, space
   pixels, adapted references filled by frames in four kinds of light, background model),
   averaged over --cameras.
3. Accuracy (tests/vision_eval.py): per condition, leave-one-condition-out (each fold also
   leaves its lots out) and leave-lot-group-out balanced accuracy with the model refitted per
   fold, the hard spaces separately, the share of unknown answers (an unknown is not correct);
   then how often the frame check refuses unusable images (covered lens, dense fog, white-out,
   frozen) and wrongly refuses usable ones.

   Two evaluation sets, the same classifier on both (``--generator``, default both): "persistent"
   (a parked car stays the same car until it leaves, 12-frame sequences; the RESULT line) and
   "redrawn" (every parked car drawn anew in every frame, 6-frame sequences: the set used before
   2026-12-06), so a gain from the generator is not taken for a gain of the classifier.

Last line: RESULT accuracy=... min_condition_accuracy=... unknown_pct=... fps_per_core=...
(accuracy, min_condition_accuracy and unknown_pct from the leave-one-condition-out folds of the
persistent set; the lines "generator ...:" above it give both sets).
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

BENCH_LOT = 3  # a 1280x720 lot of the generator with 12 spaces in two rows
ZONE = [(900.0, 60.0), (1250.0, 60.0), (1250.0, 300.0), (900.0, 300.0)]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _jpeg(img: object, q: int) -> bytes:
    import cv2

    return bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes())  # type: ignore[call-overload]


def _throughput(frames: int, out: Connection) -> None:
    import cv2

    from gateway.vision.worker import CameraSpec, FrameResult, _Camera, decode_jpeg
    from tests import vision_synth as vs

    cv2.setNumThreads(1)
    lot = vs.make_lot(BENCH_LOT, 1280, 720)
    spec = CameraSpec(
        "bench", _jpeg(lot.reference, 95), [(str(i), p.tolist()) for i, p in enumerate(lot.spaces)], [("z", ZONE, 1.0)]
    )
    cam = _Camera(spec)
    conds = ("daylight", "overcast", "rain", "night", "shake", "people")
    jpegs = [_jpeg(vs.render(lot, i, conds[i % len(conds)]).image, 80) for i in range(min(frames, 18))]
    t0, w0 = time.process_time(), time.perf_counter()
    for i in range(frames):
        data = jpegs[i % len(jpegs)]
        img = decode_jpeg(data, max_bytes=10_000_000, max_pixels=10_000_000, expect=cam.shape, reduce=cam.reduce)
        cam.analyse(img, FrameResult("bench", i, 0), data)
    cpu = time.process_time() - t0
    out.send(
        ("fps", frames / cpu, frames / (time.perf_counter() - w0), len(lot.spaces), sum(map(len, jpegs)) / len(jpegs))
    )


def _memory(cameras: int, out: Connection) -> None:
    import cv2

    from gateway.vision.worker import CameraSpec, FrameResult, _Camera, decode_jpeg
    from tests import vision_synth as vs

    cv2.setNumThreads(1)
    lots = [vs.make_lot(100 + i, 1280, 720) for i in range(cameras + 1)]
    light = ("daylight", "night", "overcast", "dusk")
    frames = [[_jpeg(vs.render(lot, j, light[j % 4], occupancy=0.3).image, 80) for j in range(8)] for lot in lots]

    def camera(i: int) -> _Camera:
        lot = lots[i]
        spaces = [(str(k), p.tolist()) for k, p in enumerate(lot.spaces)]
        cam = _Camera(CameraSpec(f"c{i}", _jpeg(lot.reference, 95), spaces, [("z", ZONE, 1.0)]))
        for data in frames[i]:
            img = decode_jpeg(data, max_bytes=10_000_000, max_pixels=10_000_000, expect=cam.shape, reduce=cam.reduce)
            cam.analyse(img, FrameResult(f"c{i}", 0, 0), data)
        return cam

    camera(cameras)  # warm up the libraries so their one-off allocations are not counted per camera
    base = rss_mb()
    cams = [camera(i) for i in range(cameras)]
    adapted = sum(c.model.adapted_bytes for c in cams if c.model is not None) / cameras / 1e6
    spaces = sum(len(lot.spaces) for lot in lots[:cameras]) / cameras
    out.send(("mem", (rss_mb() - base) / cameras, base, adapted, spaces))


def _quality_rates(lots: int) -> tuple[dict[str, float], float]:
    """Share of frames refused per unusable condition (and frozen); share of usable frames refused."""
    from gateway.vision.quality import FrameCheck
    from tests import vision_synth as vs

    refused: dict[str, list[bool]] = {}
    usable_refused: list[bool] = []
    for i in range(lots):
        lot = vs.make_lot(vs.SPLIT_SEED["heldout"] + 50 + i)
        for cond in vs.UNUSABLE:
            for j in range(4):
                check = FrameCheck(lot.reference)
                refused.setdefault(cond, []).append(not check.check(vs.render(lot, j, cond, "heldout").image).usable)
        for cond in vs.CONDITIONS:
            check = FrameCheck(lot.reference)
            usable_refused.append(not check.check(vs.render(lot, 7, cond, "heldout").image).usable)
        check = FrameCheck(lot.reference)
        frame = vs.render(lot, 3, "daylight", "heldout").image
        states = [check.check(frame).reason for _ in range(4)]  # the same frame again and again
        refused.setdefault("frozen", []).append(states[-1] == "frozen")
    return {k: sum(v) / len(v) for k, v in refused.items()}, sum(usable_refused) / len(usable_refused)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60, help="throughput frames")
    ap.add_argument("--cameras", type=int, default=8, help="cameras for the memory figure")
    ap.add_argument("--lots", type=int, default=None, help="lots of the accuracy set (default tests/vision_eval.LOTS)")
    ap.add_argument("--seq", type=int, default=None, help="frames per sequence (default: the generator's, vision_eval)")
    ap.add_argument(
        "--generator",
        choices=("persistent", "redrawn", "both"),
        default="both",
        help="evaluation set: parked cars persistent (RESULT), redrawn every frame (the set before), or both",
    )
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
        f"throughput: 1280x720 (analysed at 640x360), {n_spaces} spaces + 1 zone, JPEG ~{jpeg_bytes / 1024:.0f} KiB:"
        f" {fps_cpu:.1f} frames per CPU-second ({fps_wall:.1f} fps wall) in one worker process"
    )
    p = ctx.Process(target=_memory, args=(args.cameras, out_w))
    p.start()
    _, mb_per_cam, base, adapted_mb, avg_spaces = receive(out_r, p, "the memory worker's report", limit_s=args.limit)
    p.join()
    print(
        f"memory: {mb_per_cam:.1f} MB RSS per added camera ({avg_spaces:.1f} spaces; adapted references"
        f" {adapted_mb:.2f} MB of it), worker base {base:.0f} MB incl. OpenCV/numpy"
    )
    result = f"fps_per_core={fps_cpu:.1f} mb_per_camera={mb_per_cam:.1f}"
    if not args.skip_accuracy:
        t0 = time.process_time()
        gens = ("redrawn", "persistent") if args.generator == "both" else (args.generator,)
        summary = {gen: _accuracy(gen, args.lots, args.seq) for gen in gens}
        rates, false_refusal = _quality_rates(max(2, (args.lots or 12) // 3))
        print(
            "\nframe check: refused "
            + ", ".join(f"{k} {100 * v:.0f} %" for k, v in rates.items())
            + f"; usable frames refused {100 * false_refusal:.1f} %"
        )
        print(f"accuracy CPU time: {time.process_time() - t0:.0f} s")
        for gen, line in summary.items():
            print(f"generator {gen}: {line.replace('{fps}', result)}")
        result = summary[gens[-1]].replace("{fps}", result)
    print(f"RESULT {result}")
    return 0


def _accuracy(generator: str, lots_arg: int | None, seq_arg: int | None) -> str:
    """LOCO and LOLO tables on one generator's set; the RESULT fields ("{fps}" stands for the
    throughput and memory figures)."""
    from tests import vision_eval as ve

    lots = lots_arg or ve.LOTS
    frames = seq_arg or (ve.FRAMES if generator == "persistent" else ve.REDRAWN_FRAMES)
    seqs = ve.sequences("tune", lots, frames, generator=generator)
    rows = ve.training_rows(seqs)
    print(
        f"\n## generator {generator}\n\naccuracy set: {lots} lots x {len(ve.vs.CONDITIONS)} conditions x"
        f" {frames}-frame sequences = {len(rows.y)} spaces ({int(rows.y.sum())} occupied); {ve.LOT_GROUPS} lot"
        f" groups; {rows.unusable} frames of usable conditions refused by the frame check"
    )
    reports = {}
    for scheme, title in (("loco", "leave-one-condition-out (and lot-group-out)"), ("lolo", "leave-lot-group-out")):
        rep = ve.report(ve.run_folds(seqs, rows, scheme))
        reports[scheme] = rep
        worst, worst_acc = rep.min_condition
        print(
            f"\n{title} [{generator}]: balanced accuracy {rep.all.balanced:.4f},"
            f" worst condition {worst} {worst_acc:.4f}"
        )
        print(ve.table(rep))
    loco, lolo = reports["loco"], reports["lolo"]
    return (
        f"accuracy={loco.all.balanced:.4f} min_condition_accuracy={loco.min_condition[1]:.4f}"
        f" unknown_pct={loco.all.unknown_pct:.1f} {{fps}} lolo_accuracy={lolo.all.balanced:.4f}"
        f" lolo_min_condition_accuracy={lolo.min_condition[1]:.4f}"
        f" hard_accuracy={loco.hard['all hard'].balanced:.4f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
