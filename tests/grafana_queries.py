"""Run the shipped dashboards' queries the way Grafana would, against real servers' HTTP query APIs.

Grafana substitutes its variables and macros, then asks InfluxDB's ``/query`` (InfluxQL) or the
Prometheus API's ``/api/v1/query`` (VictoriaMetrics); this does the same and turns either answer
into rows keyed by the panel's labels: ``{(label values...): {value name: float}}``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
Rows = dict[tuple[str, ...], dict[str, float]]


def build_module() -> ModuleType:
    """deploy/grafana/build_dashboards.py (a script, not a package)."""
    spec = importlib.util.spec_from_file_location("build_dashboards", ROOT / "deploy/grafana/build_dashboards.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_dashboards"] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


def load(flavour: str, name: str) -> dict[str, Any]:
    return json.loads((DASHBOARDS / flavour / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def panel_meta(panel: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(panel key, row labels), as the description states them."""
    desc = panel["description"]
    tail = desc[desc.rindex("[panel ") + 7 : -1]
    key, _, keys = tail.partition("; rows keyed by ")
    return key, tuple(k.strip() for k in keys.split(","))


def substitute(text: str, variables: dict[str, str], from_ms: int, to_ms: int) -> str:
    out = text.replace("${__to}", str(to_ms)).replace("${__from}", str(from_ms))
    out = out.replace("$timeFilter", f"time >= {from_ms}ms AND time <= {to_ms}ms")
    out = out.replace("$__range", f"{(to_ms - from_ms) // 1000}s")
    for name in sorted(variables, key=len, reverse=True):
        out = out.replace("$" + name, variables[name])
    return out


def influxql(url: str, db: str, q: str) -> list[dict[str, Any]]:
    r = httpx.post(f"{url}/query", params={"db": db, "q": q, "epoch": "ms"}, timeout=30)
    r.raise_for_status()
    res = r.json()["results"][0]
    if "error" in res:
        raise AssertionError(f"InfluxQL error: {res['error']}\n{q}")
    rows = []
    for s in res.get("series", []):
        for v in s["values"]:
            rows.append({**s.get("tags", {}), **dict(zip(s["columns"], v, strict=True))})
    return rows


def promql(url: str, expr: str, at_ms: int) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": expr, "time": f"{at_ms / 1000:.3f}"}, timeout=30)
    if r.status_code != 200:
        raise AssertionError(f"PromQL error {r.status_code}: {r.text[:500]}\n{expr}")
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, str | bool):
        return None
    x = float(v)
    return None if math.isnan(x) else x


def panel_rows(panel: dict[str, Any], flavour: str, url: str, variables: dict[str, str], from_ms: int, to_ms: int,
               db: str = "community") -> Rows:  # fmt: skip
    """Every target of ``panel`` run against the server, merged into rows by the panel's labels."""
    _, keys = panel_meta(panel)
    out: Rows = {}
    for t in panel["targets"]:
        if flavour == "influxql":
            for row in influxql(url, db, substitute(t["query"], variables, from_ms, to_ms)):
                key = tuple(str(row.get(k) or "") for k in keys)
                vals = {c: x for c, v in row.items() if c not in keys and c != "time" and (x := _num(v)) is not None}
                out.setdefault(key, {}).update(vals)
        else:
            for s in promql(url, substitute(t["expr"], variables, from_ms, to_ms), to_ms):
                key = tuple(str(s["metric"].get(k, "")) for k in keys)
                x = _num(float(s["value"][1]))  # the Prometheus API sends values as strings
                if x is not None:
                    out.setdefault(key, {})[t["refId"]] = x
    return {k: v for k, v in out.items() if v}


def variable_values(var: dict[str, Any], flavour: str, url: str, variables: dict[str, str], from_ms: int,
                    to_ms: int, db: str = "community") -> set[str]:  # fmt: skip
    """What a template variable's query offers."""
    if flavour == "influxql":
        rows = influxql(url, db, substitute(var["query"], variables, from_ms, to_ms))
        return {str(r["value"]) for r in rows}
    definition = substitute(var["definition"], variables, from_ms, to_ms)
    inner = definition[len("label_values(") : -1]
    match, _, label = inner.rpartition(",")
    r = httpx.get(
        f"{url}/api/v1/label/{label.strip()}/values",
        params={"match[]": match.strip(), "start": from_ms / 1000, "end": to_ms / 1000},
        timeout=30,
    )
    r.raise_for_status()
    return set(r.json()["data"])
