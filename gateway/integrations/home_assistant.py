"""Home Assistant MQTT discovery: publishes the configs and states of gateway/integrations/ha_entities.py.

Its own MQTT client (client id ``<mqtt client id>-ha``, clean session) and its own thread with a
read-only store connection: the pipeline thread only sets an event when a commit changed incidents
(:meth:`HomeAssistantPublisher.wake`), and the event loop is never involved.

- Configs are published retained, then every state, on every (re)connect and whenever Home
  Assistant's birth message (``online`` on its status topic) says it restarted.
- The client subscribes to this node's config topics and the state prefix: any retained config or
  state that is not in the current plan (a building removed, an incident type dropped, an earlier
  node) is cleared with an empty retained payload, so Home Assistant removes the entity.
- ``remove=True`` (the section present with ``enabled: false``): the same sweep with an empty plan,
  until a few seconds pass without a retained message left to clear; then it disconnects.
- A graceful stop says ``offline`` on the publisher's availability topic (its last will says the
  same when the connection dies); ``stop(remove=True)`` clears everything it published instead.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from gateway.core import store as st
from gateway.integrations.ha_entities import Plan, health_state, incident_states, make_plan

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from edge_config.integration_settings import HomeAssistantSettings
    from gateway.ingest.mqtt import BrokerConnection

log = logging.getLogger("gateway.integrations.home_assistant")

REMOVE_QUIET_S = 3.0  # remove mode: this long without a retained message left to clear, then done
OPEN_INCIDENTS = "SELECT type, building, compound FROM incidents WHERE open_key IS NOT NULL"


class HomeAssistantPublisher:
    def __init__(
        self,
        cfg: SiteConfig,
        ha: HomeAssistantSettings,
        settings: BrokerConnection,
        store_path: Path,
        health: Callable[[], Mapping[str, Any]],
    ) -> None:
        self.cfg, self.ha = cfg, ha
        self.remove = not ha.enabled
        self._gateway_status = settings.status_topic
        self.plan: Plan = make_plan(cfg, ha, settings.status_topic)
        self.store_path = store_path
        self._health = health
        self._lock = threading.Lock()
        self._retained: set[str] = set()  # our configs/states the broker holds (seen on subscribe)
        self._sent: dict[str, bytes] = {}  # state topic -> payload last published
        self._wake = threading.Event()
        self._republish = threading.Event()
        self._stopping = threading.Event()
        self._subscribed_mono = 0.0
        self._last_retained_mono = 0.0
        self._next_health = 0.0
        self.connected = False
        self.done = threading.Event()  # remove mode finished
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{settings.client_id}-ha",
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        settings.apply_to(c)
        if not self.remove:
            c.will_set(self.plan.availability_topic, b"offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        self.client = c
        self._host, self._port, self._keepalive = settings.host, settings.port, settings.keepalive_s
        self._thread = threading.Thread(target=self._run, name="home-assistant", daemon=True)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> HomeAssistantPublisher:
        self.client.connect_async(self._host, self._port, self._keepalive)
        self.client.loop_start()
        self._thread.start()
        return self

    def stop(self, *, remove: bool = False, timeout: float = 5.0) -> None:
        """Stop; ``remove`` clears every config and state of the plan first (feature turned off)."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        if self.connected and not self.remove:
            if remove:
                topics = [e.config_topic for e in self.plan.entities]
                topics += [*self.plan.incident_topics.values(), self.plan.health_topic, self.plan.availability_topic]
                last = None
                for t in topics:
                    last = self.client.publish(t, b"", qos=1, retain=True)
                if last is not None:
                    last.wait_for_publish(timeout)
                log.info("home assistant: %d entities removed", len(self.plan.entities))
            else:
                self.client.publish(self.plan.availability_topic, b"offline", qos=1, retain=True).wait_for_publish(
                    timeout
                )
        self.client.disconnect()
        self.client.loop_stop()

    def wake(self) -> None:
        """A commit changed incidents (pipeline thread: only sets an event)."""
        self._wake.set()

    def reconfigure(self, cfg: SiteConfig, ha: HomeAssistantSettings) -> None:
        """A reload with the same node and topics: new entities are published, dropped ones cleared."""
        with self._lock:
            self.cfg, self.ha = cfg, ha
            self.plan = make_plan(cfg, ha, self._gateway_status)
        self._republish.set()
        self._wake.set()

    # --- paho network thread -----------------------------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("home assistant: the broker refused the connection: %s", reason)
            return
        self.connected = True
        plan = self.plan
        client.subscribe([(plan.status_topic, 1), (plan.config_filter, 1), (f"{plan.state_prefix}/#", 1)])
        if not self.remove:
            client.publish(plan.availability_topic, b"online", qos=1, retain=True)
        self._republish.set()
        self._wake.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self.connected = False

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, reasons: list, props: object) -> None:
        self._subscribed_mono = self._last_retained_mono = time.monotonic()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        plan = self.plan
        if msg.topic == plan.status_topic:
            if msg.payload == b"online":  # Home Assistant (re)started: it needs every config again
                self._republish.set()
                self._wake.set()
            return
        with self._lock:
            if msg.payload:
                self._retained.add(msg.topic)
                self._last_retained_mono = time.monotonic()
            else:
                self._retained.discard(msg.topic)
        self._wake.set()

    # --- the publisher's thread --------------------------------------------------------------------
    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stopping.is_set():
            if not self.connected:  # on_connect wakes us
                self._wake.wait(5.0)
                self._wake.clear()
                continue
            # woken by a commit with incident changes, a (re)connect, a birth message, a retained
            # message to clear; else at the next health update (remove mode: to see it is done)
            self._wake.wait(0.5 if self.remove else max(0.0, self._next_health - time.monotonic()))
            self._wake.clear()
            if not self.connected or self._stopping.is_set():
                continue
            try:
                if self.remove:
                    if self._sweep(set()) == 0 and self._removal_done():
                        break
                    continue
                if conn is None:
                    conn = st.connect(self.store_path, readonly=True)
                self._publish(conn)
            except (sqlite3.Error, OSError, ValueError, RuntimeError) as exc:
                log.warning("home assistant: publishing failed, retrying: %s", exc)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(1.0)
        if conn is not None:
            conn.close()
        if self.remove and not self._stopping.is_set():
            log.info("home assistant: nothing of this gateway's is left in Home Assistant")
            self.client.disconnect()
            self.done.set()

    def _removal_done(self) -> bool:
        now = time.monotonic()
        return self._subscribed_mono > 0 and now - self._last_retained_mono >= REMOVE_QUIET_S

    def _sweep(self, keep: set[str]) -> int:
        """Clear every retained config/state of ours that the plan no longer has; how many."""
        with self._lock:
            stale = [t for t in self._retained if t not in keep]
            self._retained.difference_update(stale)
        for t in stale:
            self.client.publish(t, b"", qos=1, retain=True)
        return len(stale)

    def _publish(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            plan, cfg = self.plan, self.cfg
        if self._republish.is_set():
            self._republish.clear()
            for e in plan.entities:
                self.client.publish(e.config_topic, e.payload(), qos=1, retain=True)
            self._sent.clear()  # every state again, after the configs
            self._next_health = 0.0
            log.info("home assistant: %d entities published under node %s", len(plan.entities), plan.node_id)
        keep = {e.config_topic for e in plan.entities}
        keep.update(plan.incident_topics.values(), (plan.health_topic, plan.availability_topic))
        self._sweep(keep)
        states = incident_states(plan, cfg, conn.execute(OPEN_INCIDENTS).fetchall())
        for topic, state in states.items():
            payload = state.encode()
            if self._sent.get(topic) != payload:
                self.client.publish(topic, payload, qos=1, retain=True)
                self._sent[topic] = payload
        if time.monotonic() >= self._next_health:
            self._next_health = time.monotonic() + self.ha.health_interval_s
            self.client.publish(plan.health_topic, self._health_payload(conn, cfg), qos=1, retain=True)

    def _health_payload(self, conn: sqlite3.Connection, cfg: SiteConfig) -> bytes:
        backlog = 0
        if cfg.sync.enabled:
            try:
                from cloud_sync.status import sync_status
            except ImportError:  # a gateway installed without the sync: nothing waits for it
                pass
            else:
                backlog = int(sync_status(conn).get("backlog_points") or 0)
        quota = max(0, cfg.store.quota_mb - cfg.store.reserve_mb) * 1024 * 1024
        return health_state(bool(self._health().get("broker_connected")), backlog, st.used_bytes(conn), quota)
