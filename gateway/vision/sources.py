"""Where camera frames come from, on the host side (no image decoding here).

- MQTT snapshots (:class:`MqttFrames`): the native topic ``edge/v1/cameras/<camera id>/snapshot``
  (payload: one JPEG) and, for a camera with ``source.frigate_camera``, Frigate's
  ``frigate/<camera>/<label>/snapshot``. One paho client of our own (QoS 0: a lost snapshot is
  replaced by the next); it also publishes the vision readings (QoS 1) back to the broker.
- HTTP polling (:class:`HttpPoller`): GET ``source.url`` every ``interval_s`` with httpx, basic
  auth from ``username``/``password``; the body is read up to ``max_image_bytes`` + 1.
- RTSP: read inside the worker process that owns the camera (gateway/vision/worker.py), via
  cv2.VideoCapture; any URL FFmpeg opens works, including a local video file (used by the tests:
  no RTSP server is needed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

if TYPE_CHECKING:
    import httpx

    from gateway.ingest.mqtt import BrokerConnection

log = logging.getLogger("gateway.vision")

NATIVE_PREFIX = "edge/v1/cameras/"
FrameSink = Callable[[str, bytes, str], None]  # (camera id, jpeg, topic/source)


def native_topic(camera_id: str) -> str:
    return f"{NATIVE_PREFIX}{camera_id}/snapshot"


def url_with_credentials(url: str, username: str | None, password: str | None) -> str:
    """Insert user:password into an rtsp URL at run time (never stored in the config)."""
    if not username:
        return url
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return url
    auth = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


class MqttFrames:
    """Subscribes to snapshot topics and publishes readings, with one paho client."""

    def __init__(
        self, settings: BrokerConnection, routes: dict[str, str], sink: FrameSink, client_suffix: str = "vision"
    ) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.routes = routes  # topic filter -> camera id
        self.sink = sink
        self.connected = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{settings.client_id}-{client_suffix}", clean_session=True
        )
        if settings.username:
            c.username_pw_set(settings.username, settings.password)
        if settings.ca_file or settings.cert_file:
            c.tls_set(ca_certs=settings.ca_file, certfile=settings.cert_file, keyfile=settings.key_file)
            if settings.tls_insecure:
                c.tls_insecure_set(True)
        c.max_queued_messages_set(1000)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self.connected.clear()
        c.on_message = self._on_message
        self.client = c
        self.host, self.port, self.keepalive = settings.host, settings.port, settings.keepalive_s

    # paho callbacks (VERSION2 signatures); the arguments are only passed through or tested loosely
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            return
        for flt in self.routes:
            client.subscribe(flt, qos=0)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        from paho.mqtt.client import topic_matches_sub

        for flt, cam in self.routes.items():
            if topic_matches_sub(flt, msg.topic):
                self.sink(cam, bytes(msg.payload), msg.topic)
                return

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, self.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class HttpPoller:
    """Polls one camera's snapshot URL on a thread."""

    def __init__(
        self,
        camera_id: str,
        url: str,
        interval_s: float,
        timeout_s: float,
        max_bytes: int,
        sink: FrameSink,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.camera_id, self.url, self.interval_s = camera_id, url, interval_s
        self.timeout_s, self.max_bytes, self.sink, self.auth = timeout_s, max_bytes, sink, auth
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-http-{camera_id}", daemon=True)

    def fetch(self, client: httpx.Client) -> bytes | None:
        with client.stream("GET", self.url) as r:
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}")
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    break  # the worker's size check dead-letters it; no need to read the rest
            return bytes(body)

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout_s, auth=self.auth, follow_redirects=False) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    data = self.fetch(client)
                    if data is not None:
                        self.sink(self.camera_id, data, f"http:{self.camera_id}")
                except Exception as exc:  # camera unreachable: the silence check reports it offline
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout_s + 1)
