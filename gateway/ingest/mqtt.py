"""MQTT sessions: receive QoS 1 messages and acknowledge them only after the store committed them.

How the pieces interact (threads, not asyncio, on purpose):
- Each session is a paho-mqtt 2 client with ``manual_ack`` on, a stable client id and
  ``clean_session=False``: the broker queues messages for us while we are away.
- paho's own network thread (``loop_start``) receives messages and calls ``_on_message``, which
  only appends an :class:`Inbound` to the pipeline's queue: no decoding, no I/O.
- The pipeline thread (gateway/ingest/pipeline.py) decodes, commits a batch with one fsync, then calls
  :meth:`MqttSession.ack` for each message of the batch. paho queues the PUBACK and wakes its
  network thread; the broker then forgets the message.
- aiomqtt is not used for ingest: it acknowledges before user code sees a message (so a crash
  would lose it) and costs about twice paho's CPU per message.
- The asyncio event loop (API, timers) never touches the client; it is told about committed
  changes by the pipeline through ``loop.call_soon_threadsafe``.

Acknowledgement safety: a packet id is only meaningful on the connection it arrived on. Every
connect and disconnect bumps ``generation``; an ack for a message from an older generation is
dropped (the broker redelivers it with DUP set and the pipeline recognises it as already stored).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_config import SiteConfig
from gateway.core.backoff import backoff_s
from gateway.core.threadprio import yield_to_life_safety
from gateway.errors import ConfigProblem

log = logging.getLogger("gateway.mqtt")

TELEMETRY = 0
LIFE_SAFETY = 1
SESSION_NAMES = {TELEMETRY: "telemetry", LIFE_SAFETY: "safety"}

SYS_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"


class MqttConfigRefused(ConfigProblem):
    """The MQTT settings are unsafe or unusable; the message says why and how to fix it."""

    code = "mqtt_config_refused"


@dataclass(slots=True)
class Inbound:
    session: int
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    retain: bool
    dup: bool
    rx_ms: int
    rx_mono_ns: int


@dataclass
class BrokerConnection:
    host: str
    port: int
    client_id: str  # base id; each session appends its name
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    allow_plaintext_remote: bool = False
    status_topic: str = "edge/gateway/status"
    gateway_id: str = "gateway"
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0

    @property
    def tls(self) -> bool:
        return self.ca_file is not None or self.cert_file is not None

    def apply_to(self, client: paho.Client) -> None:
        """Credentials and TLS on a paho client (the gateway's sessions and the doctor's probes)."""
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            if self.tls_insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            client.tls_set_context(ctx)

    def check_transport(self) -> None:
        """Refuse plain text to a non-loopback broker unless the config says so explicitly."""
        if self.tls or self.allow_plaintext_remote or _is_loopback(self.host):
            return
        raise MqttConfigRefused(
            f"refusing a plain-text MQTT connection to {self.host}: credentials and residents' alarms "
            "would cross the network unencrypted. Configure mqtt.tls (ca_file, and cert_file/key_file "
            "for client certificates), or set mqtt.allow_plaintext_remote: true if the broker is on a "
            "private network you trust (e.g. a compose network)."
        )


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def backoff_delay(attempt: int, lo: float, hi: float) -> float:
    """Reconnect delay: the gateway's one backoff (gateway/core/backoff.py); ``attempt`` counts from 0."""
    return backoff_s(attempt + 1, lo, hi)


