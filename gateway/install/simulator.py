"""A simulated community: realistic MQTT traffic for every device of a site config.

``edge-gateway simulate --config PATH [--rate R] [--scenario NAME] [--duration S]``

- Every owned device reports in its ecosystem's real format (gateway/install/traffic.py): Zigbee2MQTT
  JSON state and availability, ChirpStack v4 uplinks with the parking sensor's byte frame,
  native JSON, and Frigate ``frigate/events`` for cameras (a Frigate driver is not part of this
  gateway yet: those messages show the format and load the broker, nothing subscribes to them).
- The devices keep a consistent state: a door opens and closes a few seconds later, a parking
  space stays occupied until the car leaves, a fire lane stays empty.
- Day/night: activity (doors, motion, access, cars) follows the simulated local time: busy mornings
  and evenings, quiet nights. Check-ins go round-robin, so every device reports within
  ``devices / (rate x 0.6)`` seconds (the first round is the "power on").
- Scenarios (gateway/install/scenarios.py) run at offsets; ``--scenario fall_night`` starts the simulated
  clock just before 03:00.
- Progress is printed every few seconds (``on_progress``); ``stats`` holds the counts.

Messages are published QoS 1 and counted when the broker acknowledged them. The first connection
must succeed within ``connect_timeout_s`` (and within the duration): otherwise ``run`` raises
:class:`~gateway.install.mqtt_reach.BrokerUnreachable` saying where and why (refused, timed out,
DNS, no CONNACK, login refused). Later drops reconnect on their own; ``--duration`` is kept then too.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_config.device_types import door_types, sim_event_weights
from gateway.install import traffic
from gateway.install.mqtt_reach import BrokerUnreachable, connect_within
from gateway.install.scenarios import Planned, plan
from gateway.install.traffic import SimDevice

if TYPE_CHECKING:
    from edge_config import SiteConfig

log = logging.getLogger("gateway.install.simulator")


def day_factor(hour: float) -> float:
    """Relative activity by local hour: peaks 7-9 and 17-20, quiet 0-6."""
    h = hour % 24
    if h < 6:
        return 0.1
    if h < 7:
        return 0.5
    if h < 9:
        return 1.6
    if h < 17:
        return 1.0
    if h < 20:
        return 1.5
    if h < 23:
        return 0.7
    return 0.25


@dataclass
class SimStats:
    started: float = 0.0
    published: int = 0
    acked: int = 0
    failed: int = 0
    by_format: Counter[str] = field(default_factory=Counter)
    devices_seen: set[str] = field(default_factory=set)
    scenarios_done: list[str] = field(default_factory=list)
    sim_time: str = ""

    def line(self) -> str:
        el = time.monotonic() - self.started
        rate = self.acked / el if el > 0 else 0.0
        fmts = " ".join(f"{k}={v}" for k, v in sorted(self.by_format.items()))
        done = ",".join(self.scenarios_done) or "-"
        return (
            f"[simulate {el:6.1f}s] local {self.sim_time} · {self.acked} acked ({rate:.1f}/s) · "
            f"{len(self.devices_seen)} devices · {fmts} · scenarios done: {done}"
        )


class Simulator:
    def __init__(
        self,
        cfg: SiteConfig,
        host: str,
        port: int,
        *,
        rate: float = 20.0,
        scenarios: list[str] | None = None,
        scenario_at: list[float] | None = None,
        seed: int = 8,
        start: dt.datetime | None = None,
        speed: float = 1.0,
        username: str | None = None,
        password: str | None = None,
        client_id: str = "edge-simulator",
        on_progress: Callable[[SimStats], None] | None = None,
        progress_every_s: float = 5.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.cfg = cfg
        self.host, self.port = host, port
        self.rate = max(0.5, float(rate))
        self.rng = random.Random(seed)
        self.devices = traffic.sim_devices(cfg)
        self.by_id = {d.id: d for d in self.devices}
        self.planned: list[Planned] = plan(cfg, list(scenarios or []), self.rng)
        gaps = scenario_at or [5.0 + 5.0 * i for i in range(len(self.planned))]
        if len(gaps) < len(self.planned):
            gaps = [*gaps, *(gaps[-1] + 5.0 * (i + 1) for i in range(len(self.planned) - len(gaps)))]
        self.scenario_at = gaps[: len(self.planned)]
        self.tz = ZoneInfo(cfg.gateway.timezone)
        if start is None:
            start = dt.datetime.now(self.tz)
            night = next((p for p in self.planned if p.sim_time), None)
            if night is not None and night.sim_time is not None:
                hh, mm = (int(x) for x in night.sim_time.split(":"))
                offset = self.scenario_at[self.planned.index(night)]
                start = start.replace(hour=hh, minute=mm, second=0, microsecond=0) - dt.timedelta(seconds=offset)
        self.sim_start = start
        self.speed = speed
        self.on_progress = on_progress
        self.progress_every_s = progress_every_s
        self.connect_timeout_s = connect_timeout_s
        self.error: BrokerUnreachable | None = None  # why a start()ed simulator never connected
        self._end: float | None = None  # monotonic end of run(duration)
        self.stats = SimStats()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pinned: dict[str, dict[str, Any]] = {}
        self._silenced: set[str] = set()
        # consistent device state
        self._closed: dict[str, bool] = {}  # door contacts: True = closed
        self._occupied: dict[str, bool] = {}  # parking spaces
        self._space_kind: dict[str, str] = {}
        for d in cfg.owned_devices():
            if d.type == "parking_sensor" and d.location.parking_space:
                found = cfg.parking_space(d.location.parking_space)
                kind = found[1].kind if found is not None else "normal"
                self._space_kind[d.id] = kind
                self._occupied[d.id] = kind == "normal" and self.rng.random() < 0.6
        weights = sim_event_weights()
        self._active = [d for d in self.devices if d.type in weights]
        self._active_w = list(itertools.accumulate(weights[d.type] for d in self._active))
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(200)
        self._client.max_queued_messages_set(0)
        self._client.on_publish = self._on_publish
        self._connected = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *a: self._connected.clear()
        self._thread: threading.Thread | None = None

    # --- time --------------------------------------------------------------------------------
    def sim_now(self) -> dt.datetime:
        return self.sim_start + dt.timedelta(seconds=(time.monotonic() - self.stats.started) * self.speed)

    # --- publishing ----------------------------------------------------------------------------
    def _on_publish(self, client: object, userdata: object, mid: int, reason: object, props: object) -> None:
        # Runs on paho's network thread, which may hold paho's own lock: only our counters here.
        with self._lock:
            if getattr(reason, "is_failure", False):
                self.stats.failed += 1
            else:
                self.stats.acked += 1

    def _on_connect(self, client: object, userdata: object, flags: object, reason: object, props: object) -> None:
        if not getattr(reason, "is_failure", False):  # a refused login is not a connection
            self._connected.set()

    def _over(self) -> bool:
        return self._stop.is_set() or (self._end is not None and time.monotonic() >= self._end)

    def publish(self, topic: str, payload: bytes, *, device: str | None = None, retain: bool = False) -> None:
        while not self._connected.wait(0.5):
            if self._over():  # stopped, or the duration ran out while the broker was away
                return
        # Never hold self._lock across client.publish(): the network thread may be in _on_publish
        # waiting for it while holding paho's lock (deadlock).
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            with self._lock:
                self.stats.failed += 1
        self.stats.published += 1
        self.stats.by_format[_format_of(topic)] += 1
        if device is not None:
            self.stats.devices_seen.add(device)

    @property
    def unacked(self) -> int:
        with self._lock:
            return self.stats.published - self.stats.acked - self.stats.failed

    # --- device behaviour ----------------------------------------------------------------------
    def checkin(self, dev: SimDevice) -> tuple[str, bytes]:
        """A device's periodic report of its current state."""
        pinned = self._pinned.get(dev.id)
        if pinned is not None:
            return traffic.device_state(dev, {**pinned}, self.rng)
        if dev.driver == "frigate":  # Frigate zone devices: an object in the zone now and then
            if dev.type == "parking_sensor":
                return traffic.frigate_zone_state(dev, self._occupied.get(dev.id, False), self.rng)
            return traffic.frigate_zone_state(dev, self.rng.random() < 0.1, self.rng)
        if dev.type in door_types():
            return traffic.state(
                dev,
                {
                    "contact": self._closed.get(dev.id, True),
                    "battery": self.rng.randint(40, 100),
                    "linkquality": self.rng.randint(30, 220),
                },
            )
        if dev.type == "parking_sensor":
            return traffic.state(dev, {"vehicle_present": self._occupied.get(dev.id, False)}, self.rng)
        if dev.type == "access_controller":
            return traffic.state(dev, {"contact": self._closed.get(dev.id, True), "tamper": False})
        if dev.type == "barrier_gate":
            return traffic.state(dev, {"gate_fault": False, "contact": True})
        if dev.type == "camera":
            return traffic.state(dev, {"presence": self.rng.random() < 0.3})
        return traffic.telemetry(dev, self.rng)

    def activity(self, dev: SimDevice, schedule: Callable[[float, SimDevice, Callable[[], None]], None]) -> None:
        """Something happens at a device (a door opens, a car arrives ...), in its own format."""
        if dev.id in self._pinned or dev.id in self._silenced:
            return
        t = dev.type
        if dev.driver == "frigate" and t != "parking_sensor":
            self.publish(*traffic.frigate_zone_state(dev, True, self.rng), device=dev.id)
            schedule(self.rng.uniform(3, 15), dev, lambda: self.publish(*self.checkin(dev), device=dev.id))
        elif t in door_types():
            self._closed[dev.id] = False
            self.publish(*self.checkin(dev), device=dev.id)

            def close() -> None:
                self._closed[dev.id] = True
                if dev.id not in self._pinned and dev.id not in self._silenced:
                    self.publish(*self.checkin(dev), device=dev.id)

            schedule(self.rng.uniform(2, 12), dev, close)
        elif t == "access_controller":
            if self.rng.random() < 0.03:
                self.publish(*traffic.event(dev, "access_denied"), device=dev.id)
            else:
                self.publish(*traffic.event(dev, "access_granted"), device=dev.id)
        elif t == "motion_sensor":
            self.publish(
                *traffic.state(dev, {"occupancy": True, "illuminance": self.rng.randint(0, 900)}), device=dev.id
            )
        elif t == "presence_sensor":
            self.publish(*traffic.state(dev, {"presence": self.rng.random() < 0.7}), device=dev.id)
        elif t == "parking_sensor":
            if self._space_kind.get(dev.id, "normal") != "normal":
                return  # fire lanes and no-parking spaces stay empty unless a scenario says otherwise
            self._occupied[dev.id] = not self._occupied.get(dev.id, False)
            self.publish(*self.checkin(dev), device=dev.id)
        elif t == "barrier_gate":
            self.publish(*traffic.state(dev, {"contact": False, "gate_fault": False}), device=dev.id)

            def lower() -> None:
                self.publish(*traffic.state(dev, {"contact": True, "gate_fault": False}), device=dev.id)

            schedule(self.rng.uniform(4, 8), dev, lower)
        elif t == "camera":
            label = "car" if self.rng.random() < 0.5 else "person"
            self.publish(*traffic.frigate_event(dev.address, label, self.rng, kind="new"))
            self.publish(*traffic.frigate_count(dev.address, label, self.rng.randint(1, 3)))

            def end() -> None:
                self.publish(*traffic.frigate_event(dev.address, label, self.rng, kind="end"))
                self.publish(*traffic.frigate_count(dev.address, label, 0))

            schedule(self.rng.uniform(3, 15), dev, end)

    # --- main loop -----------------------------------------------------------------------------
    def start(self, duration: float | None = None) -> Simulator:
        def run() -> None:
            try:
                self.run(duration)
            except BrokerUnreachable as exc:  # nobody to raise it to in this thread: keep and log it
                self.error = exc
                log.error("simulator stopped: %s", exc)

        self._thread = threading.Thread(target=run, name="simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, duration: float | None = None) -> SimStats:
        """Publish until stopped or ``duration`` seconds are over. Raises BrokerUnreachable when the
        first connection fails (within connect_timeout_s, and within the duration)."""
        self.stats.started = time.monotonic()
        self._end = self.stats.started + duration if duration else None
        timeout = min(self.connect_timeout_s, duration) if duration else self.connect_timeout_s
        connect_within(self._client, self.host, self.port, keepalive=30, timeout_s=timeout)
        try:
            self._loop(duration)
        finally:
            deadline = time.monotonic() + 10
            while self.unacked > 0 and self._connected.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)  # acks still in flight; not worth waiting for while disconnected
            self._client.disconnect()
            self._client.loop_stop()
            self._progress()
        return self.stats

    def _loop(self, duration: float | None) -> None:
        t0 = self.stats.started
        end = t0 + duration if duration else None
        timers: list[tuple[float, int, Callable[[], None]]] = []
        seq = itertools.count()

        def schedule(delay: float, dev: SimDevice, fn: Callable[[], None]) -> None:
            heapq.heappush(timers, (time.monotonic() + delay, next(seq), fn))

        steps: list[tuple[float, int, str, Any]] = []
        for p, at in zip(self.planned, self.scenario_at, strict=True):
            for st in p.steps:
                steps.append((t0 + at + st.at_s, next(seq), "step", st))
            steps.append((t0 + at + p.pin_at_s, next(seq), "pin", p))
            last = max((st.at_s for st in p.steps), default=0.0)
            steps.append((t0 + at + last + 0.01, next(seq), "done", p))
        heapq.heapify(steps)
        order = self.devices[:]
        self.rng.shuffle(order)
        rr = 0
        next_msg = t0
        next_progress = t0 + self.progress_every_s
        self._connected.wait(10)
        self.publish(*traffic.z2m_bridge_state(True), retain=True)
        while not self._stop.is_set():
            now = time.monotonic()
            if end is not None and now >= end:
                break
            while steps and steps[0][0] <= now:
                _, _, kind, obj = heapq.heappop(steps)
                if kind == "step":
                    self.publish(obj.topic, obj.payload)
                    log.debug("scenario step: %s", obj.note)
                elif kind == "done":
                    self.stats.scenarios_done.append(obj.name)
                else:
                    log.info("scenario %s: %s", obj.name, obj.title)
                    self._pinned.update(obj.pinned)
                    self._silenced.update(obj.silenced)
            while timers and timers[0][0] <= now:
                heapq.heappop(timers)[2]()
            if now >= next_msg:
                next_msg += 1.0 / self.rate
                if next_msg < now - 1.0:  # fell behind (slow broker): do not burst
                    next_msg = now
                hour = self.sim_now().hour + self.sim_now().minute / 60
                if self._active and self.rng.random() < min(0.9, 0.4 * day_factor(hour)):
                    dev = self.rng.choices(self._active, cum_weights=self._active_w)[0]
                    self.activity(dev, schedule)
                elif order:
                    dev = order[rr % len(order)]
                    rr += 1
                    if dev.id not in self._silenced:
                        self.publish(*self.checkin(dev), device=dev.id)
            if now >= next_progress:
                next_progress = now + self.progress_every_s
                self._progress()
            wake = min(
                next_msg,
                next_progress,
                steps[0][0] if steps else next_msg,
                timers[0][0] if timers else next_msg,
            )
            time.sleep(max(0.0, min(0.2, wake - time.monotonic())))

    def _progress(self) -> None:
        self.stats.sim_time = self.sim_now().strftime("%H:%M:%S")
        if self.on_progress is not None:
            self.on_progress(self.stats)


def _format_of(topic: str) -> str:
    if topic.startswith("frigate/"):
        return "frigate"
    if topic.startswith("application/"):
        return "chirpstack"
    if topic.startswith("edge/v1/"):
        return "native"
    return "zigbee2mqtt"


def print_progress(stats: SimStats) -> None:
    print(stats.line(), file=sys.stderr, flush=True)
