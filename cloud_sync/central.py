"""Points for the district's dashboards (docs/central.md, schema in docs/sync.md).

The incident feed and ``edge_incident`` tell what happened; a street office also asks what *is*
(open incidents now, life-safety calls nobody accepted yet, parking, offline devices, silent
gateways) and how fast each stage went. Neither InfluxQL nor PromQL can rebuild "open now" or
"minutes from dispatch to acceptance" from a stream of events with the incident id in a field,
so the gateway, which has the answer in its store, sends it:

- ``edge_ticket``      one point per stage of an assignment (dispatched, accept, on_site, resolve)
                       with the seconds since its dispatch and whether it kept the SLA; built in
                       the transaction that records the stage (incident class: never thinned).
- snapshots every ``sync.snapshot_s`` (health class: never thinned): ``edge_open`` (open incidents
  per compound, category, severity; zeros for what closed since the last one, so ``last()`` is
  right), ``edge_unaccepted`` (each open life-safety incident not accepted yet, tag ``incident``:
  the one place an incident id is a tag, bounded by what is open), ``edge_parking`` (per area),
  ``edge_devices`` (per building), ``gateway_health``.
- ``edge_warning``     each raise and clear of an early warning (``early_warnings`` rows, in order).
- ``edge_score``, ``edge_department``: quarter-to-date scorecard rows, computed above the chain
  (gateway/district.py) and handed to :meth:`cloud_sync.outbox.OutboxProcessor.add_points`.

Everything here returns ``(series, fields, ts_ms)``; the outbox stage gives each its row id and
unique millisecond, like any other point.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cloud_sync import lineproto as lp
from gateway import __version__

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.core.contract import IncidentEvent

Point = tuple[str, str, int]  # (measurement + tags, field set, ts_ms)

M_TICKET = "edge_ticket"
M_OPEN = "edge_open"
M_UNACCEPTED = "edge_unaccepted"
M_PARKING = "edge_parking"
M_DEVICES = "edge_devices"
M_GATEWAY = "gateway_health"
M_WARNING = "edge_warning"
M_SCORE = "edge_score"
M_DEPARTMENT = "edge_department"

OPEN_STATES = ("new", "dispatched", "accepted", "in_progress", "reopened")
NOT_ACCEPTED = ("new", "dispatched", "reopened")
# state_changed target -> the assignment stage it completes ("resolved" only by the resolve action)
STAGE_OF = {"accepted": "accept", "in_progress": "on_site", "resolved": "resolve"}
OPEN_KEYS_META = "sync_open_series"  # the edge_open series sent non-zero last time (zeros follow)
WARNING_SEQ_META = "sync_warning_seq"  # early_warnings rows up to this seq are in the outbox
BROKER_DROPS = "broker_dropped_messages"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


# --- ticket stages -------------------------------------------------------------------------------
def _department_of(cfg: SiteConfig, team: str | None) -> str | None:
    if not team or team.startswith("grid:"):
        return None
    t = cfg.team(team)
    return t.department if t is not None and t.kind == "department" else None


def _last_dispatch(conn: sqlite3.Connection, incident_id: str) -> tuple[int, dict[str, Any]] | None:
    row = conn.execute(
        "SELECT ts_ms, data FROM incident_events WHERE incident_id=? AND kind='dispatched' ORDER BY seq DESC LIMIT 1",
        (incident_id,),
    ).fetchone()
    return (int(row[0]), json.loads(row[1])) if row is not None else None


def ticket_points(
    conn: sqlite3.Connection,
    cfg: SiteConfig,
    tags_of: Any,
    events: Iterable[IncidentEvent],
) -> list[Point]:
    """One ``edge_ticket`` point per assignment stage among ``events`` (same transaction).

    ``tags_of(conn, ev)`` gives the incident's location and category tags (the outbox stage's own
    lookup, so both measurements tag an incident alike). Durations count from the assignment's
    dispatch (a reassignment or whistle starts a new one, as the SLA deadlines do).
    """
    out: list[Point] = []
    for ev in events:
        if ev.kind == "dispatched":
            stage = "dispatched"
        elif ev.kind == "state_changed":
            to = ev.data.get("to")
            stage = STAGE_OF.get(str(to), "")
            if to == "resolved" and ev.data.get("action") != "resolve":
                stage = ""  # resolved by the rules (condition cleared): no one's work to time
        else:
            stage = ""
        if not stage:
            continue
        found = (ev.ts_ms, dict(ev.data)) if ev.kind == "dispatched" else _last_dispatch(conn, ev.incident_id)
        if found is None:
            continue
        d_ms, d = found
        team = d.get("team") if isinstance(d.get("team"), str) else None
        t: dict[str, str | None] = dict(tags_of(conn, ev))
        t.pop("kind", None)
        t.update(
            {"stage": stage, "team": team, "department": _department_of(cfg, team), "by": str(d.get("by") or "auto")}
        )
        f: dict[str, Any] = {"since_dispatch_s": round((ev.ts_ms - d_ms) / 1000.0, 3)}
        raw = d.get("due_ms")
        due: dict[str, Any] = raw if isinstance(raw, dict) else {}
        due_ms = due.get(stage) if stage != "dispatched" else None
        if isinstance(due_ms, int):
            f["due_s"] = round((due_ms - d_ms) / 1000.0, 3)
            f["on_time"] = 1.0 if ev.ts_ms <= due_ms else 0.0
        fields = f"incident_id={lp.string_field(ev.incident_id)},n=1i," + lp.fields(f)
        out.append((M_TICKET + lp.tags(t), fields, ev.ts_ms))
    return out


# --- snapshots -----------------------------------------------------------------------------------
def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return str(row[0]) if row is not None else None


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value)
    )


def _compound(cfg: SiteConfig, compound: str | None, building: str | None) -> str:
    """The incident's compound, else its building's (as ``edge_incident`` tags it)."""
    if compound:
        return compound
    c = cfg.compound_of_building(building) if building else None
    return c.id if c is not None else ""


def open_points(conn: sqlite3.Connection, cfg: SiteConfig, site: Mapping[str, str | None], now_ms: int) -> list[Point]:
    """Open incidents per compound, category and severity; 0 for a series that was non-zero last time."""
    marks = ",".join("?" * len(OPEN_STATES))
    counts: dict[tuple[str, str, str], int] = {}
    for compound, building, category, severity, n in conn.execute(
        f"SELECT compound, building, category, severity, count(*) FROM incidents WHERE state IN ({marks})"
        " GROUP BY 1, 2, 3, 4",
        OPEN_STATES,
    ):
        key = (_compound(cfg, compound, building), str(category), str(severity))
        counts[key] = counts.get(key, 0) + int(n)
    before = json.loads(_meta(conn, OPEN_KEYS_META) or "[]")
    for key in before:
        counts.setdefault((key[0], key[1], key[2]), 0)
    _set_meta(conn, OPEN_KEYS_META, json.dumps(sorted([list(k) for k, n in counts.items() if n])))
    out: list[Point] = []
    for (compound, category, severity), n in sorted(counts.items()):
        t = {**site, "compound": compound or None, "category": category, "severity": severity}
        out.append((M_OPEN + lp.tags(t), f"open={float(n)!r}", now_ms))
    return out


def unaccepted_points(
    conn: sqlite3.Connection, cfg: SiteConfig, site: Mapping[str, str | None], now_ms: int
) -> list[Point]:
    """Each open life-safety incident nobody accepted yet (oldest first), with its age."""
    marks = ",".join("?" * len(NOT_ACCEPTED))
    out: list[Point] = []
    for iid, category, typ, severity, grid, compound, building, first_ms, level in conn.execute(
        "SELECT i.id, i.category, i.type, i.severity, i.grid, i.compound, i.building, i.first_ms,"
        f" coalesce(t.level, 0) FROM incidents i LEFT JOIN tickets t ON t.incident_id = i.id"
        f" WHERE i.life_safety=1 AND i.state IN ({marks}) ORDER BY i.first_ms",
        NOT_ACCEPTED,
    ):
        t = {
            **site,
            "incident": str(iid),
            "category": category,
            "incident_type": typ,
            "severity": severity,
            "grid": grid,
            "compound": _compound(cfg, compound, building) or None,
            "building": building,
        }
        f = {"age_s": round((now_ms - int(first_ms)) / 1000.0, 3), "created_s": int(first_ms) / 1000.0}
        out.append((M_UNACCEPTED + lp.tags(t), lp.fields(f) + f",level={float(level)!r}", now_ms))
    return out


def parking_points(
    conn: sqlite3.Connection, cfg: SiteConfig, site: Mapping[str, str | None], now_ms: int
) -> list[Point]:
    """Per parking area: spaces, spaces a sensor reports occupied now, and the share."""
    sensor_of: dict[str, list[str]] = {}
    for d in cfg.owned_devices():
        if d.location.parking_space:
            sensor_of.setdefault(d.location.parking_space, []).append(d.id)
    values = {
        str(dev): json.loads(vals)
        for dev, vals in conn.execute("SELECT device_id, last_values FROM devices")
        if isinstance(vals, str)
    }
    out: list[Point] = []
    for area in cfg.site.parking_areas:
        spaces = len(area.spaces)
        occupied = sum(
            1
            for sp in area.spaces
            if any(values.get(dev, {}).get("vehicle_present") is True for dev in sensor_of.get(sp.id, []))
        )
        t = {**site, "compound": area.compound, "area": area.id, "area_name": area.name}
        pct = 100.0 * occupied / spaces if spaces else 0.0
        f = {"spaces": float(spaces), "occupied": float(occupied), "occupied_pct": round(pct, 3)}
        out.append((M_PARKING + lp.tags(t), lp.fields(f), now_ms))
    return out


def device_points(
    conn: sqlite3.Connection,
    cfg: SiteConfig,
    site: Mapping[str, str | None],
    buildings: Mapping[str, str | None],
    now_ms: int,
) -> list[Point]:
    """Per building: configured devices, those offline now (``online = 0``), and the share.
    ``buildings`` maps each device to its building (residents' devices: the resident's); devices of
    no building (parking sensors, gates) are grouped per compound without a building tag."""
    online = {str(d): o for d, o in conn.execute("SELECT device_id, online FROM devices")}
    groups: dict[tuple[str | None, str | None], list[int]] = {}
    for d in cfg.owned_devices():
        b = buildings.get(d.id)
        compound: str | None = None
        if b:
            c = cfg.compound_of_building(b)
            compound = c.id if c is not None else None
        elif d.location.parking_space and (found := cfg.parking_space(d.location.parking_space)) is not None:
            compound = found[0].compound
        g = groups.setdefault((b, compound), [0, 0])
        g[0] += 1
        g[1] += 1 if online.get(d.id) == 0 else 0
    out: list[Point] = []
    for (b, compound), (n, off) in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or "")):
        grid = cfg.grid_of_building(b) if b else None
        t = {**site, "building": b, "compound": compound, "grid": grid.id if grid is not None else None}
        f = {"devices": float(n), "offline": float(off), "offline_pct": round(100.0 * off / n, 3) if n else 0.0}
        out.append((M_DEVICES + lp.tags(t), lp.fields(f), now_ms))
    return out


def gateway_point(
    conn: sqlite3.Connection,
    site: Mapping[str, str | None],
    now_ms: int,
    *,
    uptime_s: float,
    quota_bytes: int,
    oldest: int | None,
) -> Point:
    """Last seen (the gateway's clock), sync backlog and oldest unsent age (``oldest``: creation
    time of the oldest unsent point), broker drops, store fill."""
    totals = {int(p): int(r) for p, r in conn.execute("SELECT prio, rows FROM outbox_totals")}
    drops = conn.execute("SELECT value FROM counters WHERE name=?", (BROKER_DROPS,)).fetchone()
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0]) - int(
        conn.execute("PRAGMA freelist_count").fetchone()[0]
    )
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    f = {
        "seen_s": now_ms / 1000.0,
        "uptime_s": round(uptime_s, 3),
        "backlog_points": float(sum(totals.values())),
        "backlog_events": float(totals.get(0, 0)),  # prio 0: incident class
        "oldest_unsent_age_s": max(0, now_ms - oldest) / 1000.0 if oldest is not None else 0.0,
        "broker_drops": float(drops[0]) if drops is not None else 0.0,
        "store_fill_pct": round(100.0 * pages * page_size / quota_bytes, 3) if quota_bytes else 0.0,
    }
    return (M_GATEWAY + lp.tags({**site, "version": __version__}), lp.fields(f), now_ms)


def warning_points(conn: sqlite3.Connection, site: Mapping[str, str | None]) -> list[Point]:
    """``edge_warning`` for every early_warnings row not sent yet (raise and clear, in order);
    moves the cursor in the caller's transaction. Numeric figures become fields (``raised`` is
    1 or 0), text figures string fields; lists stay on the gateway."""
    after = int(_meta(conn, WARNING_SEQ_META) or 0)
    try:
        rows = conn.execute(
            "SELECT seq, key, kind, compound, state, ts_ms, figures FROM early_warnings WHERE seq > ? ORDER BY seq",
            (after,),
        ).fetchall()
    except sqlite3.Error:  # a store before the residents' migration
        return []
    out: list[Point] = []
    for seq, key, kind, compound, state, ts, figures in rows:
        fig = json.loads(figures)
        f: dict[str, Any] = {"raised": 1.0 if state == "raised" else 0.0}
        for k, v in fig.items():
            if (x := _num(v)) is not None:
                f[k] = x
            elif isinstance(v, str):
                f[k] = v
        t = {**site, "compound": compound, "kind": kind, "warning": key}
        out.append((M_WARNING + lp.tags(t), f"seq={int(seq)}i,n=1i," + lp.fields(f), int(ts)))
        after = int(seq)
    if rows:
        _set_meta(conn, WARNING_SEQ_META, str(after))
    return out


# --- quarter-to-date figures (computed above the chain, gateway/district.py) ---------------------
SCORE_FIELDS = (
    "assignments",
    "accepted",
    "resolved",
    "accept_p50_s",
    "accept_p90_s",
    "on_site_p50_s",
    "on_site_p90_s",
    "resolve_p50_s",
    "resolve_p90_s",
    "sla_pct",
    "escalations",
    "reopen_rate_pct",
    "rating_mean",
    "response_rate_pct",
    "complaint_handling",
    "owner_evaluation",
    "contract_fulfilment",
    "on_site_inspection",
    "score",
)
SCORE_FLAGS = ("summoned", "yellow_card", "red_card", "low_response")
DEPARTMENT_FIELDS = (
    "whistles",
    "arrived",
    "resolved",
    "arrival_p50_s",
    "arrival_p90_s",
    "resolve_p50_s",
    "resolve_p90_s",
    "arrival_on_time_pct",
    "resolve_on_time_pct",
    "on_time_pct",
)


def score_points(
    site: Mapping[str, str | None], period: str, rows: Iterable[Mapping[str, Any]], now_ms: int
) -> list[Point]:
    """One ``edge_score`` point per scorecard row (property company, compound, team, grid, department)."""
    out: list[Point] = []
    for r in rows:
        f = {k: float(r[k]) for k in SCORE_FIELDS if _num(r.get(k)) is not None}
        f.update({k: 1.0 if r.get(k) else 0.0 for k in SCORE_FLAGS})
        t = {**site, "kind": str(r["kind"]), "entity": str(r["entity"]), "name": str(r.get("name") or r["entity"])}
        out.append((M_SCORE + lp.tags({**t, "period": period}), lp.fields(f), now_ms))
    return out


def department_points(
    site: Mapping[str, str | None], period: str, rows: Iterable[Mapping[str, Any]], now_ms: int
) -> list[Point]:
    """One ``edge_department`` point per department row (gateway/tickets/departments.py)."""
    out: list[Point] = []
    for r in rows:
        f = {k: float(r[k]) for k in DEPARTMENT_FIELDS if _num(r.get(k)) is not None}
        t = {**site, "department": str(r["department"]), "name": str(r.get("name") or r["department"])}
        out.append((M_DEPARTMENT + lp.tags({**t, "period": period}), lp.fields(f), now_ms))
    return out
