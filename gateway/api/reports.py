"""Exports for the property company's monthly report: the filtered incident list and the scorecard,
as CSV (UTF-8 with a BOM, which Excel needs to read Chinese) or Excel .xlsx (openpyxl, write-only
mode: rows stream into the file instead of a whole workbook in memory).

Runs in a reader thread (``Readers.run``): an export reads and formats thousands of rows.
Columns are keyed, with Chinese and English headers. Residents' names and flats are columns only
for the personal-data roles; for everyone else an elder-care incident keeps its category, type,
times and figures, and loses its place and notes (as access.present_incident does).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.api import access, history
from gateway.api.auth import Principal
from gateway.api.report_words import Words

if TYPE_CHECKING:
    from edge_config import SiteConfig

MAX_ROWS = 50_000


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str
    width: int = 12


INCIDENT_COLUMNS = (
    Column("id", "编号", "Id", 30),
    Column("category", "类别", "Category"),
    Column("type", "类型", "Type", 16),
    Column("severity", "级别", "Severity", 8),
    Column("state", "状态", "State", 10),
    Column("compound", "小区", "Compound", 16),
    Column("grid", "网格", "Grid", 12),
    Column("building", "楼栋", "Building", 16),
    Column("unit", "单元", "Unit", 8),
    Column("space", "车位", "Parking space", 10),
    Column("first", "首次触发", "First trigger", 18),
    Column("last", "最近触发", "Last trigger", 18),
    Column("count", "触发次数", "Triggers", 8),
    Column("team", "处理队伍", "Team", 16),
    Column("assignee", "处理人", "Assignee", 12),
    Column("accept_min", "接单用时(分钟)", "Time to accept (min)", 10),
    Column("resolve_min", "处理用时(分钟)", "Time to resolve (min)", 10),
    Column("sla_missed", "是否超时", "SLA missed", 8),
    Column("rating", "评价", "Rating", 6),
    Column("notes", "处理说明", "Notes", 40),
)
PERSONAL_COLUMNS = (
    Column("resident", "居民", "Resident", 10),
    Column("room", "房号", "Flat", 8),
)
SCORECARD_COLUMNS = (
    Column("kind", "对象类别", "Kind", 12),
    Column("name", "名称", "Name", 20),
    Column("assignments", "派单数", "Assignments", 8),
    Column("accept_p50_min", "接单用时中位数(分钟)", "Accept p50 (min)", 10),
    Column("accept_p90_min", "接单用时P90(分钟)", "Accept p90 (min)", 10),
    Column("resolve_p50_min", "处理用时中位数(分钟)", "Resolve p50 (min)", 10),
    Column("resolve_p90_min", "处理用时P90(分钟)", "Resolve p90 (min)", 10),
    Column("sla_pct", "按时率%", "On time %", 8),
    Column("escalations", "升级次数", "Escalations", 8),
    Column("reopen_rate_pct", "返工率%", "Reopened %", 8),
    Column("rating_mean", "评价均分", "Mean rating", 8),
    Column("contract_fulfilment", "合同履约", "Contract fulfilment", 10),
    Column("complaint_handling", "投诉处理", "Complaint handling", 10),
    Column("on_site_inspection", "现场检查", "On-site inspection", 10),
    Column("owner_evaluation", "业主评价", "Owner evaluation", 10),
    Column("score", "总分", "Score", 8),
    Column("summoned", "约谈", "Summoned", 6),
    Column("yellow_card", "黄牌", "Yellow card", 6),
    Column("red_card", "红牌", "Red card", 6),
)


def incident_columns(p: Principal) -> tuple[Column, ...]:
    return INCIDENT_COLUMNS + (PERSONAL_COLUMNS if p.role in access.PERSONAL_ROLES else ())


def _local(ms: int | None, tz: ZoneInfo) -> dt.datetime | None:
    # Excel has no time zones: the site's local wall time, as people there read it
    return dt.datetime.fromtimestamp(ms / 1000, tz).replace(tzinfo=None, microsecond=0) if ms else None


def _minutes(start: int | None, end: int | None) -> float | None:
    return round((end - start) / 60_000, 1) if start and end else None


def _extras(
    conn: sqlite3.Connection, ids: Sequence[str]
) -> tuple[dict[str, tuple[Any, ...]], set[str], dict[str, str]]:
    """Ticket times, SLA-missed ids and the last note of these incidents."""
    marks = ",".join("?" * len(ids))
    times = {
        r[0]: r[1:]
        for r in conn.execute(
            f"SELECT incident_id, dispatched_ms, accepted_ms, resolved_ms FROM tickets WHERE incident_id IN ({marks})",
            ids,
        )
    }
    missed = {
        r[0]
        for r in conn.execute(
            f"SELECT incident_id FROM incident_events WHERE kind = 'sla_missed' AND incident_id IN ({marks})", ids
        )
    }
    notes = {
        r[0]: r[1]
        for r in conn.execute(
            f"SELECT incident_id, text FROM incident_notes WHERE incident_id IN ({marks}) ORDER BY seq", ids
        )
    }
    return times, missed, notes


def incident_rows(
    conn: sqlite3.Connection, p: Principal, cfg: SiteConfig, f: history.HistoryFilter, names: Words
) -> tuple[list[dict[str, Any]], access.Release]:
    """The export's rows as ``p`` may see them, and the personal data they release."""
    tz = ZoneInfo(cfg.gateway.timezone)
    release = access.Release()
    rows = list(history.iterate(conn, p, f, MAX_ROWS))
    out: list[dict[str, Any]] = []
    for i in range(0, len(rows), 500):
        chunk = rows[i : i + 500]
        times, missed, notes = _extras(conn, [r["id"] for r in chunk])
        for r in chunk:
            v = access.present_incident(p, r, cfg, release)
            d, a, s = times.get(r["id"], (None, None, None))
            hidden = bool(v.get("redacted"))
            row = {
                "id": v["id"],
                "category": names.of("category", v["category"]),
                "type": names.of("type", v["type"]),
                "severity": names.of("sev", v["severity"]),
                "state": names.of("state", v["state"]),
                "compound": _name(cfg.compound(v["compound"]) if v.get("compound") else None, v.get("compound")),
                "grid": _name(cfg.grid(v["grid"]) if v.get("grid") else None, v.get("grid")),
                "building": _name(cfg.building(v["building"]) if v.get("building") else None, v.get("building")),
                "unit": v.get("unit"),
                "space": v.get("space"),
                "first": _local(v.get("first_ms"), tz),
                "last": _local(v.get("last_ms"), tz),
                "count": v.get("count"),
                "team": _name(cfg.team(v["team"]) if v.get("team") else None, v.get("team")),
                "assignee": v.get("assignee"),
                "accept_min": _minutes(d, a),
                "resolve_min": _minutes(d, s),
                "sla_missed": names.yes if r["id"] in missed else "",
                "rating": v.get("rating"),
                "notes": "" if hidden else notes.get(r["id"], ""),
            }
            personal = v.get("personal")
            if p.role in access.PERSONAL_ROLES:
                row["resident"] = personal.get("name") if personal else None
                row["room"] = personal.get("room") if personal else None
            out.append(row)
    return out, release


