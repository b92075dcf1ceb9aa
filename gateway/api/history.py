"""Incident history: closed and open incidents by filter, with a notes search (reads only).

One WHERE builder serves the page, the count and the exports (gateway/api/reports.py), so a
filter means the same thing everywhere. Every query runs in a reader thread (``Readers.run``).
The indexes it leans on are store migration 9: (category|type|building|grid|compound,
created_seq) for "newest first within", ``first_ms`` for time ranges, ``tickets(assignee)``, a
partial index of ``sla_missed`` events, and ``incident_notes`` (FTS5, trigram) for the text.

Privacy: the notes of an elder-care incident can name the resident, and its building is personal
(access.present_incident hides it). So for roles without personal data a text search or a
building filter never matches a personal incident: the match itself would tell what is hidden.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway.api import access, db
from gateway.api.auth import Principal
from gateway.core import incidents as inc
from gateway.core.contract import IncidentEvent

PERSONAL_SQL = "(incidents.category = 'eldercare' OR incidents.resident_id IS NOT NULL)"
# A pattern shorter than a trigram cannot use the FTS5 index; SQLite 3.40 then even misses multibyte
# text (two Chinese characters are six bytes), so short or wildcard-bearing queries use instr().
_TRIGRAM = 3


@dataclass(frozen=True)
class HistoryFilter:
    from_ms: int | None = None  # first trigger at or after
    to_ms: int | None = None  # first trigger before
    category: tuple[str, ...] = ()
    type: tuple[str, ...] = ()
    state: tuple[str, ...] = ()  # 'open' / 'closed' stand for their groups
    building: tuple[str, ...] = ()
    grid: tuple[str, ...] = ()
    compound: tuple[str, ...] = ()
    assignee: str | None = None
    sla_missed: bool | None = None
    q: str | None = None

    def as_query(self) -> dict[str, Any]:
        """The filter as it was asked (recorded with an export)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v not in (None, ())}


def _in(col: str, values: tuple[str, ...], where: list[str], params: list[Any]) -> None:
    where.append(f"{col} IN ({','.join('?' * len(values))})")
    params.extend(values)


