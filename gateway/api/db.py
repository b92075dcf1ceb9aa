"""Reads for the API: their own read-only SQLite connections, in a bounded thread pool.

The event loop never runs SQLite (it would stall every other request and the stream), and the API
never writes here: writes go through ``gw.pipeline.call`` / ``gw.tickets``. ``Readers.run`` uses a
capacity limiter of ``api.reader_threads`` threads, which also bounds how much CPU the API can
take from ingest under load.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from gateway.api import access
from gateway.api.auth import Principal
from gateway.core import incidents as inc
from gateway.core import store as st
from gateway.core.contract import IncidentEvent

T = TypeVar("T")

# Seconds other threads spent on behalf of the current request, when set (the Governor in
# gateway/api/__init__.py charges them to the API): reader threads' CPU, and the pipeline thread's
# whole time on the request's writes (ApiContext.write: an access-log row or a ticket action is a
# transaction with an fsync on the thread ingest runs on). anyio runs worker-thread calls in a copy
# of the caller's context, so the list itself is shared with the request.
request_cost: ContextVar[list[float] | None] = ContextVar("request_cost", default=None)


class Readers:
    def __init__(self, path: Path, threads: int) -> None:
        self.path = path
        self.threads = threads
        self._limiter: anyio.CapacityLimiter | None = None
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def conn(self) -> sqlite3.Connection:
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if c is None:
            c = st.connect(self.path, readonly=True)
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    # Any: the arguments are passed through to fn unchanged
    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)

        meter = request_cost.get()

        def call() -> T:
            if meter is None:
                return fn(self.conn(), *args)
            t0 = time.thread_time()
            try:
                return fn(self.conn(), *args)
            finally:
                meter.append(time.thread_time() - t0)

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:
                pass


_columns: dict[str, frozenset[str]] = {}


def columns(conn: sqlite3.Connection, table: str) -> frozenset[str]:
    cols = _columns.get(table)
    if cols is None:
        cols = frozenset(r[1] for r in conn.execute(f"PRAGMA table_info({table})"))
        if cols:
            _columns[table] = cols
    return cols


# --- incidents ----------------------------------------------------------------------------------

INC_COLS = ", ".join(f"incidents.{c}" for c in inc._NAMES)


# Ticket columns (table ``tickets``) shown with an incident when the store has them.
TICKET_COLS = ("assignee", "team", "assignee_role", "level", "summons", "watchers", "rating")


def _extra_cols(conn: sqlite3.Connection) -> list[str]:
    have = columns(conn, "tickets")
    return [c for c in TICKET_COLS if c in have]


def _select(conn: sqlite3.Connection) -> tuple[str, list[str]]:
    """'SELECT ... FROM incidents [LEFT JOIN tickets]' and the extra column names."""
    extra = _extra_cols(conn)
    extra_sql = "".join(f", t.{c}" for c in extra)
    join = " LEFT JOIN tickets t ON t.incident_id = incidents.id" if extra else ""
    return f"SELECT {INC_COLS}{extra_sql} FROM incidents{join}", extra


def _rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any], extra: list[str]) -> list[dict[str, Any]]:
    out = []
    n = len(inc._NAMES)
    for r in conn.execute(sql, params):
        d = inc.row_to_dict(r[:n])
        for i, c in enumerate(extra):
            v = r[n + i]
            d[c] = json.loads(v) if c in access.TICKET_JSON and isinstance(v, str) else v
        out.append(d)
    return out


@dataclass
class IncidentFilter:
    state: list[str] | None = None
    category: list[str] | None = None
    severity: list[str] | None = None
    grid: list[str] | None = None
    building: list[str] | None = None
    compound: list[str] | None = None
    assignee: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


def _in(col: str, values: list[str], where: list[str], params: list[Any]) -> None:
    where.append(f"{col} IN ({','.join('?' * len(values))})")
    params.extend(values)


def list_incidents(
    conn: sqlite3.Connection, p: Principal, f: IncidentFilter, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first (by creation); ``before`` is the cursor (created_seq of the last item seen)."""
    select, extra = _select(conn)
    scope, params = access.incident_scope_sql(p, bool(extra))
    where = [scope]
    if f.state:
        states: list[str] = []
        for s in f.state:
            states += sorted(inc.OPEN_STATES) if s == "open" else sorted(inc.CLOSED_STATES) if s == "closed" else [s]
        _in("incidents.state", states, where, params)
    for col, vals in (
        ("category", f.category),
        ("severity", f.severity),
        ("grid", f.grid),
        ("building", f.building),
        ("compound", f.compound),
    ):
        if vals:
            _in(f"incidents.{col}", vals, where, params)
    if f.assignee is not None:
        if "assignee" not in extra:
            return [], None
        where.append("t.assignee = ?")
        params.append(f.assignee)
    if f.since_ms is not None:
        where.append("incidents.last_ms >= ?")
        params.append(f.since_ms)
    if f.until_ms is not None:
        where.append("incidents.first_ms <= ?")
        params.append(f.until_ms)
    if before is not None:
        where.append("incidents.created_seq < ?")
        params.append(before)
    sql = f"{select} WHERE {' AND '.join(where)} ORDER BY incidents.created_seq DESC LIMIT ?"
    rows = _rows(conn, sql, [*params, limit + 1], extra)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["created_seq"] if more and rows else None)


