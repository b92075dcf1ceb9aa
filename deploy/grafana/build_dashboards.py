"""The district's Grafana dashboards as code: one definition per panel, two query flavours.

    .venv/bin/python deploy/grafana/build_dashboards.py      # rewrites deploy/grafana/dashboards/

Flavours: ``influxql`` (InfluxDB 1.x, and InfluxDB 2 through its v1 compatibility API) and
``promql`` (VictoriaMetrics, which ingests the gateways' line protocol: field ``f`` of measurement
``m`` is the metric ``m_f``). Each panel names the labels that key its rows (``keys``) and the
values it shows; tests/test_central_dashboards.py runs every query of both flavours against real
servers and compares the rows with the gateways' own stores. The JSON files are generated: edit
this file, not them (the test fails when they differ).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39
FLAVOURS = {"influxql": "influxdb", "promql": "prometheus"}

# --- filters ---------------------------------------------------------------------------------------
IQ = '"street" =~ /^$street$/ AND "community" =~ /^$community$/ AND "gateway" =~ /^$gateway$/'
IQC = IQ + ' AND "compound" =~ /^$compound$/'
PQ = 'street=~"$street", community=~"$community", gateway=~"$gateway"'
PQC = PQ + ', compound=~"$compound"'
UNACCEPTED_WINDOW = "3m"  # three snapshots at the default sync.snapshot_s (60 s): only what is still open


@dataclass(frozen=True)
class Panel:
    key: str  # stable id for tests and docs
    title: str
    description: str
    keys: tuple[str, ...]  # labels that identify a row
    values: tuple[str, ...]  # what each row shows
    influxql: str
    promql: dict[str, str]  # refId (= value name) -> expression
    kind: str = "table"
    width: int = 12
    sort_by: str | None = None


def _last(fields: tuple[str, ...]) -> str:
    return ", ".join(f'last("{f}") AS "{f}"' for f in fields)


def _lasts(metric: str, fields: tuple[str, ...], sel: str) -> dict[str, str]:
    return {f: f"last_over_time({metric}_{f}{{{sel}}}[$__range])" for f in fields}


STAGE_TIMES = ("accept_p50_s", "accept_p90_s", "on_site_p50_s", "on_site_p90_s", "resolve_p50_s", "resolve_p90_s")
DEPT = (
    "whistles",
    "arrival_p50_s",
    "arrival_p90_s",
    "resolve_p50_s",
    "resolve_p90_s",
    "arrival_on_time_pct",
    "resolve_on_time_pct",
    "on_time_pct",
)
SCORES = (
    "score",
    "sla_pct",
    "complaint_handling",
    "owner_evaluation",
    "response_rate_pct",
    "summoned",
    "yellow_card",
    "red_card",
    "low_response",
)
WARNING_FIGURES = ("count", "score", "missed_accept", "response_rate_pct")
GATEWAY = ("seen_s", "backlog_points", "oldest_unsent_age_s", "broker_drops", "store_fill_pct")


def _score_panel(
    key: str, title: str, description: str, kind_re: str, values: tuple[str, ...], entity_var: str, width: int = 12
) -> Panel:
    where = f'"kind" =~ /^{kind_re}$/ AND "period" =~ /^$period$/ AND {IQ}{entity_var and " AND " + entity_var}'
    sel = f'kind=~"{kind_re}", period=~"$period", {PQ}'
    if entity_var:
        sel += ', entity=~"$compound"'
    return Panel(
        key,
        title,
        description,
        ("gateway", "entity"),
        values,
        f'SELECT {_last(values)} FROM "edge_score" WHERE $timeFilter AND {where}'
        ' GROUP BY "gateway", "community", "entity", "name", "period"',
        _lasts("edge_score", values, sel),
        width=width,
    )


DISTRICT: list[Panel] = [
    Panel(
        "open_incidents",
        "在办事件（类别 × 级别） Open incidents by category and severity",
        "Incidents open now (new, dispatched, accepted, on site, reopened), from each gateway's latest snapshot.",
        ("category", "severity"),
        ("open",),
        'SELECT sum("open") AS "open" FROM (SELECT last("open") AS "open" FROM "edge_open" WHERE $timeFilter AND '
        + IQC
        + ' GROUP BY "gateway", "compound", "category", "severity") GROUP BY "category", "severity"',
        {"open": f"sum by (category, severity) (last_over_time(edge_open_open{{{PQC}}}[$__range]))"},
        kind="barchart",
    ),
    Panel(
        "life_safety_unaccepted",
        "未接单的生命安全事件（最早在前） Life-safety incidents not yet accepted, oldest first",
        "SOS, falls, smoke, gas ... dispatched but accepted by nobody, from the gateways' snapshots of the last "
        f"{UNACCEPTED_WINDOW}: a silent gateway drops out here and shows on the gateway panel.",
        ("gateway", "incident"),
        ("age_s", "created_s", "level"),
        f'SELECT {_last(("age_s", "created_s", "level"))} FROM "edge_unaccepted" WHERE time > ${{__to}}ms - '
        f"{UNACCEPTED_WINDOW} AND time <= ${{__to}}ms AND {IQC}"
        ' GROUP BY "gateway", "compound", "building", "incident_type", "incident"',
        {
            "age_s": f"sort_desc(last_over_time(edge_unaccepted_age_s{{{PQC}}}[{UNACCEPTED_WINDOW}]))",
            "created_s": f"last_over_time(edge_unaccepted_created_s{{{PQC}}}[{UNACCEPTED_WINDOW}])",
            "level": f"last_over_time(edge_unaccepted_level{{{PQC}}}[{UNACCEPTED_WINDOW}])",
        },
        width=24,
        sort_by="age_s",
    ),
    _score_panel(
        "stage_times_compound",
        "小区：接单 / 到场 / 办结用时（中位数、P90） Time to accept / on site / resolve per compound",
        "Seconds from dispatch, median and 90th percentile (nearest rank), quarter to date, as the gateway's "
        "scorecard computes them.",
        "compound",
        STAGE_TIMES,
        '"entity" =~ /^$compound$/',
    ),
    _score_panel(
        "stage_times_team",
        "队伍：接单 / 到场 / 办结用时 Time to accept / on site / resolve per team",
        "Per team (grid workers as grid:<id>), quarter to date, seconds from dispatch.",
        "team|grid",
        STAGE_TIMES,
        "",
    ),
    Panel(
        "sla_misses",
        "超时（SLA 未达） SLA misses",
        "Deadlines missed (accept, on site, resolve) in the time range, per compound and category.",
        ("compound", "category"),
        ("misses",),
        'SELECT count("n") AS "misses" FROM "edge_incident" WHERE $timeFilter AND "kind" = \'sla_missed\' AND '
        + IQC
        + ' GROUP BY "compound", "category"',
        {
            "misses": "sum by (compound, category) "
            f'(count_over_time(edge_incident_n{{kind="sla_missed", {PQC}}}[$__range]))'
        },
        kind="barchart",
    ),
    Panel(
        "whistles",
        "吹哨报到：各部门被召次数 Whistles per department",
        "Departments summoned in the time range (the ladder's department rung and manual whistles).",
        ("department",),
        ("whistles",),
        'SELECT count("n") AS "whistles" FROM "edge_ticket" WHERE $timeFilter AND "stage" = \'dispatched\' AND '
        "\"by\" = 'whistle' AND " + IQC + ' GROUP BY "department"',
        {
            "whistles": 'sum by (department) (count_over_time(edge_ticket_n{stage="dispatched", by="whistle", '
            + PQC
            + "}[$__range]))"
        },
        kind="barchart",
    ),
    Panel(
        "departments",
        "部门报到：到场与办结用时、按时率 Departments: whistle to arrival and to resolution",
        "Per department and community, quarter to date: whistles, seconds from the whistle to arrival and to "
        "resolution (median, P90), share on time against the ladder's SLA.",
        ("gateway", "department"),
        DEPT,
        f'SELECT {_last(DEPT)} FROM "edge_department" WHERE $timeFilter AND "period" =~ /^$period$/ AND {IQ}'
        ' GROUP BY "gateway", "community", "department", "name", "period"',
        _lasts("edge_department", DEPT, f'period=~"$period", {PQ}'),
        width=24,
    ),
    _score_panel(
        "property_scores",
        "物业公司季度评分与标记 Latest quarterly scores and flags per property company",
        "Score (below 60: summoned / yellow card; two yellow in a row: red card) and its items, quarter to date.",
        "property_company",
        SCORES,
        "",
        width=24,
    ),
    Panel(
        "warnings",
        "提前预警 Early warnings raised now",
        "Warnings raised and not cleared (projected score below 60, repeated incidents at one place, rising "
        "missed acceptances, low resident response), with their figures.",
        ("gateway", "warning"),
        ("raised", *WARNING_FIGURES),
        f'SELECT * FROM (SELECT {_last(("raised", *WARNING_FIGURES))} FROM "edge_warning" WHERE $timeFilter AND '
        + IQC
        + ' GROUP BY "gateway", "compound", "kind", "warning") WHERE "raised" = 1 GROUP BY "gateway", "compound",'
        ' "kind", "warning"',
        {
            "raised": f"last_over_time(edge_warning_raised{{{PQC}}}[$__range]) == 1",
            **{
                f: f"last_over_time(edge_warning_{f}{{{PQC}}}[$__range]) and on (gateway, warning) "
                f"(last_over_time(edge_warning_raised{{{PQC}}}[$__range]) == 1)"
                for f in WARNING_FIGURES
            },
        },
        width=24,
    ),
]

GATEWAYS: list[Panel] = [
    Panel(
        "gateways",
        "网关：最后上线、同步积压、最早未发、代理丢弃、存储占用 Gateways",
        "Per gateway, latest health point: last seen (its clock, unix s), unsent points and the age of the oldest, "
        "messages the broker dropped, store fill (% of store.quota_mb).",
        ("gateway",),
        GATEWAY,
        f'SELECT {_last(GATEWAY)} FROM "gateway_health" WHERE $timeFilter AND {IQ}'
        ' GROUP BY "gateway", "street", "community", "version"',
        _lasts("gateway_health", GATEWAY, PQ),
        width=24,
    ),
    Panel(
        "device_health",
        "设备在线：各楼栋离线占比 Device health per building",
        "Configured devices, those offline now and the share, per building (devices of no building: per compound).",
        ("gateway", "compound", "building"),
        ("offline_pct", "offline", "devices"),
        f'SELECT {_last(("offline_pct", "offline", "devices"))} FROM "edge_devices" WHERE $timeFilter AND {IQC}'
        ' GROUP BY "gateway", "compound", "building"',
        _lasts("edge_devices", ("offline_pct", "offline", "devices"), PQC),
    ),
    Panel(
        "parking",
        "停车：各区域占用 Parking occupancy per area",
        "Spaces a sensor reports occupied now, per parking area.",
        ("gateway", "area"),
        ("occupied", "spaces", "occupied_pct"),
        f'SELECT {_last(("occupied", "spaces", "occupied_pct"))} FROM "edge_parking" WHERE $timeFilter AND {IQC}'
        ' GROUP BY "gateway", "compound", "area", "area_name"',
        _lasts("edge_parking", ("occupied", "spaces", "occupied_pct"), PQC),
    ),
]

DASHBOARDS = {
    "district": ("街道 / 区指挥中心：社区运行 District command: communities at a glance", DISTRICT),
    "gateways": ("网关、设备与停车 Gateways, devices and parking", GATEWAYS),
}

# name -> (InfluxQL, PromQL) variable queries
VARIABLES: dict[str, tuple[str, str]] = {
    "street": (
        'SHOW TAG VALUES FROM "gateway_health" WITH KEY = "street"',
        "label_values(gateway_health_seen_s, street)",
    ),
    "community": (
        'SHOW TAG VALUES FROM "gateway_health" WITH KEY = "community" WHERE "street" =~ /^$street$/',
        'label_values(gateway_health_seen_s{street=~"$street"}, community)',
    ),
    "gateway": (
        'SHOW TAG VALUES FROM "gateway_health" WITH KEY = "gateway" WHERE "street" =~ /^$street$/ AND '
        '"community" =~ /^$community$/',
        'label_values(gateway_health_seen_s{street=~"$street", community=~"$community"}, gateway)',
    ),
    "compound": (
        'SHOW TAG VALUES FROM "edge_devices" WITH KEY = "compound" WHERE "gateway" =~ /^$gateway$/',
        'label_values(edge_devices_devices{gateway=~"$gateway"}, compound)',
    ),
    "period": (
        'SHOW TAG VALUES FROM "edge_score" WITH KEY = "period"',
        "label_values(edge_score_assignments, period)",
    ),
}
LABELS = {
    "street": "街道 Street",
    "community": "社区 Community",
    "gateway": "网关 Gateway",
    "compound": "小区 Compound",
    "period": "季度 Quarter",
}


def _variables(flavour: str) -> list[dict[str, Any]]:
    ds_type = FLAVOURS[flavour]
    out: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "数据源 Data source",
            "type": "datasource",
            "query": ds_type,
            "current": {},
            "hide": 0,
            "refresh": 1,
            "options": [],
        }
    ]
    for name, (iq, pq) in VARIABLES.items():
        query: Any = iq if flavour == "influxql" else {"query": pq, "refId": f"{name}-var"}
        out.append(
            {
                "name": name,
                "label": LABELS[name],
                "type": "query",
                "datasource": {"type": ds_type, "uid": "${datasource}"},
                "query": query,
                "definition": iq if flavour == "influxql" else pq,
                "includeAll": True,
                "allValue": ".*",
                "multi": name != "period",
                "refresh": 2,
                "sort": 1,
                "current": {"text": "All", "value": "$__all"},
                "options": [],
                "hide": 0,
            }
        )
    return out


def _targets(p: Panel, flavour: str) -> list[dict[str, Any]]:
    ds = {"type": FLAVOURS[flavour], "uid": "${datasource}"}
    if flavour == "influxql":
        return [{"refId": "A", "datasource": ds, "query": p.influxql, "rawQuery": True, "resultFormat": "table"}]
    return [
        {"refId": ref, "datasource": ds, "expr": expr, "instant": True, "range": False, "format": "table"}
        for ref, expr in p.promql.items()
    ]


def _panel(p: Panel, flavour: str, pid: int, x: int, y: int) -> dict[str, Any]:
    transformations: list[dict[str, Any]] = []
    if flavour == "promql" and len(p.promql) > 1:
        transformations.append({"id": "merge", "options": {}})
    if p.sort_by:
        transformations.append({"id": "sortBy", "options": {"sort": [{"field": p.sort_by, "desc": True}]}})
    return {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description + f" [panel {p.key}; rows keyed by {', '.join(p.keys)}]",
        "datasource": {"type": FLAVOURS[flavour], "uid": "${datasource}"},
        "gridPos": {"h": 9, "w": p.width, "x": x, "y": y},
        "targets": _targets(p, flavour),
        "transformations": transformations,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True} if p.kind == "table" else {"orientation": "horizontal"},
    }


def dashboard(name: str, flavour: str) -> dict[str, Any]:
    title, panels = DASHBOARDS[name]
    out_panels = []
    x = y = 0
    for i, p in enumerate(panels, start=1):
        if x + p.width > 24:
            x, y = 0, y + 9
        out_panels.append(_panel(p, flavour, i, x, y))
        x += p.width
    return {
        "uid": f"edge-{name}-{flavour}",
        "title": f"{title} ({'InfluxQL' if flavour == 'influxql' else 'PromQL / MetricsQL'})",
        "tags": ["community-edge-gateway", name, flavour],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 0,
        "timezone": "browser",
        "time": {"from": "now-90d", "to": "now"},
        "refresh": "1m",
        "annotations": {"list": []},
        "templating": {"list": _variables(flavour)},
        "panels": out_panels,
    }


def files() -> dict[Path, str]:
    return {
        OUT / flavour / f"{name}.json": json.dumps(dashboard(name, flavour), indent=2, ensure_ascii=False) + "\n"
        for flavour in FLAVOURS
        for name in DASHBOARDS
    }


def main() -> int:
    for path, text in files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
