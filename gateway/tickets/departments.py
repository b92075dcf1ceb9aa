"""Departments on the scorecard: how each answers the whistle (吹哨报到), per period.

The street's power to summon a department comes with the right to evaluate how it answers
(绩效考核权). A **whistle** is an assignment dispatched ``by: whistle`` (the ladder's department
rung or a manual whistle): the department's team becomes the assignee with the SLA of the
incident's category and severity, timed from the whistle like any dispatch.

- ``whistles``: whistle assignments dispatched in the period;
- ``arrived``, ``arrival_p50_s``, ``arrival_p90_s``: whistle → on site (``start``); a department
  that resolved without marking "on site" arrived when it resolved;
- ``resolved``, ``resolve_p50_s``, ``resolve_p90_s``: whistle → resolved by the department;
- ``arrival_on_time_pct``: arrivals within the on-site deadline, over the whistles with such a
  deadline that either arrived or whose deadline passed; ``resolve_on_time_pct`` likewise;
- ``on_time_pct``: whistles without any ``sla_missed`` while the department held them (the
  scorecard's SLA rule).

Percentiles are nearest-rank (``scorecard.percentile``), like the rest of the scorecard. Every
department team of the site is listed, whistled or not. The same reconstruction gives the on-site
times the scorecard has no column for (``on_site_figures``), sent centrally with the score rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.tickets import scorecard

if TYPE_CHECKING:
    from edge_config import SiteConfig


@dataclass
class Stint:
    """One assignment with every stage time (scorecard.Assignment has no on-site time)."""

    incident_id: str
    team: str | None
    by: str
    dispatched_ms: int
    due: dict[str, int] = field(default_factory=dict)
    accepted_ms: int | None = None
    on_site_ms: int | None = None
    resolved_ms: int | None = None
    missed: bool = False
    grid: str | None = None
    compound: str | None = None

    @property
    def arrived_ms(self) -> int | None:
        return self.on_site_ms if self.on_site_ms is not None else self.resolved_ms


def stints(conn: sqlite3.Connection) -> list[Stint]:
    """Every assignment, from the append-only timeline (a new dispatch ends the previous one)."""
    where = dict(((str(i), (g, c)) for i, g, c in conn.execute("SELECT id, grid, compound FROM incidents")))
    cur: dict[str, Stint] = {}
    out: list[Stint] = []
    for iid, kind, ts, data in conn.execute(
        "SELECT incident_id, kind, ts_ms, data FROM incident_events WHERE kind IN ('dispatched', 'sla_missed',"
        " 'state_changed') ORDER BY seq"
    ):
        d = json.loads(data)
        if kind == "dispatched":
            due = d.get("due_ms") if isinstance(d.get("due_ms"), dict) else {}
            grid, compound = where.get(iid, (None, None))
            s = Stint(iid, d.get("team"), str(d.get("by") or "auto"), int(ts), dict(due), grid=grid, compound=compound)
            cur[iid] = s
            out.append(s)
            continue
        s_ = cur.get(iid)
        if s_ is None:
            continue
        if kind == "sla_missed":
            s_.missed = True
        elif d.get("to") == "accepted" and s_.accepted_ms is None:
            s_.accepted_ms = int(ts)
        elif d.get("to") == "in_progress" and s_.on_site_ms is None:
            s_.on_site_ms = int(ts)
        elif d.get("to") == "resolved" and d.get("action") == "resolve" and s_.resolved_ms is None:
            s_.resolved_ms = int(ts)
    return out


def _on_time_pct(items: list[Stint], stage: str, done: Callable[[Stint], int | None], now_ms: int) -> float | None:
    judged = on_time = 0
    for s in items:
        due = s.due.get(stage)
        at = done(s)
        if due is None or (at is None and now_ms <= due):
            continue  # no deadline for this stage, or still running
        judged += 1
        on_time += 1 if at is not None and at <= due else 0
    return 100.0 * on_time / judged if judged else None


def figures(items: list[Stint], now_ms: int) -> dict[str, Any]:
    arrive = [(s.arrived_ms - s.dispatched_ms) / 1000 for s in items if s.arrived_ms is not None]
    resolve = [(s.resolved_ms - s.dispatched_ms) / 1000 for s in items if s.resolved_ms is not None]
    return {
        "whistles": len(items),
        "arrived": len(arrive),
        "resolved": len(resolve),
        "arrival_p50_s": scorecard.percentile(arrive, 0.5),
        "arrival_p90_s": scorecard.percentile(arrive, 0.9),
        "resolve_p50_s": scorecard.percentile(resolve, 0.5),
        "resolve_p90_s": scorecard.percentile(resolve, 0.9),
        "arrival_on_time_pct": _on_time_pct(items, "on_site", lambda s: s.arrived_ms, now_ms),
        "resolve_on_time_pct": _on_time_pct(items, "resolve", lambda s: s.resolved_ms, now_ms),
        "on_time_pct": 100.0 * sum(1 for s in items if not s.missed) / len(items) if items else None,
    }


def compute(
    conn: sqlite3.Connection,
    cfg: SiteConfig,
    period: str,
    now_ms: int,
    *,
    visible: Callable[[Stint], bool] | None = None,
) -> list[dict[str, Any]]:
    """One row per department of the site for ``period`` (YYYY-MM, YYYY-Qn, YYYY); ``visible``
    keeps only the whistles a scoped caller may see."""
    start, end = scorecard.period_bounds(period, ZoneInfo(cfg.gateway.timezone))
    names = {t.department: t.name for t in cfg.teams if t.kind == "department" and t.department}
    groups: dict[str, list[Stint]] = defaultdict(list)
    for s in stints(conn):
        if s.by != "whistle" or not start <= s.dispatched_ms < end or (visible is not None and not visible(s)):
            continue
        team = cfg.team(s.team) if s.team else None
        dep = team.department if team is not None and team.department else None
        if dep:
            groups[dep].append(s)
            names.setdefault(dep, team.name if team is not None else dep)
    return [
        {"period": period, "department": dep, "name": names[dep], **figures(groups.get(dep, []), min(now_ms, end))}
        for dep in sorted(names)
    ]


def on_site_figures(conn: sqlite3.Connection, cfg: SiteConfig, period: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Dispatch → on site (p50, p90) per scorecard entity (team, grid, property company, compound,
    department) for ``period``: the column the scorecard leaves out, for the central dashboards."""
    start, end = scorecard.period_bounds(period, ZoneInfo(cfg.gateway.timezone))
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for s in stints(conn):
        if not start <= s.dispatched_ms < end or s.on_site_ms is None:
            continue
        ents = scorecard.entities_of(cfg, s.team)
        if s.compound and any(e.kind == "property_company" for e in ents):
            ents.append(scorecard.Entity("compound", s.compound, s.compound))
        for e in ents:
            groups[(e.kind, e.id)].append((s.on_site_ms - s.dispatched_ms) / 1000)
    return {
        k: {"on_site_p50_s": scorecard.percentile(v, 0.5), "on_site_p90_s": scorecard.percentile(v, 0.9)}
        for k, v in groups.items()
    }


