"""Incidents and their append-only event log (the timeline and the feed).

All functions take the caller's ``sqlite3.Connection`` and run inside the caller's transaction
(the pipeline thread's): they never BEGIN or COMMIT.

One open incident per key. ``incidents.open_key`` is set while the incident is open and NULL once
it reaches a closed state; a partial UNIQUE index on it makes the store, not this module's memory,
enforce "one open incident per key". :meth:`IncidentStore.raise_or_repeat` looks the key up, and
when it is not open inserts; should a concurrent writer win the race the INSERT fails on the
index and the trigger becomes a repeat of the winner's incident.

Every change appends a row to ``incident_events`` (``seq`` AUTOINCREMENT: monotonic, never reused,
assigned in commit order because the store has a single writer) and the same event as a dict to
``BatchResult.incident_events`` so later processors (cloud outbox) and listeners (API stream) see
it. Repeats write a ``repeated`` event too (one small INSERT; the feed then shows every change).

Event kinds written here: ``created``, ``repeated``, ``severity_changed``, ``auto_cleared``,
``devices_added``, ``state_changed``. The ticket loop adds its own kinds on the same table
through :meth:`IncidentStore.append_event` / :meth:`IncidentStore.transition`.

Personal data: residents are referenced by ``resident_id`` only, never copied into text.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.core import compactjson
from gateway.core.contract import BatchResult, EventKind, IncidentEvent

# States in which an incident holds its open key (all but ``new`` are the ticket loop's).
OPEN_STATES: frozenset[str] = frozenset({"new", "dispatched", "accepted", "in_progress", "reopened"})
# Terminal for the open-key rule: a new trigger after these opens a new, linked incident.
CLOSED_STATES: frozenset[str] = frozenset({"resolved", "evaluated", "closed", "cancelled", "false_alarm"})
SEVERITIES: tuple[str, ...] = ("critical", "major", "minor", "warning")  # most severe first
CATEGORIES: tuple[str, ...] = ("parking", "security", "eldercare", "device_health")
# Never closed without a person: auto-clear is only recorded on these.
LIFE_SAFETY_TYPES: frozenset[str] = frozenset({"sos", "fall", "smoke", "gas"})
MAX_READINGS = 5  # causing readings kept on an incident (the newest)
RULES_ACTOR = "rules"


def is_open(state: str) -> bool:
    return state in OPEN_STATES


class KeyChanges:
    """Process-wide record of open-key changes, kept by every :class:`IncidentStore` (any
    instance, any connection) *before* it writes: ``opened`` counts incidents taking their key
    (created, re-opened; the newest keys are in ``recent``), ``released`` counts those letting it
    go (a closed state). The rule engine's "known not open" cache is exact because of them
    (``RuleEngine._not_open``)."""

    opened: ClassVar[int] = 0
    released: ClassVar[int] = 0
    recent: ClassVar[deque[tuple[int, str]]] = deque(maxlen=256)  # (value of ``opened``, key)

    @classmethod
    def open(cls, key: str) -> None:
        cls.opened += 1
        cls.recent.append((cls.opened, key))


def severity_rank(sev: str) -> int:
    """0 = critical ... 3 = warning."""
    return SEVERITIES.index(sev)


@dataclass(frozen=True, slots=True)
class Location:
    grid: str | None = None
    compound: str | None = None
    building: str | None = None
    unit: str | None = None
    space: str | None = None


@dataclass(slots=True)
class Trigger:
    """One rule firing: what :meth:`IncidentStore.raise_or_repeat` needs."""

    key: str  # the open key: '<device>|<type>' or a group key
    category: str
    type: str
    severity: str
    ts_ms: int  # rule time of the trigger
    devices: Sequence[str] = ()
    location: Location = field(default_factory=Location)
    resident_id: str | None = None
    reading: Mapping[str, Any] | None = None  # {"device", "ts_ms", "kind", "values"}
    detail: Mapping[str, Any] = field(default_factory=dict)
    life_safety: bool | None = None  # None = from LIFE_SAFETY_TYPES


@dataclass(frozen=True, slots=True)
class Raised:
    incident_id: str
    created: bool
    count: int


# Any: whatever JSON-serialisable value is stored
_dumps = compactjson.dumps  # the text json.dumps(separators=(",", ":"), ensure_ascii=False, default=str) gives


_COLS = (
    "id, created_seq, category, type, severity, state, key, open_key, life_safety, grid, compound, building, unit,"
    " space, devices, first_ms, last_ms, count, readings, detail, previous_id, auto_cleared_ms, cleared_reason,"
    " resident_id, config_rev, created_ms, updated_ms"
)
_NAMES = tuple(c.strip() for c in _COLS.split(","))
_JSON_COLS = frozenset({"devices", "readings", "detail"})


def row_to_dict(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(_NAMES, row, strict=True))
    for c in _JSON_COLS:
        out[c] = json.loads(out[c])
    out["life_safety"] = bool(out["life_safety"])
    return out


def get(conn: sqlite3.Connection, incident_id: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {_COLS} FROM incidents WHERE id=?", (incident_id,)).fetchone()
    return None if row is None else row_to_dict(row)


def get_open(conn: sqlite3.Connection, key: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {_COLS} FROM incidents WHERE open_key=?", (key,)).fetchone()
    return None if row is None else row_to_dict(row)


def all_incidents(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [row_to_dict(r) for r in conn.execute(f"SELECT {_COLS} FROM incidents ORDER BY created_seq")]


def events(conn: sqlite3.Connection, after: int = 0, limit: int = 1000) -> list[IncidentEvent]:
    """Feed order, ``after`` being the cursor (the last ``seq`` a reader has)."""
    return [
        IncidentEvent(seq=s, incident_id=i, ts_ms=t, kind=k, actor=a, role=r, data=json.loads(d), config_rev=cr)
        for s, i, t, k, a, r, d, cr in conn.execute(
            "SELECT seq, incident_id, ts_ms, kind, actor, role, data, config_rev FROM incident_events"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
    ]


class IncidentStore:
    """Writes incidents for one gateway. Stateless apart from the id prefix: safe across rollbacks."""

    def __init__(self, gateway_id: str, config_rev: int | None = None) -> None:
        self.gateway_id = gateway_id
        self.config_rev = config_rev
        self._prefix: str | None = None

    def _id_prefix(self, conn: sqlite3.Connection) -> str:
        if self._prefix is None:
            row = conn.execute("SELECT value FROM meta WHERE key='store_uid'").fetchone()
            if row is None:  # a store migrated without it (cannot happen with migration 2)
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('store_uid', lower(hex(randomblob(4))))"
                    " ON CONFLICT(key) DO NOTHING"
                )
                row = conn.execute("SELECT value FROM meta WHERE key='store_uid'").fetchone()
            self._prefix = f"{self.gateway_id}-{row[0]}"
        return self._prefix

    # --- events --------------------------------------------------------------------------------
    def append_event(
        self,
        conn: sqlite3.Connection,
        result: BatchResult | None,
        incident_id: str,
        kind: EventKind,
        ts_ms: int,
        data: Mapping[str, Any] | None = None,
        *,
        actor: str = RULES_ACTOR,
        role: str | None = None,
        incident: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one event (timeline + feed) and hand it to ``result.incident_events``.

        ``incident`` (optional) is a snapshot of the incident after the change, passed on to
        listeners so they need not query; it is not stored in the event row.
        """
        payload = dict(data or {})
        cur = conn.execute(
            "INSERT INTO incident_events(incident_id, ts_ms, kind, actor, role, data, config_rev)"
            " VALUES (?,?,?,?,?,?,?)",
            (incident_id, ts_ms, kind, actor, role, _dumps(payload), self.config_rev),
        )
        seq = int(cur.lastrowid or 0)
        if result is not None:
            result.incident_events.append(
                IncidentEvent(
                    seq=seq,
                    incident_id=incident_id,
                    ts_ms=ts_ms,
                    kind=kind,
                    actor=actor,
                    role=role,
                    data=payload,
                    config_rev=self.config_rev,
                    incident=None if incident is None else dict(incident),
                )
            )
        return seq

    # --- raise / repeat ------------------------------------------------------------------------
    def raise_or_repeat(self, conn: sqlite3.Connection, result: BatchResult, trig: Trigger, now_ms: int) -> Raised:
        """Open an incident for ``trig.key`` or count a repeat of the open one."""
        row = conn.execute(
            "SELECT id, count, readings, devices, last_ms, severity FROM incidents WHERE open_key=?", (trig.key,)
        ).fetchone()
        if row is None:
            try:
                return self._create(conn, result, trig, now_ms)
            except sqlite3.IntegrityError as exc:
                if "open_key" not in str(exc):
                    raise
                # Another writer opened it between our SELECT and INSERT: the index said no.
                row = conn.execute(
                    "SELECT id, count, readings, devices, last_ms, severity FROM incidents WHERE open_key=?",
                    (trig.key,),
                ).fetchone()
                if row is None:
                    raise
        return self._repeat(conn, result, trig, now_ms, row)

    def _create(self, conn: sqlite3.Connection, result: BatchResult, trig: Trigger, now_ms: int) -> Raised:
        prefix = self._id_prefix(conn)
        seq = int(conn.execute("SELECT coalesce(max(created_seq), 0) + 1 FROM incidents").fetchone()[0])
        incident_id = f"{prefix}-{seq}"
        prev = conn.execute(
            "SELECT id FROM incidents WHERE key=? ORDER BY created_seq DESC LIMIT 1", (trig.key,)
        ).fetchone()
        previous_id = prev[0] if prev else None
        life = trig.life_safety if trig.life_safety is not None else trig.type in LIFE_SAFETY_TYPES
        readings = [dict(trig.reading)] if trig.reading is not None else []
        detail = dict(trig.detail)
        loc = trig.location
        devices = list(dict.fromkeys(trig.devices))
        KeyChanges.open(trig.key)
        conn.execute(
            f"INSERT INTO incidents({_COLS}) VALUES ({','.join('?' * len(_NAMES))})",
            (
                incident_id,
                seq,
                trig.category,
                trig.type,
                trig.severity,
                "new",
                trig.key,
                trig.key,
                int(life),
                loc.grid,
                loc.compound,
                loc.building,
                loc.unit,
                loc.space,
                _dumps(devices),
                trig.ts_ms,
                trig.ts_ms,
                1,
                _dumps(readings),
                _dumps(detail),
                previous_id,
                None,
                None,
                trig.resident_id,
                self.config_rev,
                now_ms,
                now_ms,
            ),
        )
        snapshot = {
            "id": incident_id,
            "category": trig.category,
            "type": trig.type,
            "severity": trig.severity,
            "state": "new",
            "key": trig.key,
            "life_safety": life,
            "grid": loc.grid,
            "compound": loc.compound,
            "building": loc.building,
            "unit": loc.unit,
            "space": loc.space,
            "devices": devices,
            "first_ms": trig.ts_ms,
            "last_ms": trig.ts_ms,
            "count": 1,
            "previous_id": previous_id,
            "resident_id": trig.resident_id,
            "detail": detail,
        }
        self.append_event(
            conn, result, incident_id, "created", trig.ts_ms, {**snapshot, "readings": readings}, incident=snapshot
        )
        return Raised(incident_id, True, 1)

    # Any: row is the raw sqlite3 tuple of the open incident
    def _repeat(self, conn: sqlite3.Connection, result: BatchResult, trig: Trigger, now_ms: int, row: Any) -> Raised:
        incident_id, count, readings_json, devices_json, last_ms, severity = row
        count += 1
        readings = json.loads(readings_json)
        if trig.reading is not None:
            readings = [*readings, dict(trig.reading)][-MAX_READINGS:]
        devices = json.loads(devices_json)
        new_devs = [d for d in trig.devices if d not in devices]
        last = max(last_ms, trig.ts_ms)
        conn.execute(
            # The condition is active again: a recorded auto-clear no longer holds.
            "UPDATE incidents SET count=?, last_ms=?, readings=?, devices=?, updated_ms=?, auto_cleared_ms=NULL,"
            " cleared_reason=NULL WHERE id=?",
            (count, last, _dumps(readings), _dumps(devices + new_devs), now_ms, incident_id),
        )
        data: dict[str, Any] = {"count": count, "last_ms": last}
        if trig.reading is not None:
            data["device"] = trig.reading.get("device")
        if new_devs:
            data["devices_added"] = new_devs
        self.append_event(conn, result, incident_id, "repeated", trig.ts_ms, data)
        # A more severe trigger raises the incident's severity (never lowers it).
        if severity_rank(trig.severity) < severity_rank(severity):
            self.set_severity(conn, result, incident_id, trig.severity, "trigger", trig.ts_ms, now_ms)
        return Raised(incident_id, False, count)

    # --- changes -------------------------------------------------------------------------------
    def set_severity(
        self,
        conn: sqlite3.Connection,
        result: BatchResult,
        incident_id: str,
        severity: str,
        reason: str,
        ts_ms: int,
        now_ms: int,
    ) -> bool:
        row = conn.execute("SELECT severity FROM incidents WHERE id=?", (incident_id,)).fetchone()
        if row is None or row[0] == severity:
            return False
        conn.execute("UPDATE incidents SET severity=?, updated_ms=? WHERE id=?", (severity, now_ms, incident_id))
        self.append_event(
            conn, result, incident_id, "severity_changed", ts_ms, {"from": row[0], "to": severity, "reason": reason}
        )
        return True

    def add_devices(
        self,
        conn: sqlite3.Connection,
        result: BatchResult,
        incident_id: str,
        devices: Iterable[str],
        ts_ms: int,
        now_ms: int,
        *,
        detail: Callable[[list[str]], Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Add devices to the incident's list (event ``devices_added``); the new ones are returned.

        ``detail`` (optional) computes detail fields from the whole new device list (a group's
        counts): they are merged into the stored detail and carried by the event, so the feed
        and the console read the same numbers."""
        row = conn.execute("SELECT devices, detail FROM incidents WHERE id=?", (incident_id,)).fetchone()
        if row is None:
            return []
        have = json.loads(row[0])
        new = [d for d in dict.fromkeys(devices) if d not in have]
        if not new:
            return new
        data: dict[str, Any] = {"devices": new}
        if detail is None:
            conn.execute(
                "UPDATE incidents SET devices=?, updated_ms=? WHERE id=?", (_dumps(have + new), now_ms, incident_id)
            )
        else:
            changed = dict(detail(have + new))
            conn.execute(
                "UPDATE incidents SET devices=?, detail=?, updated_ms=? WHERE id=?",
                (_dumps(have + new), _dumps({**json.loads(row[1]), **changed}), now_ms, incident_id),
            )
            data["detail"] = changed
        self.append_event(conn, result, incident_id, "devices_added", ts_ms, data)
        return new

    def auto_clear(
        self, conn: sqlite3.Connection, result: BatchResult, key: str, ts_ms: int, reason: str, now_ms: int
    ) -> str | None:
        """The condition behind the open incident ``key`` recovered.

        Recorded on the incident (``auto_cleared_ms``, ``cleared_reason``, event ``auto_cleared``).
        A life-safety incident stays open (a person must close it); any other incident still in
        state ``new`` (nobody took it yet) is resolved by the rules, which releases the key.
        Taken ones (dispatched ...) stay open here; their ticket decides what happens to them.
        Returns the incident id, or None when nothing was open.
        """
        row = conn.execute(
            "SELECT id, life_safety, state, auto_cleared_ms FROM incidents WHERE open_key=?", (key,)
        ).fetchone()
        if row is None:
            return None
        incident_id: str
        incident_id, life, state, cleared = row
        if cleared is not None and life:
            return incident_id  # already recorded; waits for a person
        resolve = not life and state == "new"
        conn.execute(
            "UPDATE incidents SET auto_cleared_ms=?, cleared_reason=?, updated_ms=? WHERE id=?",
            (ts_ms, reason, now_ms, incident_id),
        )
        self.append_event(conn, result, incident_id, "auto_cleared", ts_ms, {"reason": reason, "resolved": resolve})
        if resolve:
            self.transition(conn, result, incident_id, "resolved", ts_ms, now_ms, data={"reason": reason})
        return incident_id

    def transition(
        self,
        conn: sqlite3.Connection,
        result: BatchResult,
        incident_id: str,
        state: str,
        ts_ms: int,
        now_ms: int,
        *,
        actor: str = RULES_ACTOR,
        role: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Move an incident to ``state``; a closed state releases the open key (store-enforced)."""
        if state not in OPEN_STATES and state not in CLOSED_STATES:
            raise ValueError(f"unknown incident state {state!r}")
        row = conn.execute("SELECT state, key FROM incidents WHERE id=?", (incident_id,)).fetchone()
        if row is None:
            raise KeyError(incident_id)
        if state in OPEN_STATES:
            key = row[1]
            KeyChanges.open(key)
            # Re-opening takes the key back; the unique index refuses if a newer one holds it.
            conn.execute(
                "UPDATE incidents SET state=?, open_key=?, updated_ms=? WHERE id=?", (state, key, now_ms, incident_id)
            )
        else:
            KeyChanges.released += 1
            conn.execute(
                "UPDATE incidents SET state=?, open_key=NULL, updated_ms=? WHERE id=?", (state, now_ms, incident_id)
            )
        self.append_event(
            conn,
            result,
            incident_id,
            "state_changed",
            ts_ms,
            {"from": row[0], "to": state, **(data or {})},
            actor=actor,
            role=role,
        )