def _states(values: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for s in values:
        out += sorted(inc.OPEN_STATES) if s == "open" else sorted(inc.CLOSED_STATES) if s == "closed" else [s]
    return tuple(out)


def _contains(col: str, q: str) -> tuple[str, list[Any]]:
    """``col`` contains ``q``; Latin letters in any case (Chinese has none: no lower() per row then)."""
    if any("A" <= c <= "Z" or "a" <= c <= "z" for c in q):
        return f"instr(lower({col}), lower(?)) > 0", [q]
    return f"instr({col}, ?) > 0", [q]


def _notes_sql(q: str, correlated: bool) -> tuple[str, list[Any]]:
    """A condition on ``incidents``: some note of the incident contains ``q``. ``correlated``: looked
    up per incident (index on incident_id), when other conditions leave few incidents to look at;
    else the matching ids are found once (trigram index when ``q`` is long enough, else a scan)."""
    if correlated:
        cond, params = _contains("n.text", q)
        return f"EXISTS (SELECT 1 FROM incident_notes n WHERE n.incident_id = incidents.id AND {cond})", params
    if len(q) >= _TRIGRAM and "%" not in q and "_" not in q:
        return (
            "incidents.id IN (SELECT n.incident_id FROM incident_notes_fts f JOIN incident_notes n ON n.seq = f.rowid"
            " WHERE f.text LIKE ?)",
            [f"%{q}%"],
        )
    cond, params = _contains("text", q)
    return f"incidents.id IN (SELECT incident_id FROM incident_notes WHERE {cond})", params


# How the WHERE is meant to run. WALK: newest first along created_seq, every other index disabled
# (SQLite's unary + on a column); for filters that match often. INDEX: driven by a selective index
# (place, type, assignee, SLA, text), the few matches sorted; the columns that never narrow much
# (state, category: a handful of values over 100,000 rows) keep out of the choice. FREE: the
# planner's own choice (counts: covering indexes serve them well).
WALK, INDEX, FREE = "walk", "index", "free"


def where(p: Principal, f: HistoryFilter, has_tickets: bool, mode: str = FREE) -> tuple[str, list[Any], bool]:
    """WHERE clause (without 'WHERE'), its parameters, and whether it needs ``LEFT JOIN tickets t``."""
    scope, params = access.incident_scope_sql(p, has_tickets)
    walk = mode == WALK
    plus = "+" if walk else ""
    broad = "+" if mode != FREE else ""  # state, category
    conds = [scope.replace("incidents.", "+incidents.") if walk else scope] if scope != "1" else []
    join = p.role in access.ESCALATED_ONLY and has_tickets
    for col, vals, pre in (
        ("category", f.category, broad),
        ("type", f.type, plus),
        ("state", _states(f.state), broad),
        ("building", f.building, plus),
        ("grid", f.grid, plus),
        ("compound", f.compound, plus),
    ):
        if vals:
            _in(f"{pre}incidents.{col}", vals, conds, params)
    personal_hidden = p.role not in access.PERSONAL_ROLES
    if f.building and personal_hidden:
        conds.append(f"NOT {PERSONAL_SQL}")
    if f.from_ms is not None:
        conds.append(f"{plus}incidents.first_ms >= ?")
        params.append(f.from_ms)
    if f.to_ms is not None:
        conds.append(f"{plus}incidents.first_ms < ?")
        params.append(f.to_ms)
    if f.assignee is not None:
        if not has_tickets:
            conds.append("0")
        else:
            conds.append(f"{plus}t.assignee = ?")
            params.append(f.assignee)
            join = True
    if f.sla_missed is not None:
        neg = "" if f.sla_missed else "NOT "
        pre = plus if f.sla_missed else "+"
        conds.append(f"{pre}incidents.id {neg}IN (SELECT incident_id FROM incident_events WHERE kind = 'sla_missed')")
    if f.q:
        narrowed = bool(scope != "1" or f.category or f.type or f.building or f.grid or f.compound or f.assignee)
        short = len(f.q) < _TRIGRAM or "%" in f.q or "_" in f.q
        sql, qp = _notes_sql(f.q, correlated=walk or (short and (narrowed or f.from_ms is not None)))
        conds.append(sql)
        params += qp
        if personal_hidden:
            conds.append(f"NOT {PERSONAL_SQL}")
    return (" AND ".join(conds) or "1"), params, join


# Newest rows a page first looks through in created_seq order: a filter matching more than ~1 %
# of incidents fills a page from them; a rarer one is then answered from its index.
WINDOW = 5000


def _seqs(conn: sqlite3.Connection, frm: str, w: str, params: list[Any], limit: int) -> list[int]:
    sql = f"SELECT incidents.created_seq FROM {frm} WHERE {w} ORDER BY incidents.created_seq DESC LIMIT ?"
    return [int(r[0]) for r in conn.execute(sql, [*params, limit])]


def page_seqs(conn: sqlite3.Connection, p: Principal, f: HistoryFilter, before: int | None, limit: int) -> list[int]:
    """The created_seq of up to ``limit`` matching incidents below ``before``, newest first."""
    has_tickets = bool(db._extra_cols(conn))
    top = before if before is not None else 2**62
    floor_row = conn.execute(
        "SELECT created_seq FROM incidents WHERE created_seq < ? ORDER BY created_seq DESC LIMIT 1 OFFSET ?",
        (top, WINDOW - 1),
    ).fetchone()
    floor = int(floor_row[0]) if floor_row is not None else -1
    w, params, join = where(p, f, has_tickets, WALK)
    frm = "incidents LEFT JOIN tickets t ON t.incident_id = incidents.id" if join else "incidents"
    found = _seqs(
        conn, frm, f"{w} AND incidents.created_seq < ? AND incidents.created_seq >= ?", [*params, top, floor], limit
    )
    if len(found) >= limit or floor < 0:
        return found  # the window held a page, or the window reached the oldest incident
    w, params, join = where(p, f, has_tickets, INDEX)
    frm = "incidents LEFT JOIN tickets t ON t.incident_id = incidents.id" if join else "incidents"
    return found + _seqs(conn, frm, f"{w} AND incidents.created_seq < ?", [*params, floor], limit - len(found))


def page(
    conn: sqlite3.Connection, p: Principal, f: HistoryFilter, before: int | None, limit: int, with_total: bool
) -> tuple[list[dict[str, Any]], int | None, int | None]:
    """Newest first (created_seq); ``before`` is the cursor. Returns rows, next cursor, total (or None)."""
    seqs = page_seqs(conn, p, f, before, limit + 1)
    more = len(seqs) > limit
    seqs = seqs[:limit]
    rows: list[dict[str, Any]] = []
    if seqs:
        select, extra = db._select(conn)
        marks = ",".join("?" * len(seqs))
        rows = db._rows(
            conn, f"{select} WHERE incidents.created_seq IN ({marks}) ORDER BY incidents.created_seq DESC", seqs, extra
        )
    if f.q:
        _attach_matches(conn, rows, f.q)
    total = count(conn, p, f) if with_total else None
    return rows, (rows[-1]["created_seq"] if more and rows else None), total


def count(conn: sqlite3.Connection, p: Principal, f: HistoryFilter) -> int:
    has_tickets = bool(db._extra_cols(conn))
    w, params, join = where(p, f, has_tickets)
    frm = "incidents LEFT JOIN tickets t ON t.incident_id = incidents.id" if join else "incidents"
    return int(conn.execute(f"SELECT count(*) FROM {frm} WHERE {w}", params).fetchone()[0])


def iterate(conn: sqlite3.Connection, p: Principal, f: HistoryFilter, max_rows: int) -> Iterator[dict[str, Any]]:
    """Every matching row, newest first, in pages of 1,000 (an export's rows)."""
    before: int | None = None
    sent = 0
    while sent < max_rows:
        rows, nxt, _ = page(conn, p, f, before, min(1000, max_rows - sent), False)
        yield from rows
        sent += len(rows)
        if nxt is None:
            return
        before = nxt


def _attach_matches(conn: sqlite3.Connection, rows: list[dict[str, Any]], q: str) -> None:
    """``match``: the first note of each incident that contains ``q`` (the rows are already the
    ones this role may see the notes of)."""
    ids = [r["id"] for r in rows]
    if not ids:
        return
    found: dict[str, str] = {}
    needle = q.lower()
    for iid, text in conn.execute(
        f"SELECT incident_id, text FROM incident_notes WHERE incident_id IN ({','.join('?' * len(ids))}) ORDER BY seq",
        ids,
    ):
        if iid not in found and needle in str(text).lower():
            found[iid] = str(text)[:200]
    for r in rows:
        r["match"] = found.get(r["id"])


def timeline_page(
    conn: sqlite3.Connection, incident_id: str, after: int, limit: int
) -> tuple[dict[str, Any] | None, list[IncidentEvent], int | None]:
    """The incident and its events after ``after`` (seq), oldest first: the whole history of an
    incident of any age, however many repeats it gathered."""
    row = db.get_incidents(conn, [incident_id]).get(incident_id)
    if row is None:
        return None, [], None
    events = [
        IncidentEvent(seq=s, incident_id=incident_id, ts_ms=t, kind=k, actor=a, role=r, data=json.loads(d))
        for s, t, k, a, r, d in conn.execute(
            "SELECT seq, ts_ms, kind, actor, role, data FROM incident_events"
            " WHERE incident_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (incident_id, after, limit + 1),
        )
    ]
    more = len(events) > limit
    events = events[:limit]
    return row, events, (events[-1].seq if more and events else None)
