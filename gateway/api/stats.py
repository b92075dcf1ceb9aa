"""Figures for the charts (reads only): incidents per day by category, SLA misses per day, time to
accept and to resolve per team (median, p90), open incidents by age. Scoped like the lists
(access.incident_scope_sql); counts only, so nothing personal leaves."""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from gateway.api import access, db
from gateway.api.auth import Principal
from gateway.core import incidents as inc

AGE_BUCKETS_H = (1, 4, 24, 24 * 7)  # <1 h, 1-4 h, 4-24 h, 1-7 days, older


def _p(values: list[float], q: float) -> float | None:
    """Nearest rank, as the scorecard (gateway/tickets/scorecard.py)."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def _days(now_ms: int, days: int, tz: ZoneInfo) -> list[int]:
    today = dt.datetime.fromtimestamp(now_ms / 1000, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return [int((today - dt.timedelta(days=days - 1 - i)).timestamp() * 1000) for i in range(days)]


def _index(starts: list[int], ts: int) -> int:
    """Index of the day containing ts (starts ascending), -1 before the first."""
    lo, hi = 0, len(starts) - 1
    if ts < starts[0]:
        return -1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= ts:
            lo = mid
        else:
            hi = mid - 1
    return lo


def incident_stats(conn: sqlite3.Connection, p: Principal, tz: ZoneInfo, now_ms: int, days: int) -> dict[str, Any]:
    has_tickets = bool(db._extra_cols(conn))
    scope, params = access.incident_scope_sql(p, has_tickets)
    join = " LEFT JOIN tickets t ON t.incident_id = incidents.id" if has_tickets else ""
    starts = _days(now_ms, days, tz)
    per_day: dict[str, list[int]] = {c: [0] * days for c in inc.CATEGORIES}
    acc: dict[str, list[float]] = defaultdict(list)
    res: dict[str, list[float]] = defaultdict(list)
    team_n: dict[str, int] = defaultdict(int)
    cols = "incidents.first_ms, incidents.category" + (
        ", t.team, t.dispatched_ms, t.accepted_ms, t.resolved_ms" if has_tickets else ""
    )
    for r in conn.execute(
        f"SELECT {cols} FROM incidents{join} WHERE incidents.first_ms >= ? AND {scope}", [starts[0], *params]
    ):
        i = _index(starts, int(r[0]))
        if i >= 0 and r[1] in per_day:
            per_day[r[1]][i] += 1
        if has_tickets and r[2] and r[3]:
            team_n[r[2]] += 1
            if r[4]:
                acc[r[2]].append((r[4] - r[3]) / 1000)
            if r[5]:
                res[r[2]].append((r[5] - r[3]) / 1000)
    missed = [0] * days
    for (ts,) in conn.execute(
        "SELECT e.ts_ms FROM incident_events e JOIN incidents ON incidents.id = e.incident_id"
        f"{join} WHERE e.kind = 'sla_missed' AND e.ts_ms >= ? AND {scope}",
        [starts[0], *params],
    ):
        i = _index(starts, int(ts))
        if i >= 0:
            missed[i] += 1
    states = sorted(inc.OPEN_STATES)
    ages: dict[str, list[int]] = {c: [0] * (len(AGE_BUCKETS_H) + 1) for c in inc.CATEGORIES}
    for first, cat in conn.execute(
        f"SELECT incidents.first_ms, incidents.category FROM incidents{join}"
        f" WHERE incidents.state IN ({','.join('?' * len(states))}) AND {scope}",
        [*states, *params],
    ):
        h = (now_ms - int(first)) / 3_600_000
        b = next((k for k, limit in enumerate(AGE_BUCKETS_H) if h < limit), len(AGE_BUCKETS_H))
        if cat in ages:
            ages[cat][b] += 1
    teams = [
        {
            "team": team,
            "assignments": n,
            "accept_p50_s": _p(acc[team], 0.5),
            "accept_p90_s": _p(acc[team], 0.9),
            "resolve_p50_s": _p(res[team], 0.5),
            "resolve_p90_s": _p(res[team], 0.9),
        }
        for team, n in sorted(team_n.items(), key=lambda kv: -kv[1])
    ]
    return {
        "day_starts_ms": starts,
        "per_day": per_day,
        "sla_missed_per_day": missed,
        "teams": teams,
        "open_by_age": {"buckets_h": list(AGE_BUCKETS_H), "counts": ages},
    }
