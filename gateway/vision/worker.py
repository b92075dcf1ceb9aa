"""Frame decoding and analysis in worker processes, off the event loop and the pipeline thread.

:func:`decode_jpeg` checks a snapshot before OpenCV touches it (zero bytes, not JPEG, truncated,
too many bytes, a header announcing too many pixels - a 50 MP "decompression bomb" is refused
from its header, never decoded - or dimensions other than the calibrated reference) and raises
:class:`FrameError` with a short stable reason that the host turns into a dead letter.

:class:`WorkerPool` runs ``workers`` processes (``spawn``: no fork of a threaded gateway). A
camera always goes to the same process (its background model lives there). Each process has a
bounded input queue; when it is full a new frame is dropped and counted (a snapshot stream is
lossy by nature: the next frame replaces it). A process that dies is restarted with its cameras.
RTSP streams are read inside the worker process that owns the camera (cv2.VideoCapture in a
thread there), sampled at the configured rate, so video decoding never runs in the gateway.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.errors import InputError

if TYPE_CHECKING:
    from gateway.vision.intrusion import MotionDetector
    from gateway.vision.occupancy import OccupancyModel

log = logging.getLogger("gateway.vision")

REASONS = frozenset(
    {
        "image_empty",  # zero bytes
        "image_not_jpeg",  # no JPEG start-of-image marker
        "image_truncated",  # no end-of-image marker / data cut short
        "image_too_large",  # more bytes than max_image_bytes
        "image_too_many_pixels",  # header announces more than max_pixels
        "image_wrong_size",  # dimensions differ from the calibrated reference
        "image_undecodable",  # OpenCV could not decode it
        "analysis_error",  # a bug or OpenCV error while analysing (the worker carries on)
    }
)


class FrameError(InputError):
    """A frame that cannot be analysed; ``reason`` is one of :data:`REASONS`."""

    code = "frame_error"

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown frame error reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[FrameError], tuple[str, str]]:
        return (type(self), (self.reason, self.detail))


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG header (SOFn segment), without decoding. FrameError if the
    markers are broken before a SOF is found."""
    if not data:
        raise FrameError("image_empty", "zero bytes")
    if data[:2] != b"\xff\xd8":
        raise FrameError("image_not_jpeg", "no JPEG start-of-image marker")
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise FrameError("image_undecodable", f"bad marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (seglen,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > n:
                break
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        if marker == 0xDA:
            break
        i += 2 + seglen
    raise FrameError("image_truncated", "no frame header (SOF) before the data ends")


WORK_MIN_WIDTH = 560  # analysis runs at the largest 1/2^k reduction at least this wide
_REDUCED = {1: 1, 2: 17, 4: 33, 8: 65}  # cv2.IMREAD_COLOR / IMREAD_REDUCED_COLOR_2/_4/_8


def work_reduce(width: int) -> int:
    """How much a frame of ``width`` is reduced for analysis (1, 2, 4 or 8).

    A 1280x720 frame is analysed at 640x360: JPEG decoding at 1/2 scale (libjpeg's DCT scaling)
    costs a fraction of a full decode, and the occupancy features need no more (a space is still
    tens of pixels across; the method and its evaluation work at this size)."""
    r = 1
    while r < 8 and width // (r * 2) >= WORK_MIN_WIDTH:
        r *= 2
    return r


# Any: OpenCV/numpy image arrays; cv2 and numpy are imported lazily (optional vision extra)
def decode_jpeg(
    data: bytes, *, max_bytes: int, max_pixels: int, expect: tuple[int, int] | None = None, reduce: int = 1
) -> Any:
    """Checked JPEG decode -> BGR uint8 array. ``expect`` is (height, width) of the reference;
    ``reduce`` (1, 2, 4, 8) decodes at that fraction of the size."""
    import cv2
    import numpy as np

    if len(data) > max_bytes:
        raise FrameError("image_too_large", f"{len(data)} bytes; the limit is {max_bytes}")
    w, h = jpeg_size(data)
    if w * h > max_pixels or w == 0 or h == 0:
        raise FrameError("image_too_many_pixels", f"{w}x{h} announced; the limit is {max_pixels} pixels")
    if expect is not None and (h, w) != expect:
        raise FrameError("image_wrong_size", f"{w}x{h}; the reference is {expect[1]}x{expect[0]}")
    tail = data[-64:].rstrip(b"\x00")
    if not tail.endswith(b"\xff\xd9"):
        raise FrameError("image_truncated", "no JPEG end-of-image marker (cut short in transfer?)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[reduce])
    if img is None:
        raise FrameError("image_undecodable", "OpenCV could not decode the JPEG")
    if img.shape[:2] != (-(-h // reduce), -(-w // reduce)):
        raise FrameError("image_undecodable", "decoded size differs from the header")
    return img


# --- messages between host and worker ---------------------------------------------------------


@dataclass
class CameraSpec:
    """What a worker needs for one camera (picklable)."""

    id: str
    reference_jpeg: bytes | None
    spaces: list[tuple[str, list[tuple[float, float]]]]
    zones: list[tuple[str, list[tuple[float, float]], float]]
    max_bytes: int = 4_000_000
    max_pixels: int = 8_300_000
    rtsp_url: str | None = None
    rtsp_interval_s: float = 1.0


@dataclass
class FrameResult:
    camera: str
    seq: int
    ts_ms: int
    # space -> (state, p, confidence, why unknown): occupied|empty|unknown, covered|fog|glare|frozen|low_confidence
    spaces: dict[str, tuple[str, float, float, str | None]] = field(default_factory=dict)
    unusable: str | None = None  # why the frame could not be judged: covered | fog | glare | frozen
    motion: dict[str, float] = field(default_factory=dict)  # zone -> percent moving
    snapshot: bytes | None = None  # JPEG, when a zone saw motion above its threshold
    error: tuple[str, str] | None = None
    topic: str = ""
    excerpt: bytes = b""
    size: int = 0
    cpu_s: float = 0.0


class _Camera:
    def __init__(self, spec: CameraSpec) -> None:
        import cv2
        import numpy as np

        from gateway.vision.occupancy import OccupancyModel

        self.spec = spec
        self.shape: tuple[int, int] | None = None  # full frame (height, width)
        self.reduce = 1  # analysis at shape / reduce (see work_reduce)
        self.model: OccupancyModel | None = None
        self.motion: MotionDetector | None = None
        self.thresholds = {zid: pct for zid, _p, pct in spec.zones}
        if spec.reference_jpeg:
            w, h = jpeg_size(spec.reference_jpeg)
            self.shape, self.reduce = (h, w), work_reduce(w)
            flag = _REDUCED[self.reduce]
            ref = cv2.imdecode(np.frombuffer(spec.reference_jpeg, np.uint8), flag)
            if ref is None:
                raise ValueError(f"camera {spec.id}: the reference image cannot be decoded")
            if spec.spaces:
                k = 1.0 / self.reduce
                spaces = [(sid, [(x * k, y * k) for x, y in poly]) for sid, poly in spec.spaces]
                self.model = OccupancyModel(ref, spaces)

    def work_image(self, image: Any) -> Any:
        """A full-size frame (RTSP) brought to the analysis size; a reduced decode passes as is."""
        import cv2

        if self.shape is None:
            self.shape = (int(image.shape[0]), int(image.shape[1]))
        h, w = self.shape
        work = (-(-h // self.reduce), -(-w // self.reduce))
        if image.shape[:2] == work:
            return image
        if image.shape[:2] != self.shape:
            got, want = f"{image.shape[1]}x{image.shape[0]}", f"{w}x{h}"
            raise FrameError("image_wrong_size", f"{got}; expected {want}")
        return cv2.resize(image, (work[1], work[0]), interpolation=cv2.INTER_AREA)

    def analyse(self, image: Any, result: FrameResult, jpeg: bytes | None) -> None:
        import cv2

        full, image = image, self.work_image(image)
        if self.model is not None:
            decisions = self.model.classify(image)
            result.spaces = {sid: (d.state, d.p, d.confidence, d.reason) for sid, d in decisions.items()}
            result.unusable = self.model.last_quality.reason
        if self.spec.zones:
            if self.motion is None:
                from gateway.vision.intrusion import MotionDetector

                k = 1.0 / self.reduce
                zones = [(z, [(x * k, y * k) for x, y in p]) for z, p, _t in self.spec.zones]
                self.motion = MotionDetector(zones, (int(image.shape[0]), int(image.shape[1])))
            result.motion = self.motion.update(image)
            if any(v >= self.thresholds[z] for z, v in result.motion.items()):
                if jpeg is None:
                    ok, buf = cv2.imencode(".jpg", full, [cv2.IMWRITE_JPEG_QUALITY, 80])
                    jpeg = buf.tobytes() if ok else None
                result.snapshot = jpeg


# Any: multiprocessing queues of tagged tuples (see docstring)
def _worker_main(inq: Any, outq: Any) -> None:
    """Worker process loop: ('camera', spec) | ('frame', cam, seq, ts, topic, jpeg) | ('stop',)."""
    import cv2

    cv2.setNumThreads(1)  # one core per worker; the pool size is the parallelism
    cams: dict[str, _Camera] = {}
    readers: dict[str, threading.Event] = {}
    lock = threading.Lock()

    def run(cam: _Camera, res: FrameResult, image: Any, jpeg: bytes | None) -> None:
        t0 = time.process_time()
        try:
            if image is None and jpeg is not None:
                image = decode_jpeg(
                    jpeg,
                    max_bytes=cam.spec.max_bytes,
                    max_pixels=cam.spec.max_pixels,
                    expect=cam.shape,
                    reduce=cam.reduce,
                )
            with lock:
                cam.analyse(image, res, jpeg)
        except FrameError as exc:
            res.error = (exc.reason, exc.detail)
        except Exception as exc:  # never let one frame kill the worker
            res.error = ("analysis_error", f"{type(exc).__name__}: {exc}"[:300])
        res.cpu_s = time.process_time() - t0
        outq.put(res)

    def rtsp_loop(cam: _Camera, stop: threading.Event) -> None:
        url = cam.spec.rtsp_url or ""
        seq = 0
        while not stop.is_set():
            cap = cv2.VideoCapture(url)
            if not cap.isOpened():
                stop.wait(5.0)
                continue
            next_t = 0.0
            while not stop.is_set():
                ok = cap.grab()  # cheap: keeps the stream drained without decoding every frame
                if not ok:
                    break
                now = time.monotonic()
                if now < next_t:
                    continue
                next_t = now + cam.spec.rtsp_interval_s
                ok, image = cap.retrieve()
                if not ok or image is None:
                    continue
                seq += 1
                res = FrameResult(cam.spec.id, seq, int(time.time() * 1000), topic=f"rtsp:{cam.spec.id}")
                run(cam, res, image, None)
            cap.release()
            stop.wait(1.0)

    while True:
        msg = inq.get()
        kind = msg[0]
        if kind == "stop":
            for ev in readers.values():
                ev.set()
            return
        if kind == "camera":
            spec: CameraSpec = msg[1]
            try:
                cams[spec.id] = _Camera(spec)
            except Exception as exc:
                outq.put(FrameResult(spec.id, 0, 0, error=("analysis_error", f"camera setup: {exc}"[:300])))
                continue
            if spec.rtsp_url:
                ev = threading.Event()
                readers[spec.id] = ev
                threading.Thread(target=rtsp_loop, args=(cams[spec.id], ev), daemon=True).start()
            continue
        _, cam_id, seq, ts_ms, topic, jpeg = msg
        res = FrameResult(cam_id, seq, ts_ms, topic=topic, excerpt=jpeg[:256], size=len(jpeg))
        cam = cams.get(cam_id)
        if cam is None:
            res.error = ("analysis_error", "camera not configured in this worker")
            outq.put(res)
            continue
        run(cam, res, None, jpeg)


class WorkerPool:
    """``workers`` analysis processes; results are delivered to ``on_result`` on a host thread."""

    def __init__(self, workers: int, queue_frames: int, on_result: Callable[[FrameResult], None]) -> None:
        self.n = max(1, workers)
        self.queue_frames = queue_frames
        self.on_result = on_result
        self.ctx = mp.get_context("spawn")
        self.outq: Any = self.ctx.Queue()
        self.procs: list[Any] = [None] * self.n
        self.inqs: list[Any] = [None] * self.n
        self.specs: dict[str, CameraSpec] = {}
        self.dropped = 0
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def slot(self, camera: str) -> int:
        return zlib.crc32(camera.encode()) % self.n

    def _spawn(self, i: int) -> None:
        inq = self.ctx.Queue(maxsize=self.queue_frames + len(self.specs) + 2)
        p = self.ctx.Process(target=_worker_main, args=(inq, self.outq), name=f"vision-{i}", daemon=True)
        p.start()
        self.procs[i], self.inqs[i] = p, inq
        for spec in self.specs.values():
            if self.slot(spec.id) == i:
                inq.put(("camera", spec))

    def start(self, specs: list[CameraSpec]) -> None:
        self.specs = {s.id: s for s in specs}
        for i in range(self.n):
            self._spawn(i)
        self._thread = threading.Thread(target=self._collect, name="vision-results", daemon=True)
        self._thread.start()

    def _ensure_alive(self, i: int) -> None:
        p = self.procs[i]
        if p is not None and not p.is_alive() and not self._stop.is_set():
            log.error("vision worker %d died (exit code %s); restarting", i, p.exitcode)
            self.restarts += 1
            self._spawn(i)

    def submit(self, camera: str, seq: int, ts_ms: int, topic: str, jpeg: bytes) -> bool:
        """Queue a frame; False (and counted) when the worker's queue is full."""
        i = self.slot(camera)
        with self._lock:
            self._ensure_alive(i)
            try:
                self.inqs[i].put_nowait(("frame", camera, seq, ts_ms, topic, jpeg))
                return True
            except queue.Full:
                self.dropped += 1
                return False

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                res = self.outq.get(timeout=0.5)
            except queue.Empty:
                with self._lock:
                    for i in range(self.n):
                        self._ensure_alive(i)
                continue
            except (EOFError, OSError):
                return
            try:
                self.on_result(res)
            except Exception:
                log.exception("vision result handler failed")

    def stop(self) -> None:
        self._stop.set()
        for i, p in enumerate(self.procs):
            if p is None:
                continue
            try:
                self.inqs[i].put_nowait(("stop",))
            except Exception:
                pass
        for p in self.procs:
            if p is not None:
                p.join(3)
                if p.is_alive():
                    p.terminate()
                    p.join(2)
        if self._thread is not None:
            self._thread.join(2)
