"""Pictures of the dashboards for docs/central.md, drawn from the test district (not by Grafana).

    PYTHONPATH=. .venv/bin/python deploy/grafana/render_pictures.py [--flavour promql|influxql]

Grafana is not available on the development machines, so this builds the same district as
tests/test_central_dashboards.py (three simulated gateways synced to real VictoriaMetrics and
InfluxDB 1.x), runs every panel's queries of the chosen flavour against the server exactly as the
test does, lays the panels out on the dashboard's 24-column grid as an HTML page (tables; bar charts
drawn as plain SVG) and screenshots it with Debian's headless Chromium into docs/central/<name>.png.
The data is Grafana's input; the look is not Grafana's.
"""

from __future__ import annotations

import argparse
import html
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests import grafana_queries as gq
from tests.district_sim import FROM_MS, PERIOD, build

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "central"
VARIABLES = {"street": ".*", "community": ".*", "gateway": ".*", "compound": ".*", "period": PERIOD}
CSS = """
body { font: 13px 'Noto Sans CJK SC', 'WenQuanYi Micro Hei', sans-serif; background: #111217; color: #ccccdc;
       margin: 0; padding: 12px; width: 1600px; }
h1 { font-size: 18px; margin: 0 0 4px; } .sub { color: #8e8e9e; margin-bottom: 10px; }
.grid { display: grid; grid-template-columns: repeat(24, 1fr); gap: 8px; }
.panel { background: #181b1f; border: 1px solid #2c3235; border-radius: 3px; padding: 8px; overflow: hidden; }
.panel h2 { font-size: 13px; margin: 0 0 6px; color: #d8d9da; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th { text-align: left; color: #6e9fff; border-bottom: 1px solid #2c3235; padding: 2px 4px; }
td { padding: 2px 4px; border-bottom: 1px solid #22252b; white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.flag { color: #f2495c; font-weight: bold; }
"""


def _fmt(name: str, v: float) -> str:
    if name == "seen_s" or name == "created_s":
        import datetime as dt

        return dt.datetime.fromtimestamp(v, dt.timezone(dt.timedelta(hours=8))).strftime("%m-%d %H:%M:%S")
    if name.endswith("_s"):
        return f"{v / 60:.1f} min"
    if name in ("summoned", "yellow_card", "red_card", "low_response", "raised"):
        return "●" if v else ""
    if name.endswith("pct"):
        return f"{v:.1f}%"
    return f"{v:.2f}" if v != int(v) else f"{int(v)}"


def _table(keys: tuple[str, ...], values: tuple[str, ...], rows: gq.Rows, sort_by: str | None) -> str:
    items = sorted(rows.items(), key=lambda kv: (-kv[1].get(sort_by, 0) if sort_by else 0, kv[0]))
    head = "".join(f"<th>{html.escape(k)}</th>" for k in (*keys, *values))
    body = []
    for key, vals in items:
        cells = [f"<td>{html.escape(k)}</td>" for k in key]
        for v in values:
            x = vals.get(v)
            cls = "n flag" if v in ("summoned", "yellow_card", "red_card", "low_response") and x else "n"
            cells.append(f'<td class="{cls}">{"" if x is None else html.escape(_fmt(v, x))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _bars(keys: tuple[str, ...], value: str, rows: gq.Rows) -> str:
    items = sorted(((" / ".join(k) or "-", v.get(value, 0.0)) for k, v in rows.items()), key=lambda kv: -kv[1])
    items = [i for i in items if i[1]]
    top = max((v for _, v in items), default=1.0) or 1.0
    h = 20 * len(items) + 4
    out = [f'<svg width="100%" height="{h}" viewBox="0 0 600 {h}">']
    for i, (label, v) in enumerate(items):
        y = 2 + 20 * i
        w = 330 * v / top
        out.append(f'<text x="0" y="{y + 13}" fill="#ccccdc" font-size="12">{html.escape(label)}</text>')
        out.append(f'<rect x="220" y="{y + 2}" width="{w:.1f}" height="14" fill="#73bf69"/>')
        out.append(f'<text x="{226 + w:.1f}" y="{y + 13}" fill="#ccccdc" font-size="12">{_fmt(value, v)}</text>')
    out.append("</svg>")
    return "".join(out)


def page(board: dict[str, Any], flavour: str, url: str, to_ms: int) -> str:
    build_mod = gq.build_module()
    defs = {p.key: p for _, panels in build_mod.DASHBOARDS.values() for p in panels}
    parts = []
    for panel in board["panels"]:
        key, keys = gq.panel_meta(panel)
        d = defs[key]
        rows = gq.panel_rows(panel, flavour, url, VARIABLES, FROM_MS, to_ms)
        inner = (
            _bars(keys, d.values[0], rows) if panel["type"] == "barchart" else _table(keys, d.values, rows, d.sort_by)
        )
        gp = panel["gridPos"]
        parts.append(
            f'<div class="panel" style="grid-column: {gp["x"] + 1} / span {gp["w"]}">'
            f"<h2>{html.escape(panel['title'])}</h2>{inner}</div>"
        )
    sub = (f"{flavour} queries of the shipped dashboard, run against the test district's central store; "
           f"all streets, communities, compounds and gateways; quarter {PERIOD}")  # fmt: skip
    return (f'<!doctype html><html><head><meta charset="utf-8"><style>{CSS}</style></head><body>'
            f"<h1>{html.escape(board['title'])}</h1><div class='sub'>{html.escape(sub)}</div>"
            f"<div class='grid'>{''.join(parts)}</div></body></html>")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--flavour", default="promql", choices=["promql", "influxql"])
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge-pictures-") as tmp:
        ds = build(Path(tmp))
        try:
            url = ds.vm.url if args.flavour == "promql" else ds.influx.url
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                            args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
                for name in ("district", "gateways"):
                    doc = page(gq.load(args.flavour, name), args.flavour, url, ds.to_ms)
                    tab = browser.new_page(viewport={"width": 1624, "height": 800})
                    tab.set_content(doc)
                    target = OUT / f"{name}.png"
                    tab.screenshot(path=str(target), full_page=True)
                    print(target)
                browser.close()
        finally:
            ds.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