def _name(obj: Any, fallback: str | None) -> str | None:
    return getattr(obj, "name", None) or fallback


def scorecard_table(rows: Iterable[dict[str, Any]], names: Words) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        row = {c.key: r.get(c.key) for c in SCORECARD_COLUMNS}
        for k in ("accept_p50", "accept_p90", "resolve_p50", "resolve_p90"):
            s = r.get(f"{k}_s")
            row[f"{k}_min"] = round(s / 60, 1) if s is not None else None
        for k in (
            "sla_pct",
            "reopen_rate_pct",
            "rating_mean",
            "contract_fulfilment",
            "complaint_handling",
            "on_site_inspection",
            "owner_evaluation",
            "score",
        ):
            x = row[k]
            row[k] = round(x, 1) if isinstance(x, float) else x
        for k in ("summoned", "yellow_card", "red_card"):
            row[k] = names.yes if r.get(k) else ""
        row["kind"] = names.of("kind", r.get("kind"))
        out.append(row)
    return out


# --- encoders ------------------------------------------------------------------------------------


def to_csv(columns: Sequence[Column], rows: Iterable[dict[str, Any]], lang: str) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([c.zh if lang == "zh" else c.en for c in columns])
    for r in rows:
        w.writerow([_csv_cell(r.get(c.key)) for c in columns])
    return ("\ufeff" + buf.getvalue()).encode("utf-8", "replace")  # a lone surrogate from JSON: '?'


def _csv_cell(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):
        return "'" + v  # never a formula in the spreadsheet (CSV injection)
    return "" if v is None else v


def to_xlsx(columns: Sequence[Column], rows: Iterable[dict[str, Any]], lang: str, title: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=title[:31])
    for i, c in enumerate(columns):
        ws.column_dimensions[_letter(i)].width = c.width
    ws.freeze_panes = "A2"
    bold = Font(bold=True)
    head = []
    for c in columns:
        cell = WriteOnlyCell(ws, value=c.zh if lang == "zh" else c.en)
        cell.font = bold
        head.append(cell)
    ws.append(head)
    for r in rows:
        ws.append([_xlsx_cell(ws, r.get(c.key), WriteOnlyCell) for c in columns])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# Characters XML 1.0 cannot hold (control characters): a note or description typed with one would
# otherwise make openpyxl refuse the whole file.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xlsx_cell(ws: Any, v: Any, cell_type: Any) -> Any:
    if isinstance(v, str):
        v = _NOT_XML.sub("\ufffd", v)
    if isinstance(v, dt.datetime):
        cell = cell_type(ws, value=v)
        cell.number_format = "yyyy-mm-dd hh:mm:ss"
        return cell
    if isinstance(v, str) and v[:1] == "=":
        cell = cell_type(ws, value=v)
        cell.data_type = "s"  # text, never a formula (a note starting with '=')
        return cell
    return v


def _letter(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s