def to_table(rows: list[dict[str, Any]]) -> str:
    """The CLI's table (times in minutes, shares in percent)."""
    cols = [
        ("department", "name"),
        ("whistles", "whistles"),
        ("arr p50", "arrival_p50_s"),
        ("arr p90", "arrival_p90_s"),
        ("res p50", "resolve_p50_s"),
        ("res p90", "resolve_p90_s"),
        ("arr on time%", "arrival_on_time_pct"),
        ("res on time%", "resolve_on_time_pct"),
        ("SLA%", "on_time_pct"),
    ]
    period = rows[0]["period"] if rows else ""
    body = [[_cell(k, r.get(k)) for _, k in cols] for r in rows]
    head = [h for h, _ in cols]
    widths = [max(scorecard._width(x) for x in [head[i], *(b[i] for b in body)]) for i in range(len(cols))]
    lines = [f"departments {period} (吹哨报到; times from the whistle, minutes)"]
    lines.append("  ".join(scorecard._pad(h, w) for h, w in zip(head, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(scorecard._pad(x, w) for x, w in zip(b, widths, strict=True)) for b in body]
    if not body:
        lines.append("(no department teams in the site config)")
    return "\n".join(lines)


# Any: a row value (number, None or str)
def _cell(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key.endswith("_s"):
        return f"{v / 60:.1f}"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)
