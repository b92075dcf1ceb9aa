"""Messages the broker threw away: counted, recorded and raised as one device-health incident.

Mosquitto publishes ``$SYS/broker/publish/messages/dropped`` (the telemetry session subscribes to
it, gateway/ingest/mqtt.py): how many messages it dropped since it started (the queue of an
offline persistent client full at ``max_queued_messages``, ...). The gateway cannot get those
messages back; what it can do is make the loss impossible to miss.

Each increase is written in ONE transaction on the pipeline thread: the last total seen (meta
``broker_dropped_seen``, so a restart of the gateway does not count the same drops again), the
counter ``broker_dropped_messages``, a ``broker_dropped`` gateway event and the incident
``broker_dropped_messages`` (device_health, major; one open incident, repeated by later drops).
The open incident is also the "not yet dealt with" flag: /readyz reports the gateway degraded
until a person closes it (docs/api.md).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from gateway.core import incidents as inc
from gateway.core.contract import BatchResult

if TYPE_CHECKING:
    from gateway.ingest.pipeline import Pipeline

log = logging.getLogger("gateway.ingest.broker_drops")

INCIDENT_TYPE = "broker_dropped_messages"
INCIDENT_KEY = "gateway|broker_dropped_messages"  # one per gateway: the broker is site-wide
COUNTER = "broker_dropped_messages"
SEEN_META = "broker_dropped_seen"
EVENT_KIND = "broker_dropped"


def parse_total(payload: bytes) -> int | None:
    """The broker's running total, or None for anything that is not a count."""
    try:
        value = int(payload.decode().strip())
    except (UnicodeDecodeError, ValueError):
        return None
    return value if value >= 0 else None


class BrokerDropWatch:
    """Receives the broker's drop total (paho network thread) and records increases (pipeline thread)."""

    def __init__(self, pipeline: Pipeline, gateway_id: str, broker: str) -> None:
        self.pipeline = pipeline
        self.gateway_id = gateway_id
        self.broker = broker  # host:port, for the people reading the incident
        # The last total handed to the pipeline, only to skip the broker's unchanged repeats; the
        # store's meta row decides what is new, so a stale value here never counts anything twice.
        self._last: int | None = None

    def on_sys(self, topic: str, payload: bytes) -> None:
        total = parse_total(payload)
        if total is None or total == self._last:
            return  # the broker repeats the same total every sys_interval: nothing to write
        self._last = total
        fut = self.pipeline.call(lambda c, r, now: self.record(c, r, now, total, topic))
        fut.add_done_callback(self._logged)

    def record(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int, total: int, topic: str) -> int:
        """Write an increase of the broker's total; returns how many messages are newly dropped."""
        row = conn.execute("SELECT value FROM meta WHERE key=?", (SEEN_META,)).fetchone()
        seen = int(row[0]) if row is not None else 0
        if total == seen:
            return 0
        # A total lower than the one seen means the broker restarted: all of it is new.
        new = total - seen if total > seen else total
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (SEEN_META, str(total)),
        )
        if new == 0:
            return 0
        conn.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
            (COUNTER, new),
        )
        detail = {"dropped": new, "total": total, "topic": topic, "broker": self.broker}
        conn.execute(
            "INSERT INTO gateway_events(ts_ms, kind, severity, detail, config_rev) VALUES (?,?,?,?,?)",
            (now_ms, EVENT_KIND, "major", json.dumps(detail), self.pipeline.config_rev),
        )
        result.notices.append({"type": "gateway_event", "kind": EVENT_KIND, "severity": "major", "detail": detail})
        self._raise(conn, result, now_ms, new, topic)
        return new

    def _raise(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int, new: int, topic: str) -> None:
        store = inc.IncidentStore(self.gateway_id, self.pipeline.config_rev)
        trig = inc.Trigger(
            key=INCIDENT_KEY,
            category="device_health",
            type=INCIDENT_TYPE,
            severity="major",
            ts_ms=now_ms,
            detail={"dropped": new, "broker": self.broker, "topic": topic},
            life_safety=False,
        )
        raised = store.raise_or_repeat(conn, result, trig, now_ms)
        if not raised.created:
            # A repeat: the detail keeps the total since the incident opened (what was lost while
            # nobody had dealt with it yet); each drop is also its own gateway event.
            (text,) = conn.execute("SELECT detail FROM incidents WHERE id=?", (raised.incident_id,)).fetchone()
            detail = json.loads(text)
            detail["dropped"] = int(detail.get("dropped", 0)) + new
            conn.execute("UPDATE incidents SET detail=? WHERE id=?", (json.dumps(detail), raised.incident_id))

    def _logged(self, fut: Future[int]) -> None:
        exc = fut.exception()
        if exc is not None:
            log.error("could not record the broker's dropped messages (retried on its next report): %s", exc)
            self._last = None
            return
        new = fut.result()
        if new:
            log.error(
                "the broker %s dropped %d messages (its queue limits; see deploy/mosquitto.conf); incident %s",
                self.broker,
                new,
                INCIDENT_TYPE,
            )


def drop_status(conn: sqlite3.Connection) -> dict[str, Any]:
    """What /readyz, /metrics and `edge-gateway status` show: the total the gateway counted and
    the open incident (None once a person closed it) with what it lost since it opened."""
    row = conn.execute("SELECT value FROM counters WHERE name=?", (COUNTER,)).fetchone()
    total = int(row[0]) if row is not None else 0
    open_row = conn.execute("SELECT id, detail FROM incidents WHERE open_key=?", (INCIDENT_KEY,)).fetchone()
    since = int(json.loads(open_row[1]).get("dropped", 0)) if open_row is not None else None
    return {
        "dropped_total": total,
        "open_incident": open_row[0] if open_row is not None else None,
        "dropped_since_open": since,
    }
