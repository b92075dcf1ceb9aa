"""The camera manager: sources -> worker pool -> readings on the local broker.

How vision results enter the pipeline (docs/vision.md "Into the pipeline"): the manager
publishes them to the gateway's own broker as **native-driver messages** for configured devices
(``edge/v1/devices/<address>/state``, ``.../availability``). The ordinary ingest sessions then
receive, decode, persist and only then acknowledge them, exactly like a physical space sensor:
the parking rules (fire lane, no parking, overstay) and the intrusion-zone rule work unchanged,
and a gateway restart loses nothing the broker accepted.

Per camera and space a state is published when ``confirm_frames`` frames agree on a change, and
re-sent every ``republish_s``. Motion in a restricted zone while its ``rules.intrusion_zones``
entry is armed stores a snapshot and publishes ``{"occupancy": true}`` for the camera's device
with ``meta.snapshot`` (at most once per ``motion_cooldown_s``). A camera with no usable frame for
``offline_after_s`` is published ``offline`` (availability), and ``online`` on the next frame.
A space the model cannot judge (unusable frame, low confidence) is published as
``{"vehicle_unknown": true}`` without ``vehicle_present``; frames that stay unusable for
``unusable_after_s`` publish ``{"image_unusable": true}`` for the camera's device.
Bad images become dead letters (reason ``image_*``) through ``Pipeline.call``; they never reach
a driver and never stop a worker.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.vision.snapshots import SnapshotStore
from gateway.vision.sources import HttpPoller, MqttFrames, native_topic, url_with_credentials
from gateway.vision.worker import CameraSpec, FrameResult, WorkerPool

if TYPE_CHECKING:
    import sqlite3

    from edge_config import SiteConfig
    from edge_config.camera_settings import CameraSettings
    from gateway.ingest.mqtt import BrokerConnection
    from gateway.ingest.pipeline import BatchResult, Pipeline

log = logging.getLogger("gateway.vision")

Publish = Callable[[str, bytes], None]
DeadLetter = Callable[[int, str, str, str, int, bytes], None]  # rx_ms, topic, reason, detail, size, excerpt


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _SpaceState:
    device_topic: str
    confirmed: str | None = None  # occupied | empty | unknown
    pending: str | None = None
    count: int = 0
    published_ms: int = 0


@dataclass
class _CamState:
    cfg: CameraSettings
    avail_topic: str
    state_topic: str
    spaces: dict[str, _SpaceState] = field(default_factory=dict)
    zones: dict[str, Any] = field(default_factory=dict)  # zone id -> rules.intrusion_zones entry
    last_ok_ms: int | None = None
    online: bool | None = None
    last_alarm_ms: dict[str, int] = field(default_factory=dict)
    unusable_since: int | None = None  # first of the current run of unusable frames
    unusable_sent: bool = False  # image_unusable true published for this run
    seq: int = 0
    frames: int = 0
    errors: int = 0


class CameraManager:
    def __init__(
        self,
        cfg: SiteConfig,
        *,
        mqtt: BrokerConnection | None = None,
        publish: Publish | None = None,
        dead_letter: DeadLetter | None = None,
        clock: Callable[[], int] = _now_ms,
        base_dir: Path | None = None,
    ) -> None:
        from edge_config.camera_settings import camera_problems

        problems = camera_problems(cfg)
        if problems:
            raise ValueError("camera config: " + "; ".join(problems))
        self.cfg = cfg
        self.settings = cfg.cameras
        self.clock = clock
        self.tz = ZoneInfo(cfg.gateway.timezone)
        self.base_dir = base_dir or Path.cwd()
        self.dead_letter = dead_letter
        snaps = self.settings.snapshots
        self.snapshots = SnapshotStore(self._path(snaps.path), snaps.quota_mb * 1024 * 1024)
        rules_zones = {z.id: z for z in cfg.rules.intrusion_zones}
        self.cams: dict[str, _CamState] = {}
        routes: dict[str, str] = {}
        for cam in self.settings.cameras:
            dev = cfg.device(cam.device)
            assert dev is not None  # camera_problems (above) checked every device reference
            st = _CamState(
                cam,
                f"edge/v1/devices/{dev.address}/availability",
                f"edge/v1/devices/{dev.address}/state",
            )
            for sp in cam.spaces:
                sdev = cfg.device(sp.device)
                assert sdev is not None
                st.spaces[sp.space_id] = _SpaceState(f"edge/v1/devices/{sdev.address}/state")
            st.zones = {z.zone_id: rules_zones[z.zone_id] for z in cam.zones}
            self.cams[cam.id] = st
            if cam.source.kind == "mqtt":
                routes[native_topic(cam.id)] = cam.id
                if cam.source.frigate_camera:
                    routes[f"frigate/{cam.source.frigate_camera}/+/snapshot"] = cam.id
        self.routes = routes
        self.mqtt: MqttFrames | None = None
        if publish is None or routes:
            if mqtt is None:
                from gateway.ingest.mqtt import connection_from_config

                mqtt = connection_from_config(cfg)
            self.mqtt = MqttFrames(mqtt, routes, self.frame)
        self.publish: Publish = publish or (self.mqtt.publish if self.mqtt else (lambda t, p: None))
        self.pool = WorkerPool(self.settings.workers, self.settings.queue_frames, self._on_result)
        self.pollers: list[HttpPoller] = []
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None
        self._lock = threading.Lock()
        self.published = 0

    def _path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.base_dir / p

    # --- lifecycle -------------------------------------------------------------------------------
    def specs(self) -> list[CameraSpec]:
        out = []
        for cam in self.settings.cameras:
            ref = self._path(cam.reference_image).read_bytes() if cam.reference_image is not None else None
            if ref is not None and not ref.startswith(b"\xff\xd8"):
                # PNG reference (calibrate writes JPEG, installers may not): re-encode for the worker
                import cv2
                import numpy as np

                img = cv2.imdecode(np.frombuffer(ref, np.uint8), cv2.IMREAD_COLOR)
                if img is None:
                    raise ValueError(f"camera {cam.id}: cannot read reference image {cam.reference_image}")
                ref = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
            src = cam.source
            rtsp = None
            if src.kind == "rtsp":
                assert src.url is not None  # CameraSource requires a url for rtsp and http
                pw = src.password.get_secret_value() if src.password is not None else None
                rtsp = url_with_credentials(src.url, src.username, pw)
            out.append(
                CameraSpec(
                    cam.id,
                    ref,
                    [(s.space_id, list(s.polygon)) for s in cam.spaces],
                    [(z.zone_id, list(z.polygon), z.min_area_pct) for z in cam.zones],
                    cam.max_image_bytes,
                    cam.max_pixels,
                    rtsp,
                    src.interval_s,
                )
            )
        return out

    def start(self) -> None:
        self.pool.start(self.specs())
        if self.mqtt is not None:
            self.mqtt.start()
        for cam in self.settings.cameras:
            src = cam.source
            if src.kind == "http":
                assert src.url is not None
                auth = None
                if src.username:
                    auth = (src.username, src.password.get_secret_value() if src.password else "")
                p = HttpPoller(cam.id, src.url, src.interval_s, src.timeout_s, cam.max_image_bytes, self.frame, auth)
                self.pollers.append(p)
                p.start()
        self._watch = threading.Thread(target=self._watchdog, name="camera-watchdog", daemon=True)
        self._watch.start()

    def stop(self) -> None:
        self._stop.set()
        for p in self.pollers:
            p.stop()
        self.pool.stop()
        if self._watch is not None:
            self._watch.join(3)
        if self.mqtt is not None:
            self.mqtt.stop()

    # --- frames in -------------------------------------------------------------------------------
    def frame(self, camera_id: str, jpeg: bytes, topic: str) -> None:
        """A snapshot arrived (MQTT or HTTP thread). Only bookkeeping here; analysis is in a worker."""
        st = self.cams.get(camera_id)
        if st is None:
            return
        now = self.clock()
        if len(jpeg) > st.cfg.max_image_bytes:
            self._dead(now, topic, "image_too_large", f"{len(jpeg)} bytes; the limit is {st.cfg.max_image_bytes}", jpeg)
            return
        with self._lock:
            st.seq += 1
            seq = st.seq
        self.pool.submit(camera_id, seq, now, topic, jpeg)

    def _dead(self, rx_ms: int, topic: str, reason: str, detail: str, payload: bytes, size: int | None = None) -> None:
        log.warning("camera frame dead-lettered (%s): %s %s", topic, reason, detail)
        if self.dead_letter is not None:
            self.dead_letter(rx_ms, topic, reason, detail, len(payload) if size is None else size, payload[:256])

    # --- results out -----------------------------------------------------------------------------
    def _send(self, topic: str, body: dict[str, Any] | str) -> None:
        payload = body.encode() if isinstance(body, str) else json.dumps(body, separators=(",", ":")).encode()
        self.publish(topic, payload)
        self.published += 1

    def _on_result(self, res: FrameResult) -> None:
        st = self.cams.get(res.camera)
        if st is None:
            return
        if res.error is not None:
            st.errors += 1
            reason, detail = res.error
            self._dead(res.ts_ms or self.clock(), res.topic or res.camera, reason, detail, res.excerpt, res.size)
            return
        st.frames += 1
        with self._lock:
            st.last_ok_ms = self.clock()
            back = st.online is not True
            st.online = True
        if back:
            self._send(st.avail_topic, "online")
        ts = res.ts_ms
        self._usability(st, res.unusable, ts)
        for sid, (state, score, conf, why) in res.spaces.items():
            sp = st.spaces.get(sid)
            if sp is None:
                continue
            if state == sp.confirmed:
                sp.pending, sp.count = None, 0
                if ts - sp.published_ms >= st.cfg.republish_s * 1000:
                    self._space(st, sid, sp, state, score, conf, ts, why)
                continue
            if state == sp.pending:
                sp.count += 1
            else:
                sp.pending, sp.count = state, 1
            if sp.count >= st.cfg.confirm_frames:
                sp.confirmed, sp.pending, sp.count = state, None, 0
                self._space(st, sid, sp, state, score, conf, ts, why)
        thresholds = {z.zone_id: z.min_area_pct for z in st.cfg.zones}
        from gateway.vision.intrusion import zone_armed

        for zid, pct in res.motion.items():
            if pct < thresholds.get(zid, 100.0) or not zone_armed(st.zones[zid], ts, self.tz):
                continue
            if ts - st.last_alarm_ms.get(zid, -(10**15)) < st.cfg.motion_cooldown_s * 1000:
                continue
            st.last_alarm_ms[zid] = ts
            meta: dict[str, Any] = {"camera": st.cfg.id, "zone": zid, "motion_pct": round(pct, 1)}
            if res.snapshot:
                try:
                    meta["snapshot"] = self.snapshots.put(st.cfg.id, zid, ts, res.snapshot)
                except (OSError, ValueError) as exc:
                    log.error("snapshot not stored: %s", exc)
            self._send(st.state_topic, {"ts": ts, "values": {"occupancy": True}, "meta": meta})

    def _space(
        self, st: _CamState, sid: str, sp: _SpaceState, state: str, score: float, conf: float, ts: int, why: str | None
    ) -> None:
        """A known state carries ``vehicle_present`` (and ``vehicle_unknown: false``, so the device's
        latest values stop saying unknown); an unknown one carries only ``vehicle_unknown: true``:
        no ``vehicle_present``, so the parking rules neither start nor stop a timer on it."""
        sp.published_ms = ts
        meta: dict[str, Any] = {
            "camera": st.cfg.id,
            "space": sid,
            "score": round(score, 3),
            "confidence": round(conf, 3),
        }
        if state == "unknown":
            meta["reason"] = why or "low_confidence"
            values: dict[str, Any] = {"vehicle_unknown": True}
        else:
            values = {"vehicle_present": state == "occupied", "vehicle_unknown": False}
        self._send(sp.device_topic, {"ts": ts, "values": values, "meta": meta})

    def _usability(self, st: _CamState, reason: str | None, ts: int) -> None:
        """Frames that keep arriving unusable for ``unusable_after_s`` -> ``image_unusable`` on the
        camera's device (the rules raise a device-health incident); the next usable frame clears it."""
        if reason is None:
            if st.unusable_sent:
                back = {"camera": st.cfg.id}
                self._send(st.state_topic, {"ts": ts, "values": {"image_unusable": False}, "meta": back})
            st.unusable_since, st.unusable_sent = None, False
            return
        if st.unusable_since is None:
            st.unusable_since = ts
        if not st.unusable_sent and ts - st.unusable_since >= st.cfg.unusable_after_s * 1000:
            st.unusable_sent = True
            meta: dict[str, Any] = {"camera": st.cfg.id, "reason": reason, "since_ms": st.unusable_since}
            self._send(st.state_topic, {"ts": ts, "values": {"image_unusable": True}, "meta": meta})

    # --- silence ---------------------------------------------------------------------------------
    def check_silence(self) -> None:
        now = self.clock()
        for st in self.cams.values():
            with self._lock:
                if st.online is False:
                    continue
                since = st.last_ok_ms
                if since is None:
                    since = st.last_ok_ms = now  # the limit counts from start
                if now - since < st.cfg.offline_after_s * 1000:
                    continue
                st.online = False
            self._send(st.avail_topic, "offline")

    def _watchdog(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.check_silence()
            except Exception:
                log.exception("camera watchdog failed")

    def status(self) -> dict[str, Any]:
        return {
            "cameras": {
                cid: {
                    "online": st.online,
                    "frames": st.frames,
                    "errors": st.errors,
                    "last_ok_ms": st.last_ok_ms,
                    "unusable_since_ms": st.unusable_since,
                }
                for cid, st in self.cams.items()
            },
            "dropped_frames": self.pool.dropped,
            "worker_restarts": self.pool.restarts,
            "snapshots_bytes": self.snapshots.total_bytes,
        }


def pipeline_dead_letter(pipeline: Pipeline) -> DeadLetter:
    """A dead-letter sink writing through the pipeline's single writer (Pipeline.call)."""

    def write(rx_ms: int, topic: str, reason: str, detail: str, size: int, excerpt: bytes) -> None:
        def fn(conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
            conn.execute(
                "INSERT INTO dead_letters(rx_ms, topic, driver, reason, detail, payload_len, payload_excerpt,"
                " config_rev) VALUES (?,?,?,?,?,?,?,?)",
                (rx_ms, topic[:512], "camera", reason, detail[:500], size, excerpt[:256], pipeline.config_rev),
            )

        pipeline.call(fn)

    return write