def get_incidents(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    select, extra = _select(conn)
    out: dict[str, dict[str, Any]] = {}
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        sql = f"{select} WHERE incidents.id IN ({','.join('?' * len(chunk))})"
        for d in _rows(conn, sql, chunk, extra):
            out[d["id"]] = d
    return out


def timeline(conn: sqlite3.Connection, incident_id: str, limit: int = 1000) -> list[IncidentEvent]:
    return [
        IncidentEvent(
            seq=s, incident_id=incident_id, ts_ms=t, kind=k, actor=a, role=r, data=json.loads(d), config_rev=cr
        )
        for s, t, k, a, r, d, cr in conn.execute(
            "SELECT seq, ts_ms, kind, actor, role, data, config_rev FROM incident_events"
            " WHERE incident_id=? ORDER BY seq LIMIT ?",
            (incident_id, limit),
        )
    ]


def events_after(conn: sqlite3.Connection, after: int, limit: int) -> list[IncidentEvent]:
    return inc.events(conn, after=after, limit=limit)


def max_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM incident_events").fetchone()[0])


# --- devices ------------------------------------------------------------------------------------

DEV_COLS = "device_id, last_seen_ms, last_values, online, online_reason, online_changed_ms, battery, since_ms"


def device_rows(conn: sqlite3.Connection, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    if ids is None:
        cur = conn.execute(f"SELECT {DEV_COLS} FROM devices ORDER BY device_id")
    else:
        cur = conn.execute(f"SELECT {DEV_COLS} FROM devices WHERE device_id IN ({','.join('?' * len(ids))})", list(ids))
    return [
        {
            "device_id": r[0],
            "last_seen_ms": r[1],
            "values": json.loads(r[2] or "{}"),
            "online": None if r[3] is None else bool(r[3]),
            "online_reason": r[4],
            "online_changed_ms": r[5],
            "battery": r[6],
            "since_ms": r[7],
        }
        for r in cur
    ]


def dead_letters(conn: sqlite3.Connection, before: int | None, limit: int, reason: str | None) -> list[dict[str, Any]]:
    where: list[str] = ["1"]
    params: list[Any] = []
    if before is not None:
        where.append("id < ?")
        params.append(before)
    if reason:
        where.append("reason = ?")
        params.append(reason)
    return [
        {
            "id": r[0],
            "rx_ms": r[1],
            "topic": r[2],
            "driver": r[3],
            "reason": r[4],
            "detail": r[5],
            "payload_len": r[6],
            "payload_excerpt": bytes(r[7]).decode("utf-8", "replace"),
        }
        for r in conn.execute(
            "SELECT id, rx_ms, topic, driver, reason, detail, payload_len, payload_excerpt FROM dead_letters"
            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
    ]


def unconfigured(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [
        {
            "driver": r[0],
            "address": r[1],
            "first_seen_ms": r[2],
            "last_seen_ms": r[3],
            "count": r[4],
            "last_topic": r[5],
            "sample": json.loads(r[6] or "{}"),
        }
        for r in conn.execute(
            "SELECT driver, address, first_seen_ms, last_seen_ms, count, last_topic, sample FROM unconfigured"
            " ORDER BY last_seen_ms DESC LIMIT 1000"
        )
    ]


def last_activity(conn: sqlite3.Connection, resident_id: str) -> int | None:
    """The resident's last activity the inactivity rule saw (its durable timer's ``last_ms``)."""
    row = conn.execute("SELECT data FROM timers WHERE key=?", (f"inact|{resident_id}",)).fetchone()
    if row is None:
        return None
    last = json.loads(row[0] or "{}").get("last_ms")
    return int(last) if isinstance(last, int | float) else None
