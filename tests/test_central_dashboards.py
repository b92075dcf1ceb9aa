"""The district dashboards against real central stores (issue 22).

Three simulated gateways (own id, community file, store; tests/district_sim.py) run a day through
the real chain and sync with the real sender to VictoriaMetrics and to InfluxDB 1.x. Every query of
every panel of both dashboard flavours is executed against the server's HTTP query API and its rows
compared with figures computed here from the gateways' own stores (SQL on incidents, the timeline,
devices, outbox, counters; percentiles recomputed independently with the nearest rank): counts
exactly, times to the second, scores to two decimals. A panel that returns nothing fails.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.residents import warnings
from gateway.tickets import scorecard
from tests import grafana_queries as gq
from tests.district_sim import END_S, FROM_MS, PERIOD, SPECS, District, Gw, build
from tests.sync_servers import ServerMissing

OPEN = ("new", "dispatched", "accepted", "in_progress", "reopened")
ALL = {"street": ".*", "community": ".*", "gateway": ".*", "compound": ".*", "period": PERIOD}


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Iterator[District]:
    try:
        ds = build(tmp_path_factory.mktemp("district"))
    except ServerMissing as exc:
        pytest.fail(f"central store missing: {exc}")
    yield ds
    ds.close()


# --- figures from the gateways' stores -------------------------------------------------------------
def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def nearest_rank(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[math.ceil(p * len(s)) - 1]


@dataclass
class Stint:
    incident: str
    team: str | None
    by: str
    at: int
    due: dict[str, int]
    accepted: int | None = None
    on_site: int | None = None
    resolved: int | None = None
    missed: bool = False


def stints(db: Path) -> list[Stint]:
    """Assignments from the timeline, written here again (not the product's reconstruction)."""
    out: list[Stint] = []
    cur: dict[str, Stint] = {}
    for iid, kind, ts, data in rows(db, "SELECT incident_id, kind, ts_ms, data FROM incident_events ORDER BY seq"):
        d = json.loads(data)
        if kind == "dispatched":
            cur[iid] = Stint(iid, d.get("team"), d.get("by", "auto"), ts, d.get("due_ms", {}))
            out.append(cur[iid])
        elif iid in cur:
            s = cur[iid]
            if kind == "sla_missed":
                s.missed = True
            elif kind == "state_changed" and d["to"] == "accepted" and s.accepted is None:
                s.accepted = ts
            elif kind == "state_changed" and d["to"] == "in_progress" and s.on_site is None:
                s.on_site = ts
            elif kind == "state_changed" and d["to"] == "resolved" and d.get("action") == "resolve":
                s.resolved = ts
    return out


def stage_figures(items: list[Stint]) -> dict[str, float]:
    out: dict[str, float] = {}
    for stage, attr in (("accept", "accepted"), ("on_site", "on_site"), ("resolve", "resolved")):
        secs = [(getattr(s, attr) - s.at) / 1000 for s in items if getattr(s, attr) is not None]
        for p, name in ((0.5, "p50"), (0.9, "p90")):
            v = nearest_rank(secs, p)
            if v is not None:
                out[f"{stage}_{name}_s"] = v
    return out


def compound_of(g: Gw, compound: str | None, building: str | None) -> str:
    if compound:
        return compound
    c = g.cfg.compound_of_building(building) if building else None
    return c.id if c is not None else ""


def expected(panel: str, ds: District, only: set[str] | None = None) -> gq.Rows:
    out: gq.Rows = {}
    gws = [g for g in ds.gateways if only is None or g.gateway in only]
    if panel == "open_incidents":
        counts: dict[tuple[str, ...], float] = defaultdict(float)
        for g in gws:
            for cat, sev, n in rows(g.db, f"SELECT category, severity, count(*) FROM incidents WHERE state IN {OPEN}"
                                    " GROUP BY 1, 2"):  # fmt: skip
                counts[(cat, sev)] += n
        return {k: {"open": v} for k, v in counts.items()}
    if panel == "life_safety_unaccepted":
        for g in gws:
            for iid, first, level in rows(
                g.db,
                "SELECT i.id, i.first_ms, coalesce(t.level, 0) FROM incidents i LEFT JOIN tickets t"
                " ON t.incident_id = i.id WHERE life_safety=1 AND state IN ('new', 'dispatched', 'reopened')",
            ):
                out[(g.gateway, iid)] = {"age_s": (g.snap_ms - first) / 1000, "created_s": first / 1000,
                                         "level": float(level)}  # fmt: skip
        return out
    if panel in ("stage_times_compound", "stage_times_team"):
        for g in gws:
            groups: dict[str, list[Stint]] = defaultdict(list)
            where = {i: (c, b) for i, c, b in rows(g.db, "SELECT id, compound, building FROM incidents")}
            for s in stints(g.db):
                if s.team is None:
                    continue
                if panel == "stage_times_team":
                    groups[s.team].append(s)
                elif (t := g.cfg.team(s.team)) is not None and t.kind == "property_duty":
                    groups[compound_of(g, *where[s.incident])].append(s)
            for entity, items in groups.items():
                out[(g.gateway, entity)] = stage_figures(items)
        return {k: v for k, v in out.items() if v}
    if panel == "sla_misses":
        counts = defaultdict(float)
        for g in gws:
            for comp, building, cat in rows(
                g.db,
                "SELECT i.compound, i.building, i.category FROM incident_events e"
                " JOIN incidents i ON i.id = e.incident_id WHERE e.kind = 'sla_missed' AND e.ts_ms BETWEEN ? AND ?",
                FROM_MS,
                ds.to_ms,
            ):
                counts[(compound_of(g, comp, building), cat)] += 1
        return {k: {"misses": v} for k, v in counts.items()}
    if panel == "whistles":
        counts = defaultdict(float)
        for g in gws:
            for s in stints(g.db):
                if s.by == "whistle" and FROM_MS <= s.at <= ds.to_ms:
                    counts[(g.cfg.team(s.team).department,)] += 1
        return {k: {"whistles": v} for k, v in counts.items()}
    if panel == "departments":
        for g in gws:
            deps = {t.department: [] for t in g.cfg.teams if t.kind == "department"}  # type: dict[str, list[Stint]]
            for s in stints(g.db):
                if s.by == "whistle":
                    deps[g.cfg.team(s.team).department].append(s)
            for dep, items in deps.items():
                f: dict[str, float] = {"whistles": float(len(items))}
                arrive = [((s.on_site or s.resolved) - s.at) / 1000 for s in items if (s.on_site or s.resolved)]
                res = [(s.resolved - s.at) / 1000 for s in items if s.resolved]
                for name, vals in (("arrival", arrive), ("resolve", res)):
                    for p, pn in ((0.5, "p50"), (0.9, "p90")):
                        if (v := nearest_rank(vals, p)) is not None:
                            f[f"{name}_{pn}_s"] = v
                for name, stage, at in (("arrival", "on_site", lambda s: s.on_site or s.resolved),
                                        ("resolve", "resolve", lambda s: s.resolved)):  # fmt: skip
                    judged = [s for s in items if stage in s.due and (at(s) or g.snap_ms > s.due[stage])]
                    if judged:
                        ok = sum(1 for s in judged if at(s) and at(s) <= s.due[stage])
                        f[f"{name}_on_time_pct"] = 100.0 * ok / len(judged)
                if items:
                    f["on_time_pct"] = 100.0 * sum(1 for s in items if not s.missed) / len(items)
                out[(g.gateway, dep)] = f
        return out
    if panel == "property_scores":
        for g in gws:
            conn = sqlite3.connect(g.db)
            for r in scorecard.compute(conn, g.cfg, PERIOD).rows:
                if r["kind"] == "property_company":
                    f = {k: float(r[k]) for k in ("score", "sla_pct", "complaint_handling", "owner_evaluation",
                                                  "response_rate_pct") if r.get(k) is not None}  # fmt: skip
                    f.update({k: 1.0 if r[k] else 0.0 for k in ("summoned", "yellow_card", "red_card", "low_response")})
                    out[(g.gateway, r["entity"])] = f
            conn.close()
        return out
    if panel == "warnings":
        for g in gws:
            conn = sqlite3.connect(g.db)
            for key, w in warnings.raised(conn).items():
                fig = w["figures"]
                out[(g.gateway, key)] = {"raised": 1.0} | {
                    k: float(fig[k]) for k in ("count", "score", "missed_accept", "response_rate_pct") if k in fig
                }
            conn.close()
        return out
    if panel == "gateways":
        for g in gws:
            n, oldest = rows(g.db, "SELECT count(*), min(created_ms) FROM outbox WHERE id <= ?", g.before_snap_id)[0]
            drops = rows(g.db, "SELECT value FROM counters WHERE name='broker_dropped_messages'")[0][0]
            pages, free, size = (rows(g.db, f"PRAGMA {p}")[0][0] for p in ("page_count", "freelist_count", "page_size"))
            fill = 100.0 * (pages - free) * size / (g.cfg.store.quota_mb * 2**20)
            out[(g.gateway,)] = {"seen_s": g.snap_ms / 1000, "backlog_points": float(n),
                                 "oldest_unsent_age_s": (g.snap_ms - oldest) / 1000, "broker_drops": float(drops),
                                 "store_fill_pct": fill}  # fmt: skip
        return out
    if panel == "device_health":
        from gateway.ingest.routing import build_routing

        for g in gws:
            online = dict(rows(g.db, "SELECT device_id, online FROM devices"))
            groups2: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
            for d in build_routing(g.cfg).by_id.values():
                comp = compound_of(g, None, d.building)
                dev = g.cfg.device(d.id)
                if not d.building and dev.location.parking_space:
                    comp = g.cfg.parking_space(dev.location.parking_space)[0].compound
                grp = groups2[(comp, d.building or "")]
                grp[0] += 1
                grp[1] += online.get(d.id) == 0
            for (comp, b), (n, off) in groups2.items():
                out[(g.gateway, comp, b)] = {"offline_pct": 100.0 * off / n, "offline": float(off), "devices": float(n)}
        return out
    if panel == "parking":
        for g in gws:
            vals = {d: json.loads(v) for d, v in rows(g.db, "SELECT device_id, last_values FROM devices")}
            for area in g.cfg.site.parking_areas:
                occ = sum(
                    1
                    for sp in area.spaces
                    for d in g.cfg.devices
                    if d.location.parking_space == sp.id and vals.get(d.id, {}).get("vehicle_present") is True
                )
                n = len(area.spaces)
                out[(g.gateway, area.id)] = {
                    "occupied": float(occ),
                    "spaces": float(n),
                    "occupied_pct": 100.0 * occ / n,
                }
        return out
    raise AssertionError(f"no expected figures for panel {panel}")


# how close a value must be: counts exact, seconds to the second, scores and shares to two decimals
def tolerance(name: str) -> float:
    if name.endswith("_s"):
        return 0.5
    if name == "store_fill_pct":
        return 0.05  # pages added by the snapshot's own transaction (64 KiB of a 256 MiB quota)
    return 0.005


def compare(panel: str, got: gq.Rows, want: gq.Rows) -> list[str]:
    problems = []
    if panel == "open_incidents":
        got = {k: v for k, v in got.items() if v.get("open")}  # a category that closed shows 0: nothing open
    if set(got) != set(want):
        problems.append(f"rows differ: only in query {sorted(set(got) - set(want))}, "
                        f"only in stores {sorted(set(want) - set(got))}")  # fmt: skip
    for k in set(got) & set(want):
        for name, w in want[k].items():
            v = got[k].get(name)
            if v is None or abs(v - w) > tolerance(name):
                problems.append(f"{k} {name}: query {v}, stores {w}")
    return problems


PANELS = [
    (flavour, name, gq.panel_meta(p)[0])
    for flavour in ("influxql", "promql")
    for name in ("district", "gateways")
    for p in gq.load(flavour, name)["panels"]
]


def _url(ds: District, flavour: str) -> str:
    return ds.influx.url if flavour == "influxql" else ds.vm.url


@pytest.mark.parametrize(("flavour", "dashboard", "panel"), PANELS, ids=[f"{f}-{p}" for f, _, p in PANELS])
def test_panel_matches_the_gateways_stores(district: District, flavour: str, dashboard: str, panel: str) -> None:
    p = next(x for x in gq.load(flavour, dashboard)["panels"] if gq.panel_meta(x)[0] == panel)
    got = gq.panel_rows(p, flavour, _url(district, flavour), ALL, FROM_MS, district.to_ms)
    assert got, f"{flavour} {panel}: the query returned nothing"
    want = expected(panel, district)
    assert want, f"{panel}: the stores hold nothing to compare with (the scenario must exercise it)"
    assert compare(panel, got, want) == []


@pytest.mark.parametrize("flavour", ["influxql", "promql"])
def test_variables_filter_by_street(district: District, flavour: str) -> None:
    """The template variables offer what the gateways sent, and choosing a street narrows the rows."""
    url = _url(district, flavour)
    board = gq.load(flavour, "district")
    offered = {v["name"]: gq.variable_values(v, flavour, url, ALL, FROM_MS, district.to_ms)
               for v in board["templating"]["list"] if v["type"] == "query"}  # fmt: skip
    assert offered["street"] == {g.street for g in district.gateways}
    assert offered["gateway"] == {g.gateway for g in district.gateways}
    assert offered["compound"] >= {s.compound for s in SPECS}
    assert offered["period"] == {PERIOD}
    east = {g.gateway for g in district.gateways if g.street == "st-east"}
    chosen = ALL | {"street": "st-east"}
    for panel in ("open_incidents", "life_safety_unaccepted", "stage_times_compound", "departments"):
        p = next(x for x in board["panels"] if gq.panel_meta(x)[0] == panel)
        got = gq.panel_rows(p, flavour, url, chosen, FROM_MS, district.to_ms)
        assert got and compare(panel, got, expected(panel, district, only=east)) == []


def test_dashboards_are_generated_and_provisionable() -> None:
    """The JSON files are what deploy/grafana/build_dashboards.py makes, and have what Grafana's file
    provisioning needs: uid, title, schema version, a datasource variable every panel and variable uses,
    every panel with a query."""
    build = gq.build_module()
    for path, text in build.files().items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run deploy/grafana/build_dashboards.py"
    uids = set()
    for flavour, ds_type in (("influxql", "influxdb"), ("promql", "prometheus")):
        for name in ("district", "gateways"):
            d = gq.load(flavour, name)
            assert d["schemaVersion"] >= 36 and d["uid"] not in uids and d["title"]
            uids.add(d["uid"])
            var = d["templating"]["list"]
            assert var[0] == var[0] | {"name": "datasource", "type": "datasource", "query": ds_type}
            names = {v["name"] for v in var}
            assert {"street", "community", "compound", "gateway", "period"} <= names
            for v in var[1:]:
                assert v["datasource"] == {"type": ds_type, "uid": "${datasource}"}
            ids = [p["id"] for p in d["panels"]]
            assert len(set(ids)) == len(ids)
            for p in d["panels"]:
                assert p["datasource"] == {"type": ds_type, "uid": "${datasource}"}
                assert p["targets"], p["title"]
                for t in p["targets"]:
                    assert t.get("query") if flavour == "influxql" else t.get("expr"), p["title"]
                    assert t["datasource"]["uid"] == "${datasource}"
                gp = p["gridPos"]
                assert gp["x"] + gp["w"] <= 24 and gp["h"] > 0
    assert END_S > 0
