"""Early warning (提前预警): signs that a compound is drifting, each with the figures behind it.

The district asks that risks be flagged "while the problem is still a sprout", before a quarter ends
with a score below 60. Four signs, per compound (docs/tickets.md "Early warning"):

- ``projected_score``: the quarter-to-date score of the compound's property company work is below
  ``projected_below``. The score's items are rates (SLA share, reopen share, ratings), so the
  quarter-to-date value is the projection for the quarter if nothing changes;
- ``repeated_incidents``: ``repeat_count`` or more incidents of one type at one place (building,
  parking space, else the compound) within ``repeat_days``;
- ``unaccepted_rising``: accept deadlines missed in the last ``unaccepted_window_days`` — at least
  ``unaccepted_min`` and more than in the window before;
- ``low_response``: the quarter's resident response rate (answered / ended evaluation requests)
  below ``response_below_pct`` with at least ``response_min_requests`` requests ended.

:class:`WarningWatcher` recomputes them every ``every_s`` on its own read-only connection (never
on the writer or the event loop) and hands the changes to the writer: a warning that appears is
appended ``raised``, one that is gone ``cleared`` (table ``early_warnings``, whose ``seq`` is the
feed cursor of ``GET /api/v1/feed/warnings``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.core.workers import ReaderThread
from gateway.tickets import scorecard

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.core.contract import BatchResult

log = logging.getLogger("gateway.residents")
DAY_MS = 86_400_000
KINDS = ("projected_score", "repeated_incidents", "unaccepted_rising", "low_response")

Warning_ = dict[str, Any]  # {"kind", "compound", "figures"}


def quarter_of(cfg: SiteConfig, now_ms: int) -> tuple[str, int, int]:
    tz = ZoneInfo(cfg.gateway.timezone)
    t = dt.datetime.fromtimestamp(now_ms / 1000, tz)
    period = f"{t.year}-Q{(t.month - 1) // 3 + 1}"
    start, end = scorecard.period_bounds(period, tz)
    return period, start, end


def _projected(conn: sqlite3.Connection, cfg: SiteConfig, now_ms: int) -> dict[str, Warning_]:
    s = cfg.resident_loop.warnings
    period, start, end = quarter_of(cfg, now_ms)
    out: dict[str, Warning_] = {}
    for r in scorecard.compute(conn, cfg, period).rows:
        if r["kind"] != "compound" or r["score"] is None or r["score"] >= s.projected_below:
            continue
        figures = {
            "period": period,
            "score": round(r["score"], 1),
            "below": s.projected_below,
            "assignments": r["assignments"],
            "quarter_elapsed_pct": round(100 * (now_ms - start) / (end - start), 1),
            **{str(k): None if r.get(k) is None else round(r[k], 1) for k in scorecard.ITEMS},
            "owner_evaluation_scored": r.get("owner_evaluation_scored"),
        }
        out[f"projected_score|{r['entity']}|{period}"] = {"kind": "projected_score", "compound": r["entity"],
                                                         "figures": figures}  # fmt: skip
    return out


def _repeated(conn: sqlite3.Connection, cfg: SiteConfig, now_ms: int) -> dict[str, Warning_]:
    s = cfg.resident_loop.warnings
    out: dict[str, Warning_] = {}
    rows = conn.execute(
        "SELECT compound, type, coalesce(building, space, compound) AS place, count(*), min(first_ms),"
        " max(first_ms), json_group_array(id) FROM incidents WHERE first_ms >= ? AND compound IS NOT NULL"
        " GROUP BY compound, type, place HAVING count(*) >= ?",
        (now_ms - s.repeat_days * DAY_MS, s.repeat_count),
    ).fetchall()
    for compound, typ, place, n, first, last, ids in rows:
        figures = {"type": typ, "place": place, "count": n, "within_days": s.repeat_days, "first_ms": first,
                   "last_ms": last, "incidents": json.loads(ids)[-10:]}  # fmt: skip
        out[f"repeated_incidents|{compound}|{typ}@{place}"] = {
            "kind": "repeated_incidents",
            "compound": compound,
            "figures": figures,
        }
    return out


def _unaccepted(conn: sqlite3.Connection, cfg: SiteConfig, now_ms: int) -> dict[str, Warning_]:
    s = cfg.resident_loop.warnings
    w = s.unaccepted_window_days * DAY_MS
    counts: dict[str, list[int]] = {}
    for compound, ts in conn.execute(
        "SELECT i.compound, e.ts_ms FROM incident_events e JOIN incidents i ON i.id = e.incident_id"
        " WHERE e.kind='sla_missed' AND json_extract(e.data, '$.stage')='accept' AND e.ts_ms >= ?"
        " AND i.compound IS NOT NULL",
        (now_ms - 2 * w,),
    ):
        c = counts.setdefault(str(compound), [0, 0])
        c[0 if ts >= now_ms - w else 1] += 1
    out: dict[str, Warning_] = {}
    for compound, (cur, prev) in counts.items():
        if cur >= s.unaccepted_min and cur > prev:
            figures = {"missed_accept": cur, "previous_window": prev, "window_days": s.unaccepted_window_days}
            out[f"unaccepted_rising|{compound}|"] = {"kind": "unaccepted_rising", "compound": compound,
                                                     "figures": figures}  # fmt: skip
    return out


def _low_response(conn: sqlite3.Connection, cfg: SiteConfig, now_ms: int) -> dict[str, Warning_]:
    s = cfg.resident_loop.warnings
    period, start, _end = quarter_of(cfg, now_ms)
    out: dict[str, Warning_] = {}
    for compound, ended, answered, by_resident in conn.execute(
        "SELECT i.compound, count(*), sum(r.status='answered'), sum(r.source='resident_link')"
        " FROM evaluation_requests r JOIN incidents i ON i.id = r.incident_id"
        " WHERE r.created_ms >= ? AND r.status != 'pending' AND i.compound IS NOT NULL GROUP BY i.compound",
        (start,),
    ):
        rate = 100.0 * int(answered or 0) / int(ended)
        if int(ended) >= s.response_min_requests and rate < s.response_below_pct:
            figures = {"period": period, "requests_ended": ended, "answered": answered or 0,
                       "answered_by_resident": by_resident or 0, "response_rate_pct": round(rate, 1),
                       "below_pct": s.response_below_pct}  # fmt: skip
            out[f"low_response|{compound}|{period}"] = {"kind": "low_response", "compound": compound,
                                                       "figures": figures}  # fmt: skip
    return out


def compute(conn: sqlite3.Connection, cfg: SiteConfig, now_ms: int) -> dict[str, Warning_]:
    """Every warning that holds now, by key (read-only)."""
    out: dict[str, Warning_] = {}
    for fn in (_projected, _repeated, _unaccepted, _low_response):
        out.update(fn(conn, cfg, now_ms))
    return out


def raised(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """The warnings raised and not cleared: key -> their last row."""
    out = {}
    for seq, key, kind, compound, state, ts, figures in conn.execute(
        "SELECT seq, key, kind, compound, state, ts_ms, figures FROM early_warnings"
        " WHERE seq IN (SELECT max(seq) FROM early_warnings GROUP BY key) ORDER BY seq"
    ):
        if state == "raised":
            out[key] = {"seq": seq, "key": key, "kind": kind, "compound": compound, "since_ms": ts,
                        "figures": json.loads(figures)}  # fmt: skip
    return out


def publish(conn: sqlite3.Connection, now_ms: int, current: dict[str, Warning_]) -> tuple[int, int]:
    """Append ``raised`` for new warnings and ``cleared`` for gone ones (writer thread)."""
    before = raised(conn)
    rows = [
        (k, w["kind"], w["compound"], "raised", now_ms, json.dumps(w["figures"], ensure_ascii=False))
        for k, w in current.items()
        if k not in before
    ]
    gone = [(k, b["kind"], b["compound"], "cleared", now_ms, json.dumps(b["figures"], ensure_ascii=False))
            for k, b in before.items() if k not in current]  # fmt: skip
    conn.executemany(
        "INSERT INTO early_warnings(key, kind, compound, state, ts_ms, figures) VALUES (?,?,?,?,?,?)", rows + gone
    )
    return len(rows), len(gone)


def feed(conn: sqlite3.Connection, after: int, limit: int) -> dict[str, Any]:
    items = [
        {"seq": s, "key": k, "kind": kind, "compound": c, "state": st, "ts_ms": ts, "figures": json.loads(f)}
        for s, k, kind, c, st, ts, f in conn.execute(
            "SELECT seq, key, kind, compound, state, ts_ms, figures FROM early_warnings WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (after, limit),
        )
    ]
    return {"items": items, "next_cursor": items[-1]["seq"] if items else after, "has_more": len(items) == limit}


class WarningWatcher(ReaderThread):
    thread_name = "early-warning"

    def __init__(
        self,
        db_path: str | Path,
        cfg: SiteConfig,
        *,
        call: Callable[[Callable[[sqlite3.Connection, BatchResult, int], Any]], Future[Any]],
    ) -> None:
        super().__init__(db_path)
        self.cfg = cfg
        self.call = call
        self.runs = 0

    def run_once(self) -> tuple[int, int]:
        current = compute(self._read(), self.cfg, time.time_ns() // 1_000_000)
        result: tuple[int, int] = self.call(lambda c, r, now: publish(c, now, current)).result(30)
        self.runs += 1
        return result

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                raised_n, cleared_n = self.run_once()
                if raised_n or cleared_n:
                    log.info("early warning: %d raised, %d cleared", raised_n, cleared_n)
            except Exception:
                log.exception("early-warning pass failed; next pass as scheduled")
            self._wake.wait(self.cfg.resident_loop.warnings.every_s)
            self._wake.clear()
