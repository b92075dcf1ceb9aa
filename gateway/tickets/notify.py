"""Notification: a durable outbox (``deliveries``) and the thread that empties it.

:func:`queue_notifications` runs inside the pipeline's transaction (the ticket processor's ``after``), so a
notification row commits together with the event it announces: a crash cannot lose one, and a
rolled-back event never notifies anyone. :class:`NotifySender` runs on its own thread with its own
read-only SQLite connection; every outcome (and, for webhooks, a ``notify_attempt`` event on the
incident timeline) is written back through :meth:`Pipeline.call`, so the writer thread stays the
only writer.

Channels: MQTT (QoS 1, ``<prefix>/incidents/<category>/<event>``) and HMAC-signed webhooks. The
live stream is the pipeline's listeners (BatchResult.incident_events), not this module.

Personal data: payloads carry ids and the location (grid, compound, building, unit; webhooks also
the flat number, which people on the ladder need to find the resident). Residents' names, phones
and care flags go only to webhooks marked ``elder_care: true``; every such release (and every
release of a flat number) is logged in ``personal_releases``. MQTT never carries resident ids.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core import incidents as inc
from gateway.core.backoff import backoff_s
from gateway.core.contract import IncidentEvent
from gateway.core.workers import ReaderThread
from gateway.tickets import lifecycle as lc

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from edge_config.ticket_settings import Webhook
    from gateway.core.contract import BatchResult

log = logging.getLogger("gateway.tickets.notify")

SCHEMA_VERSION = 1
SIGNATURE_HEADER = "X-Edge-Signature"
# Events that notify (the rules' repeats and the notifier's own attempts do not).
NOTIFY_KINDS = frozenset(
    {
        "dispatched",
        "state_changed",
        "escalated",
        "whistle",
        "renotified",
        "sla_missed",
        "escalation_held",
        "not_rated",
        "reported",
        "severity_changed",
        "dispatch_failed",
    }
)
_PRIVATE_KEYS = frozenset({"resident_id", "readings", "detail", "incident", "personal"})


# Any: whatever JSON-serialisable value is stored
def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def event_name(ev: IncidentEvent) -> str:
    if ev.kind == "state_changed":
        return str(ev.data.get("to", "state_changed"))
    return str(ev.kind)


def prefix(cfg: SiteConfig) -> str:
    return str(cfg.tickets.mqtt_prefix or f"edge/{cfg.gateway.id}")


def topic(cfg: SiteConfig, category: str, event: str) -> str:
    return f"{prefix(cfg)}/incidents/{category}/{event}"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """Signature header value: ``t=<unix ms>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def recipients_for(cfg: SiteConfig, ev: IncidentEvent, t: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    from gateway.tickets import assignment as dp

    data = ev.data
    kind = ev.kind
    if kind == "escalated":
        return [dict(r) for r in data.get("recipients", [])]
    if kind == "whistle":
        return [{"person": m, "role": dp.role_of(cfg, m)} for m in dp.team_members(cfg, data.get("team"))]
    if kind in ("dispatched", "renotified"):
        p = data.get("person")
        return [{"person": p, "role": dp.role_of(cfg, p)}] if p else []
    people: list[str] = []
    if t is not None:
        if t.get("assignee"):
            people.append(t["assignee"])
        people += [w for w in t.get("watchers", []) if w not in people]
    return [{"person": p, "role": dp.role_of(cfg, p)} for p in people]


def message(
    cfg: SiteConfig,
    ev: IncidentEvent,
    incident: Mapping[str, Any],
    t: Mapping[str, Any] | None,
    recipients: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The documented notification body (docs/tickets.md "Notification JSON"); no personal data."""
    return {
        "v": SCHEMA_VERSION,
        "gateway": cfg.gateway.id,
        "seq": ev.seq,
        "event": event_name(ev),
        "kind": ev.kind,
        "ts_ms": ev.ts_ms,
        "incident": {
            "id": incident["id"],
            "category": incident["category"],
            "type": incident["type"],
            "severity": incident["severity"],
            "state": incident["state"],
            "life_safety": bool(incident["life_safety"]),
            "location": {k: incident.get(k) for k in ("grid", "compound", "building", "unit", "space")},
        },
        "assignee": (
            {"person": t.get("assignee"), "team": t.get("team"), "role": t.get("assignee_role")}
            if t is not None and t.get("assignee")
            else None
        ),
        "recipients": [dict(r) for r in recipients],
        "actor": ev.actor,
        "role": ev.role,
        "data": {k: v for k, v in ev.data.items() if k not in _PRIVATE_KEYS},
    }


def _webhook_wants(wh: Webhook, msg: Mapping[str, Any]) -> bool:
    if wh.categories and msg["incident"]["category"] not in wh.categories:
        return False
    if wh.events and msg["event"] not in wh.events:
        return False
    return not wh.roles or any(r.get("role") in wh.roles for r in msg["recipients"])


def queue_notifications(conn: sqlite3.Connection, cfg: SiteConfig, events: Sequence[IncidentEvent], now_ms: int) -> int:
    """Write the deliveries for ``events`` (in the caller's transaction). Returns how many."""
    settings = cfg.tickets
    rows: list[tuple[Any, ...]] = []
    releases: list[tuple[Any, ...]] = []
    cache: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    for ev in events:
        if ev.kind not in NOTIFY_KINDS:
            continue
        iid = str(ev.incident_id)
        if iid not in cache:
            cache[iid] = (inc.get(conn, iid), lc.ticket(conn, iid))
        incident, t = cache[iid]
        if incident is None:
            continue
        recipients = recipients_for(cfg, ev, t)
        msg = message(cfg, ev, incident, t, recipients)
        name = msg["event"]
        if settings.mqtt:
            rows.append((now_ms, iid, ev.seq, name, "mqtt", topic(cfg, incident["category"], name), _dumps(msg)))
        if not settings.webhooks:
            continue
        resident = cfg.resident(incident["resident_id"]) if incident.get("resident_id") else None
        for wh in settings.webhooks:
            if not _webhook_wants(wh, msg):
                continue
            body = dict(msg)
            if resident is not None:
                body["incident"] = {
                    **msg["incident"],
                    "location": {**msg["incident"]["location"], "room": resident.room},
                }
                fields = ["room"]
                if wh.elder_care:
                    body["personal"] = {
                        "resident_id": resident.id,
                        "name": resident.name,
                        "phone": resident.phone,
                        "flags": list(resident.flags),
                    }
                    fields += ["resident_id", "name", "phone", "flags"]
                releases.append((now_ms, iid, resident.id, wh.name, None, "webhook", _dumps(fields)))
            rows.append((now_ms, iid, ev.seq, name, "webhook", wh.name, _dumps(body)))
    if rows:
        conn.executemany(
            "INSERT INTO deliveries(created_ms, incident_id, event_seq, event, channel, target, payload)"
            " VALUES (?,?,?,?,?,?,?)",
            rows,
        )
    if releases:
        conn.executemany(
            "INSERT INTO personal_releases(ts_ms, incident_id, resident_id, recipient, role, channel, fields)"
            " VALUES (?,?,?,?,?,?,?)",
            releases,
        )
    return len(rows)


Publisher = Callable[[str, bytes], None]  # raises on failure; returns once the broker acknowledged


def paho_publisher(get_client: Callable[[], Any], timeout_s: float = 5.0) -> Publisher:
    """Publish QoS 1 through a running paho client (thread-safe) and wait for the PUBACK."""

    def publish(topic_: str, payload: bytes) -> None:
        client = get_client()
        if client is None or not client.is_connected():
            raise ConnectionError("MQTT broker not connected")
        info = client.publish(topic_, payload, qos=1)
        if info.rc != 0:
            raise ConnectionError(f"publish refused (rc {info.rc})")
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise TimeoutError("no PUBACK within timeout")

    return publish


class NotifySender(ReaderThread):
    """Delivers pending ``deliveries`` rows; outcomes go back through ``call`` (Pipeline.call)."""

    thread_name = "ticket-notify"

    def __init__(
        self,
        db_path: str | Path,
        cfg: SiteConfig,
        *,
        call: Callable[[Callable[[sqlite3.Connection, BatchResult, int], Any]], Future[Any]],
        publish: Publisher | None = None,
        incidents: inc.IncidentStore | None = None,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(db_path)
        self.cfg = cfg
        self.settings = cfg.tickets
        self.call = call
        self.publish = publish
        self.incidents = incidents or inc.IncidentStore(cfg.gateway.id)
        self.clock = clock
        self.rng = rng
        self.sent = 0
        self.failed_attempts = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.run_once()
            except Exception:
                log.exception("notification sender failed; retrying")
                n = 0
            if n == 0:
                self._wake.wait(self._idle_s())
                self._wake.clear()

    def _channels(self) -> tuple[str, ...]:
        return ("mqtt", "webhook") if self.publish is not None else ("webhook",)

    def _idle_s(self) -> float:
        try:
            ch = self._channels()
            row = (
                self._read()
                .execute(
                    "SELECT min(next_ms) FROM deliveries WHERE status='pending'"
                    f" AND channel IN ({','.join('?' * len(ch))})",
                    ch,
                )
                .fetchone()
            )
        except sqlite3.Error:
            return 1.0
        if row is None or row[0] is None:
            return 1.0
        return max(0.01, min(1.0, (int(row[0]) - self.clock()) / 1000))

    def run_once(self) -> int:
        """Attempt every due delivery once; returns how many were attempted."""
        ch = self._channels()
        rows = (
            self._read()
            .execute(
                "SELECT id, incident_id, event, channel, target, payload, attempts FROM deliveries"
                f" WHERE status='pending' AND next_ms <= ? AND channel IN ({','.join('?' * len(ch))})"
                " ORDER BY id LIMIT 50",
                (self.clock(), *ch),
            )
            .fetchall()
        )
        for did, iid, event, channel, target, payload, attempts in rows:
            if self._stop.is_set():
                break
            ok, status, error = self._attempt(did, event, channel, target, payload.encode())
            self._record(did, iid, channel, target, attempts + 1, ok, status, error)
        return len(rows)

    def _attempt(self, did: int, event: str, channel: str, target: str, body: bytes) -> tuple[bool, int | None, str]:
        if channel == "mqtt":
            assert self.publish is not None
            try:
                self.publish(target, body)
                return True, None, ""
            except Exception as exc:
                return False, None, f"{type(exc).__name__}: {exc}"[:200]
        wh = next((w for w in self.settings.webhooks if w.name == target), None)
        if wh is None:
            return False, None, "webhook no longer configured"
        ts = str(self.clock())
        req = urllib.request.Request(
            wh.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "edge-gateway-tickets/1",
                "X-Edge-Delivery": str(did),
                "X-Edge-Event": event,
                "X-Edge-Timestamp": ts,
                SIGNATURE_HEADER: sign(wh.secret.get_secret_value().encode(), ts, body),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.settings.webhook_timeout_s) as resp:
                code = int(resp.status)
            return 200 <= code < 300, code, "" if 200 <= code < 300 else f"HTTP {code}"
        except urllib.error.HTTPError as exc:
            return False, int(exc.code), f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:200]

    def _record(
        self,
        did: int,
        incident_id: str,
        channel: str,
        target: str,
        attempt: int,
        ok: bool,
        status: int | None,
        error: str,
    ) -> None:
        s = self.settings
        dead = not ok and (attempt >= s.max_attempts or error == "webhook no longer configured")
        delay = 0.0 if ok or dead else backoff_s(attempt, s.retry_min_s, s.retry_max_s, self.rng())
        now_wall = self.clock()
        next_ms = now_wall + int(delay * 1000)
        state = "sent" if ok else ("dead" if dead else "pending")
        if ok:
            self.sent += 1
        else:
            self.failed_attempts += 1

        def write(c: sqlite3.Connection, r: BatchResult, now: int) -> None:
            c.execute(
                "UPDATE deliveries SET attempts=?, status=?, next_ms=?, last_error=?, done_ms=? WHERE id=?",
                (attempt, state, next_ms, error or None, now if state != "pending" else None, did),
            )
            if channel == "webhook":
                data: dict[str, Any] = {
                    "delivery": did,
                    "webhook": target,
                    "attempt": attempt,
                    "ok": ok,
                    "status": status,
                }
                if error:
                    data["error"] = error
                if state == "pending":
                    data["retry_in_s"] = round(delay, 3)
                if dead:
                    data["gave_up"] = True
                self.incidents.append_event(c, r, incident_id, "notify_attempt", now, data, actor="notify")

        try:
            self.call(write).result(timeout=30)
        except Exception as exc:  # not recorded: the row stays pending and is tried again
            log.error("could not record delivery %s: %s", did, exc)
