"""Shared pieces of the rule families: the per-call context, device facts, time helpers and the
rule-state cache.

Rule state lives in the store (``timers``, ``rule_state``), written inside the pipeline's
transaction, so a rolled-back batch rolls the rule state back with it and a restart finds
exactly what was committed. :class:`RuleStore` keeps a write-through copy of both tables in
memory (the pipeline thread is their only writer): reads never query SQLite, and a write that
changes nothing is not issued at all (no page dirtied, no JSON encoded). The cache follows
rollbacks (see :class:`RuleStore`); it is a read cache and a change filter, never the truth.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from gateway.core import compactjson
from gateway.core.incidents import Location

if TYPE_CHECKING:
    from gateway.core.contract import BatchResult


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
    families: tuple[Any, ...] = ()  # rule family modules that can apply to it (RuleEngine._build)


@dataclass(slots=True)
class Facts:
    """Derived once per reading for all rule families."""

    door_opened: bool = False
    door_closed: bool = False
    motion: bool = False  # movement proves someone is up: PIR, a door used, a button, access granted
    activity: bool = False  # motion, or presence seen by a radar


# --- durable state -------------------------------------------------------------------------------
# Any: whatever JSON-serialisable value is stored
_dumps = compactjson.dumps  # the text json.dumps(separators=(",", ":"), ensure_ascii=False, default=str) gives


# --- the cache -----------------------------------------------------------------------------------
_MISSING: Any = object()
_STATE_UPSERT = (
    "INSERT INTO rule_state(key, value, updated_ms) VALUES (?,?,?)"
    " ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_ms=excluded.updated_ms"
)
_TIMER_INSERT = "INSERT INTO timers(key, rule, due_ms, armed_ms, data) VALUES (?,?,?,?,?) ON CONFLICT(key) DO NOTHING"
_TIMER_UPSERT = (
    "INSERT INTO timers(key, rule, due_ms, armed_ms, data) VALUES (?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET"
    " rule=excluded.rule, due_ms=excluded.due_ms, armed_ms=excluded.armed_ms, data=excluded.data"
)


# Any: JSON values
def _plain_copy(value: Any) -> Any:
    """A deep copy of ``value`` if JSON gives it back as it is, else ``_MISSING``."""
    t = type(value)
    if t is str or t is int or t is bool or value is None or (t is float and math.isfinite(value)):
        return value
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                return _MISSING
            c = _plain_copy(v)
            if c is _MISSING:
                return _MISSING
            out[k] = c
        return out
    if t is list:
        items = []
        for v in value:
            c = _plain_copy(v)
            if c is _MISSING:
                return _MISSING
            items.append(c)
        return items
    return _MISSING


def decoded_copy(value: Any, text: str) -> Any:
    """``json.loads(text)`` where ``text`` is ``_dumps(value)``: a copy of ``value`` built directly
    when it holds only values JSON gives back as they are (str keys; str, int, bool, None, finite
    floats, dicts, lists), else decoded from ``text``. A timer armed on every toggle of a flapping
    door (a drained backlog) decoded its text each time (tests/test_rules_perf.py)."""
    copy = _plain_copy(value)
    return json.loads(text) if copy is _MISSING else copy


class Timer(NamedTuple):
    rule: str
    due: int
    armed: int
    data: dict[str, Any]  # decoded ``text``: shared, callers must not mutate it
    text: str  # the stored JSON


# Any: rule state values are JSON values
def same_json(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are equal with the same JSON types (True is not 1, 1 is not 1.0), so they
    encode the same. False only means "not proven equal": the caller then compares encodings."""
    t = type(a)
    if t is not type(b):
        return False
    if t is dict:
        return len(a) == len(b) and all(k in b and same_json(v, b[k]) for k, v in a.items())
    if t is list:
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class RuleStore:
    """Write-through cache of ``rule_state`` and ``timers`` for the pipeline thread.

    Loaded once from the tables; every write goes to SQLite in the caller's transaction (so
    restart-safety is exactly that of the tables) and to the cache. Writes that change nothing
    are skipped. Values handed out are shared with the cache: callers must not mutate them.

    Rollbacks: each change is recorded in an undo log. ``mark``/``rollback_to`` follow the rule
    engine's own savepoints. A transaction ends outside the engine (COMMIT, or a ROLLBACK after a
    later processor or the store failed, or a failed COMMIT), so ``begin`` - called when the next
    transaction uses the engine - checks one row the previous transaction changed: still the new
    value means it committed; the old value means it was rolled back and the undo log is applied;
    anything else reloads both tables.
    """

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None
        self.state: dict[str, tuple[Any, str]] = {}  # key -> (decoded value, stored JSON)
        self.timers: dict[str, Timer] = {}
        self.loaded = False
        self._undo: list[tuple[dict[str, Any], str, Any]] = []  # (table cache, key, old entry | _MISSING)
        self._txn: object | None = None
        self.reloads = 0  # diagnostics: verification found neither the old nor the new row
        self.reverts = 0  # diagnostics: transactions found rolled back

    # --- transactions ------------------------------------------------------------------------
    def begin(self, conn: sqlite3.Connection, txn: object) -> None:
        """The engine is used in transaction ``txn`` (the batch's result object)."""
        self.conn = conn
        if txn is self._txn and self.loaded:
            return
        self._txn = txn
        if not self.loaded:
            self.load(conn)
        elif self._undo:
            self._settle(conn)

    def load(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.state = {k: (json.loads(v), v) for k, v in conn.execute("SELECT key, value FROM rule_state")}
        self.timers = {
            k: Timer(rule, int(due), int(armed), json.loads(data), data)
            for k, rule, due, armed, data in conn.execute("SELECT key, rule, due_ms, armed_ms, data FROM timers")
        }
        self._undo.clear()
        self.loaded = True

    def mark(self) -> int:
        return len(self._undo)

    def rollback_to(self, mark: int) -> None:
        undo = self._undo
        while len(undo) > mark:
            table, key, old = undo.pop()
            if old is _MISSING:
                table.pop(key, None)
            else:
                table[key] = old

    def _settle(self, conn: sqlite3.Connection) -> None:
        """Did the transaction that made the logged changes commit? (One indexed read.)"""
        seen: set[tuple[bool, str]] = set()
        probe = None
        for table, key, old in self._undo:  # the first entry of a key holds its value before
            is_state = table is self.state
            if (is_state, key) in seen:
                continue
            seen.add((is_state, key))
            as_old = self._row(is_state, old)
            as_new = self._row(is_state, table.get(key, _MISSING))
            if as_old != as_new:
                probe = (is_state, key, as_old, as_new)
                break
        if probe is None:  # no net change: both outcomes leave the tables as cached
            self._undo.clear()
            return
        is_state, key, as_old, as_new = probe
        if is_state:
            row = conn.execute("SELECT value FROM rule_state WHERE key=?", (key,)).fetchone()
            found: Any = None if row is None else (row[0],)
        else:
            row = conn.execute("SELECT rule, due_ms, armed_ms, data FROM timers WHERE key=?", (key,)).fetchone()
            found = None if row is None else (row[0], int(row[1]), int(row[2]), row[3])
        if found == as_new:
            self._undo.clear()
        elif found == as_old:
            self.reverts += 1
            self.rollback_to(0)
        else:  # cannot happen with one writer; be exact anyway
            self.reloads += 1
            self.load(conn)

    # Any: rule state values and the rows built from them are JSON values / sqlite parameters
    @staticmethod
    def _row(is_state: bool, entry: Any) -> tuple[Any, ...] | None:
        """What the table row holds for a cache entry (None: no row)."""
        if entry is _MISSING:
            return None
        if is_state:
            return (entry[1],)
        return (entry.rule, entry.due, entry.armed, entry.text)

    def _log(self, table: dict[str, Any], key: str, old: Any) -> None:
        self._undo.append((table, key, old))

    # --- rule_state ----------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        cur = self.state.get(key)
        return None if cur is None else cur[0]

    def set(self, key: str, value: Any, now: int) -> bool:
        """Store ``value`` (JSON); False when it is what is stored already (nothing written)."""
        cur = self.state.get(key)
        if cur is not None and same_json(cur[0], value):
            return False
        t = type(value)
        if t is bool:  # the common values, without the encoder (same text as json.dumps)
            text, decoded = ("true" if value else "false"), value
        elif t is int:
            text, decoded = str(value), value
        else:
            text = _dumps(value)
            if cur is not None and cur[1] == text:
                return False
            decoded = decoded_copy(value, text)
        assert self.conn is not None
        self.conn.execute(_STATE_UPSERT, (key, text, now))
        self._log(self.state, key, _MISSING if cur is None else cur)
        self.state[key] = (decoded, text)
        return True

    def delete(self, key: str) -> bool:
        cur = self.state.get(key)
        if cur is None:
            return False
        assert self.conn is not None
        self.conn.execute("DELETE FROM rule_state WHERE key=?", (key,))
        self._log(self.state, key, cur)
        del self.state[key]
        return True

    # --- timers --------------------------------------------------------------------------------
    def timer_get(self, key: str) -> tuple[int, dict[str, Any]] | None:
        t = self.timers.get(key)
        return None if t is None else (t.due, t.data)

    def timer_arm(
        self,
        key: str,
        rule: str,
        due_ms: int,
        now: int,
        data: Mapping[str, Any] | None = None,
        *,
        replace: bool = False,
    ) -> bool:
        """Arm a timer; an armed one is kept (its start time matters) unless ``replace``.

        Re-arming with the same rule, due time and data writes nothing (``armed_ms`` keeps the
        first arming)."""
        cur = self.timers.get(key)
        if cur is not None:
            if not replace:
                return False
            if cur.rule == rule and cur.due == due_ms and same_json(cur.data, data or {}):
                return True
        payload = dict(data or {})
        text = _dumps(payload)
        if cur is not None and cur.rule == rule and cur.due == due_ms and cur.text == text:
            return True
        assert self.conn is not None
        self.conn.execute(_TIMER_UPSERT if replace else _TIMER_INSERT, (key, rule, due_ms, now, text))
        self._log(self.timers, key, _MISSING if cur is None else cur)
        self.timers[key] = Timer(rule, due_ms, now, decoded_copy(payload, text), text)
        return True

    def timer_cancel(self, key: str) -> bool:
        cur = self.timers.get(key)
        if cur is None:
            return False
        assert self.conn is not None
        self.conn.execute("DELETE FROM timers WHERE key=?", (key,))
        self._log(self.timers, key, cur)
        del self.timers[key]
        return True

    def timers_shift(self, step: int) -> None:
        """A wall-clock step: every timer's due time moves by ``step``."""
        assert self.conn is not None
        self.conn.execute("UPDATE timers SET due_ms = due_ms + ?", (step,))
        for key, t in list(self.timers.items()):
            self._log(self.timers, key, t)
            self.timers[key] = t._replace(due=t.due + step)


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


@functools.lru_cache(maxsize=4096)
def _window_ms(day: dt.date, start: dt.time, end: dt.time, tz: ZoneInfo) -> tuple[int, int]:
    """The daily window [start, end) that starts on ``day``, in epoch ms (a pure function of its
    arguments, kept: every activity reading of a resident's devices moves their inactivity timer)."""
    ws = dt.datetime.combine(day, start, tz)
    we = dt.datetime.combine(day + dt.timedelta(days=1) if end < start else day, end, tz)
    return int(ws.timestamp() * 1000), int(we.timestamp() * 1000)


def add_active_time(start_ms: int, dur_ms: int, tz: ZoneInfo, start: dt.time, end: dt.time) -> int:
    """The instant at which ``dur_ms`` of time inside the daily active window has passed since
    ``start_ms`` (time outside the window - the night - does not count)."""
    if start == end:
        return start_ms + dur_ms
    remaining = dur_ms
    cur = start_ms
    day0 = local(start_ms, tz).date() - dt.timedelta(days=1)
    for d in range(0, 800):
        ws_ms, we_ms = _window_ms(day0 + dt.timedelta(days=d), start, end, tz)
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
