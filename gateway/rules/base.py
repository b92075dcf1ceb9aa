"""Shared pieces of the rule families: the per-call context, device facts, time helpers.

Rule state lives in the store (``timers``, ``rule_state``), read and written inside the
pipeline's transaction, so a rolled-back batch rolls the rule state back with it and a restart
finds exactly what was committed. Only caches that are safe to lose live in memory.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.incidents import Location

if TYPE_CHECKING:
    from gateway.pipeline import BatchResult


@dataclass(slots=True)
class Ctx:
    """One processor call: the open transaction, the batch result and the gateway's wall time."""

    conn: sqlite3.Connection
    result: BatchResult
    now: int
    cache: dict[str, Any] = field(default_factory=dict)  # per-call memo (e.g. offline devices)


@dataclass(slots=True)
class Dev:
    """What the rules know about one configured device (precomputed from the site config)."""

    id: str
    type: str
    driver: str
    category: str
    life_safety: bool
    settings: Any  # edge_config.DeviceTypeSettings (effective: type < space < resident < device)
    loc: Location
    resident_id: str | None = None
    space_kind: str | None = None  # normal | fire_lane | no_parking | reserved
    expected_interval_s: float | None = None
    zones: list[Any] = field(default_factory=list)  # IntrusionZone


@dataclass(slots=True)
class Facts:
    """Derived once per reading for all rule families."""

    door_opened: bool = False
    door_closed: bool = False
    motion: bool = False  # movement proves someone is up: PIR, a door used, a button, access granted
    activity: bool = False  # motion, or presence seen by a radar


# --- durable state -------------------------------------------------------------------------------
def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def state_get(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM rule_state WHERE key=?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])


def state_set(conn: sqlite3.Connection, key: str, value: Any, now: int) -> None:
    conn.execute(
        "INSERT INTO rule_state(key, value, updated_ms) VALUES (?,?,?)"
        " ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_ms=excluded.updated_ms",
        (key, _dumps(value), now),
    )


def state_del(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("DELETE FROM rule_state WHERE key=?", (key,))


def timer_get(conn: sqlite3.Connection, key: str) -> tuple[int, dict[str, Any]] | None:
    row = conn.execute("SELECT due_ms, data FROM timers WHERE key=?", (key,)).fetchone()
    return None if row is None else (int(row[0]), json.loads(row[1]))


def timer_arm(
    conn: sqlite3.Connection,
    key: str,
    rule: str,
    due_ms: int,
    now: int,
    data: Mapping[str, Any] | None = None,
    *,
    replace: bool = False,
) -> bool:
    """Arm a timer; an armed one is kept (its start time matters) unless ``replace``."""
    sql = "INSERT INTO timers(key, rule, due_ms, armed_ms, data) VALUES (?,?,?,?,?) ON CONFLICT(key) DO " + (
        "UPDATE SET rule=excluded.rule, due_ms=excluded.due_ms, armed_ms=excluded.armed_ms, data=excluded.data"
        if replace
        else "NOTHING"
    )
    cur = conn.execute(sql, (key, rule, due_ms, now, _dumps(dict(data or {}))))
    return cur.rowcount > 0


def timer_cancel(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute("DELETE FROM timers WHERE key=?", (key,)).rowcount > 0


# --- local time ----------------------------------------------------------------------------------
def local(ts_ms: int, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz)


def in_window(ts_ms: int, tz: ZoneInfo, start: dt.time, end: dt.time, days: list[int] | None = None) -> bool:
    """Is ``ts_ms`` inside the daily window [start, end) (end <= start: past midnight)?

    ``days`` (ISO weekdays) are the days the window *starts* on."""
    t = local(ts_ms, tz)
    now_t = t.time()
    if start == end:
        inside, start_day = True, t
    elif start < end:
        inside, start_day = start <= now_t < end, t
    elif now_t >= start:
        inside, start_day = True, t
    else:
        inside, start_day = now_t < end, t - dt.timedelta(days=1)
    return inside and (days is None or start_day.isoweekday() in days)


def add_active_time(start_ms: int, dur_ms: int, tz: ZoneInfo, start: dt.time, end: dt.time) -> int:
    """The instant at which ``dur_ms`` of time inside the daily active window has passed since
    ``start_ms`` (time outside the window - the night - does not count)."""
    if start == end:
        return start_ms + dur_ms
    remaining = dur_ms
    cur = start_ms
    day0 = local(start_ms, tz).date() - dt.timedelta(days=1)
    for d in range(0, 800):
        day = day0 + dt.timedelta(days=d)
        ws = dt.datetime.combine(day, start, tz)
        we = dt.datetime.combine(day + dt.timedelta(days=1) if end < start else day, end, tz)
        ws_ms, we_ms = int(ws.timestamp() * 1000), int(we.timestamp() * 1000)
        if we_ms <= cur:
            continue
        s = max(cur, ws_ms)
        avail = we_ms - s
        if avail >= remaining:
            return s + remaining
        remaining -= avail
        cur = we_ms
    return start_ms + dur_ms  # unreachable for sane inputs


def reading_dict(device: str, ts_ms: int, kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {"device": device, "ts_ms": ts_ms, "kind": kind, "values": dict(values)}