class MqttSession:
    """One persistent MQTT session feeding the pipeline."""

    def __init__(
        self,
        session: int,
        settings: BrokerConnection,
        filters: list[str],
        sink: Callable[[Inbound], None],
        *,
        sys_sink: Callable[[str, bytes], None] | None = None,
        owns_status: bool = False,
    ) -> None:
        self.session = session
        self.name = SESSION_NAMES[session]
        self.settings = settings
        self.filters = list(dict.fromkeys(filters))
        self._sink = sink
        self._sys_sink = sys_sink
        self._owns_status = owns_status
        self._lock = threading.Lock()
        self.generation = 0
        self.connected = False
        # True once the broker granted this connection's subscriptions: from then on messages flow
        # (readiness; bench/pi_budget.py times start-up to it).
        self.subscribed = False
        self.connects = 0
        self.last_error: str | None = None
        self._attempt = 0
        self._stopping = False
        self.client = self._make_client()

    # --- set-up ----------------------------------------------------------------------------------
    @property
    def client_id(self) -> str:
        return f"{self.settings.client_id}-{self.name}"

    @property
    def status_topic(self) -> str:
        base = self.settings.status_topic
        return base if self._owns_status else f"{base}/{self.name}"

    def _status_payload(self, state: str) -> bytes:
        return json.dumps(
            {"state": state, "gateway": self.settings.gateway_id, "session": self.name}, separators=(",", ":")
        ).encode()

    def _make_client(self) -> paho.Client:
        s = self.settings
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=paho.MQTTv311,
            reconnect_on_failure=True,
            manual_ack=True,
        )
        s.apply_to(c)
        # Outgoing queue for our own status publishes only; inbound flow is the broker's setting.
        c.max_queued_messages_set(1000)
        c.will_set(self.status_topic, self._status_payload("offline"), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        self._schedule_backoff(c)
        return c

    def _schedule_backoff(self, client: paho.Client | None = None) -> None:
        # paho's own reconnect doubles its delay without jitter; we hand it a jittered delay as
        # both min and max before every wait, so a fleet of gateways does not reconnect in step.
        d = backoff_delay(self._attempt, self.settings.backoff_min_s, self.settings.backoff_max_s)
        (client or self.client).reconnect_delay_set(min_delay=d, max_delay=d)  # type: ignore[arg-type]
        self._attempt += 1

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.settings.check_transport()
        try:
            self.client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive_s)
        except (OSError, ValueError) as exc:
            self.last_error = str(exc)
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        try:
            if self.connected:
                info = self.client.publish(self.status_topic, self._status_payload("offline"), qos=1, retain=True)
                info.wait_for_publish(timeout=2)
            self.client.disconnect()
        except (OSError, RuntimeError, ValueError) as exc:
            log.debug("stop: %s", exc)
        self.client.loop_stop()

    # --- callbacks (paho network thread) ---------------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"broker refused the connection: {reason}"
            log.error("mqtt %s: %s", self.name, self.last_error)
            self._schedule_backoff()
            return
        if self.session == TELEMETRY:
            # This is paho's network thread: bulk telemetry yields the CPU to the life-safety
            # session and the pipeline (gateway/core/threadprio.py); once per thread is enough.
            yield_to_life_safety()
        with self._lock:
            self.generation += 1
            self.connected = True
        self.connects += 1
        self._attempt = 0
        self._schedule_backoff()
        self.last_error = None
        session_present = getattr(flags, "session_present", None)
        log.info(
            "mqtt %s connected to %s:%s (session present: %s)",
            self.name,
            self.settings.host,
            self.settings.port,
            session_present,
        )
        # Resubscribe every time: a broker that lost its state (no persistence) has no session.
        subs = [(f, 1) for f in self.filters]
        if self._sys_sink is not None:
            subs.append((SYS_DROPPED_TOPIC, 0))
        if subs:
            client.subscribe(subs)
        client.publish(self.status_topic, self._status_payload("online"), qos=1, retain=True)

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, reasons: list, props: object) -> None:
        bad = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        self.subscribed = not bad
        if bad:
            self.last_error = f"subscription refused by the broker (check its ACL): {', '.join(bad)}"
            log.error("mqtt %s: %s", self.name, self.last_error)

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        with self._lock:
            self.generation += 1
            was_connected, self.connected = self.connected, False
            self.subscribed = False
        if not self._stopping:
            if was_connected:  # keep a refusal's own message (bad credentials, ACL) when it failed
                self.last_error = f"disconnected: {reason}"
            log.warning("mqtt %s disconnected (%s); reconnecting with backoff", self.name, reason)
            self._schedule_backoff()

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        self.last_error = f"cannot reach broker {self.settings.host}:{self.settings.port}"
        self._schedule_backoff()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        topic = msg.topic
        if topic.startswith("$SYS/"):
            if self._sys_sink is not None:
                self._sys_sink(topic, bytes(msg.payload))
            return
        self._sink(
            Inbound(
                self.session,
                self.generation,
                msg.mid,
                msg.qos,
                topic,
                bytes(msg.payload),
                bool(msg.retain),
                bool(msg.dup),
                time.time_ns() // 1_000_000,
                time.monotonic_ns(),
            )
        )

    # --- called from the pipeline thread ---------------------------------------------------------
    def ack(self, item: Inbound) -> bool:
        """Acknowledge a committed message. False when its connection is gone (broker redelivers)."""
        if item.qos == 0:
            return True
        with self._lock:
            if not self.connected or item.generation != self.generation:
                return False
            self.client.ack(item.mid, item.qos)
        return True

    def ack_many(self, items: list[Inbound]) -> int:
        n = 0
        with self._lock:
            gen, up = self.generation, self.connected
            ack = self.client.ack
            for item in items:
                if item.qos == 0:
                    n += 1
                elif up and item.generation == gen:
                    ack(item.mid, item.qos)
                    n += 1
        return n


def probe_broker(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when something accepts TCP connections at host:port (used by readiness and doctor)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def connection_from_config(cfg: SiteConfig) -> BrokerConnection:
    """The broker connection described by the site file's ``mqtt`` section (secrets resolved)."""
    m = cfg.mqtt
    tls = m.tls
    password = m.password.get_secret_value() if m.password is not None else None
    return BrokerConnection(
        host=m.host,
        port=m.port,
        client_id=m.client_id or f"edge-{cfg.gateway.id}",
        keepalive_s=m.keepalive_s,
        username=m.username,
        password=password,
        ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
        cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
        key_file=str(tls.key_file) if tls and tls.key_file else None,
        tls_insecure=bool(tls.insecure_skip_verify) if tls else False,
        allow_plaintext_remote=m.allow_plaintext_remote,
        status_topic=m.status_topic or f"edge/{cfg.gateway.id}/status",
        gateway_id=cfg.gateway.id,
    )
