"""A year of incidents for a community, written straight into a fresh store (bench/history.py and
tests/test_history.py).

Deterministic for a seed. The store is made by the gateway's own migrations, so it has exactly the
indexes, triggers and FTS table a deployed gateway has; only the rows are written here, in one
transaction, as the ticket loop would have written them over a year: ``created``, ``dispatched``
(team and person, as gateway/tickets/scorecard.py reads them), ``state_changed`` to accepted (a
note) and resolved (what was done), ``sla_missed`` for some, ``evaluated`` with a rating for some,
and a ticket row each. Places, teams and people come from the example community.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_config import SiteConfig, load_config
from gateway.core import store as st

EXAMPLE = Path(__file__).resolve().parent.parent / "edge_config" / "examples" / "community.yaml"
DAY_MS = 86_400_000

TYPES: dict[str, list[tuple[str, str]]] = {
    "parking": [("parking_overstay", "warning"), ("parking_fire_lane", "major"), ("parking_no_parking", "minor")],
    "security": [("door_held_open", "minor"), ("door_forced", "major"), ("tamper", "minor"), ("intrusion", "major")],
    "device_health": [("device_offline", "warning"), ("battery_low", "warning"), ("gate_fault", "minor")],
    "eldercare": [("sos", "critical"), ("fall", "critical"), ("inactivity", "major")],
}
WEIGHTS = {"parking": 35, "security": 30, "device_health": 25, "eldercare": 10}
NOTES = [
    "已到现场查看",
    "车主已挪车",
    "联系车主未接通，已贴告知单",
    "门已关好，门禁正常",
    "误报，风吹门动",
    "已通知物业维修",
    "楼道堆放杂物已清理",
    "更换电池后恢复在线",
    "老人安全，已电话回访家属",
    "道闸复位后恢复正常",
    "消防通道已清空",
    "Replaced the sensor battery",
]
DONE = ["处理完毕", "已恢复正常", "已劝离", "已更换设备", "家属已到场", "已拖车"]


@dataclass
class Generated:
    incidents: int
    events: int
    notes: int
    seconds: float


def _places(cfg: SiteConfig) -> tuple[list[tuple[str, str, str, list[str]]], list[tuple[str, str]]]:
    """(building, grid, compound, units) and (space, compound) of the site."""
    buildings = [(b.id, b.grid, c.id, [u.id for u in b.units]) for c in cfg.site.compounds for b in c.buildings]
    spaces = [(s.id, a.compound) for a in cfg.site.parking_areas for s in a.spaces]
    return buildings, spaces


def _devices(cfg: SiteConfig) -> dict[tuple[str | None, str | None], list[str]]:
    """(building, unit) or (space, None) -> the ids of the devices there (an incident names its source)."""
    out: dict[tuple[str | None, str | None], list[str]] = {}
    for d in cfg.devices:
        loc = d.location
        key = (loc.parking_space, None) if loc.parking_space else (loc.building, loc.unit)
        if key[0] is not None and d.resident is None:
            out.setdefault(key, []).append(d.id)
    return out


def _team(cfg: SiteConfig, category: str, compound: str) -> tuple[str, str, str]:
    """(team, person, role) the incident is dispatched to."""
    if category == "eldercare":
        t = next(t for t in cfg.teams if t.kind == "eldercare")
        return t.id, t.members[0], "eldercare_worker"
    if category == "device_health":
        t = next(t for t in cfg.teams if t.kind == "maintenance")
        return t.id, t.members[0], "maintenance"
    t = next((t for t in cfg.teams if t.kind == "property_duty" and t.compound == compound), None)
    if t is None:
        t = next(t for t in cfg.teams if t.kind == "property_duty")
    return t.id, t.members[0], "property_staff"


def generate(path: str | Path, n: int = 100_000, *, seed: int = 20, now_ms: int | None = None) -> Generated:
    """Write ``n`` incidents over the year before ``now_ms`` into a new store at ``path``."""
    t0 = time.monotonic()
    cfg = load_config(EXAMPLE)
    rng = random.Random(seed)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    start = now - 365 * DAY_MS
    buildings, spaces = _places(cfg)
    devices = _devices(cfg)
    cats = list(WEIGHTS)
    weights = [WEIGHTS[c] for c in cats]
    conn = st.connect(path)
    st.migrate(conn)
    conn.execute("PRAGMA synchronous=OFF")  # a generated store: speed over durability
    uid = conn.execute("SELECT value FROM meta WHERE key='store_uid'").fetchone()[0]
    times = sorted(rng.randrange(start, now - 60_000) for _ in range(n))
    incidents: list[tuple[Any, ...]] = []
    tickets: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    notes = 0
    for seq, first in enumerate(times, start=1):
        cat = rng.choices(cats, weights)[0]
        typ, sev = rng.choice(TYPES[cat])
        iid = f"{cfg.gateway.id}-{uid}-{seq}"
        building = unit = space = None
        resident = None
        if cat == "parking":
            space, compound = rng.choice(spaces)
            grid = None
        else:
            building, grid, compound, units = rng.choice(buildings)
            unit = rng.choice(units) if units else None
            if cat == "eldercare" and cfg.residents:
                r = rng.choice(cfg.residents)
                building, unit, resident = r.building, r.unit, r.id
                grid = next(b[1] for b in buildings if b[0] == building)
                compound = next(b[2] for b in buildings if b[0] == building)
        team, person, role = _team(cfg, cat, compound)
        here = devices.get((space, None) if space else (building, unit)) or []
        source = [rng.choice(here)] if here and resident is None else []
        age = now - first
        recent = age < 3 * DAY_MS
        ts = first + rng.randrange(5_000, 60_000)
        evs: list[tuple[int, str, str, str | None, dict[str, Any]]] = [
            (first, "created", "rules", None, {"severity": sev}),
            (ts, "dispatched", "tickets", None, {"team": team, "person": person, "person_role": role}),
        ]
        state = "dispatched"
        accepted = resolved = rating = None
        missed = rng.random() < 0.08
        if missed:
            evs.append((ts + 300_000, "sla_missed", "tickets", None, {"stage": "accept"}))
        if not recent or rng.random() < 0.5:
            accepted = ts + rng.randrange(20_000, 900_000 if missed else 240_000)
            note = rng.choice(NOTES) + (f" #{rng.randrange(1000)}" if rng.random() < 0.3 else "")
            evs.append(
                (
                    accepted,
                    "state_changed",
                    person,
                    role,
                    {"from": "dispatched", "to": "accepted", "action": "accept", "note": note},
                )
            )
            state = "accepted"
            notes += 1
            if not recent or rng.random() < 0.5:
                resolved = accepted + rng.randrange(60_000, 7_200_000)
                done = rng.choice(DONE)
                evs.append(
                    (
                        resolved,
                        "state_changed",
                        person,
                        role,
                        {"from": "accepted", "to": "resolved", "action": "resolve", "what_done": done},
                    )
                )
                state = "resolved"
                notes += 1
                if rng.random() < 0.4:
                    rating = rng.choice((5, 5, 5, 4, 4, 3, 2, 1))
                    evs.append(
                        (
                            resolved + 3_600_000,
                            "state_changed",
                            "resident",
                            None,
                            {"from": "resolved", "to": "evaluated", "action": "evaluate", "rating": rating},
                        )
                    )
                    state = "evaluated"
                elif rng.random() < 0.5:
                    state = "closed"
                    evs.append(
                        (resolved + 86_400_000, "state_changed", "tickets", None, {"from": "resolved", "to": "closed"})
                    )
        last = evs[-1][0]
        open_key = None if state in ("resolved", "evaluated", "closed") else f"{iid}|{typ}"
        incidents.append(
            (
                iid,
                seq,
                cat,
                typ,
                sev,
                state,
                f"{iid}|{typ}",
                open_key,
                int(typ in ("sos", "fall")),
                grid,
                compound,
                building,
                unit,
                space,
                json.dumps(source),
                first,
                first,
                1,
                resident,
                first,
                last,
            )
        )
        tickets.append((iid, person, team, role, ts, accepted, resolved, rating, last))
        events += [(iid, t, kind, actor, r, json.dumps(d, ensure_ascii=False)) for t, kind, actor, r, d in evs]
    with st.transaction(conn):
        conn.executemany(
            "INSERT INTO incidents(id, created_seq, category, type, severity, state, key, open_key, life_safety, grid,"
            " compound, building, unit, space, devices, first_ms, last_ms, count, resident_id, created_ms, updated_ms)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            incidents,
        )
        conn.executemany(
            "INSERT INTO tickets(incident_id, assignee, team, assignee_role, dispatched_ms, accepted_ms, resolved_ms,"
            " rating, updated_ms) VALUES (?,?,?,?,?,?,?,?,?)",
            tickets,
        )
        events.sort(key=lambda e: e[1])  # seq follows time, as the single writer assigns it
        conn.executemany(
            "INSERT INTO incident_events(incident_id, ts_ms, kind, actor, role, data) VALUES (?,?,?,?,?,?)", events
        )
    conn.close()
    return Generated(len(incidents), len(events), notes, time.monotonic() - t0)


def direct_count(path: str | Path, sql_where: str, params: tuple[Any, ...] = ()) -> int:
    """A count written by hand against the store (the tests' yardstick for the API's filters)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(
            conn.execute(
                "SELECT count(*) FROM incidents LEFT JOIN tickets t ON t.incident_id = incidents.id WHERE " + sql_where,
                params,
            ).fetchone()[0]
        )
    finally:
        conn.close()


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "history-bench.db")
    g = generate(out, int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
    print(f"{out}: {g.incidents} incidents, {g.events} events, {g.notes} notes in {g.seconds:.1f} s")
