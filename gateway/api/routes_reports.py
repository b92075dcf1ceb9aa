"""/api/v1/reports: the filtered incident list and the scorecard as CSV or Excel, with Chinese (or
English) headers, for the property company's monthly report. Every export is written to the
access log (reason ``export``: who, which report, the filter, how many rows) before the file
leaves; personal data goes only to the roles that may see it, and its releases are logged as
every other view of it."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from gateway.api import access, history, reports, ticketing
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require
from gateway.api.report_words import words
from gateway.api.routes_history import history_filter

if TYPE_CHECKING:
    from gateway.api.deps import ApiContext
    from gateway.core.contract import BatchResult

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

# Departments see only what they were summoned to: a monthly report is not theirs to take.
EXPORT_ROLES = access.STAFF | {"central_platform"}
Format = Literal["csv", "xlsx"]
Lang = Annotated[Literal["zh", "en"], Query(description="Header and value language.")]
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    200: {"content": {MEDIA["csv"]: {}, MEDIA["xlsx"]: {}}, "description": "the file"},
}


async def _log_export(ctx: ApiContext, p: Principal, report: str, fields: list[str]) -> None:
    """One access-log row per export, committed before the file is sent."""

    def write(conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        conn.execute(
            "INSERT INTO access_log(ts_ms, token_id, role, reason, incident_id, resident_id, fields, via)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (now_ms, p.token_id, p.role, "export", None, None, json.dumps(fields, ensure_ascii=False), report),
        )

    try:
        await ctx.write(write)
    except Exception:
        raise HTTPException(503, "the access log could not be written; the export is withheld") from None


def _file(data: bytes, fmt: str, name: str) -> Response:
    return Response(
        data,
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"', "Cache-Control": "private, no-store"},
    )


@router.get(
    "/incidents.{fmt}",
    summary="The filtered incident list as CSV or .xlsx (the history filters)",
    response_class=Response,
    responses=FILE_RESPONSES,
)
async def export_incidents(
    request: Request,
    fmt: Format,
    p: Annotated[Principal, Depends(require("incidents.read"))],
    f: Annotated[history.HistoryFilter, Depends(history_filter)],
    lang: Lang = "zh",
) -> Response:
    if p.role not in EXPORT_ROLES:
        raise HTTPException(403, f"role '{p.role}' may not export reports")
    ctx = ctx_of(request)
    n = await ctx.readers.run(history.count, p, f)
    if n > reports.MAX_ROWS:
        raise HTTPException(422, f"{n} incidents match; an export holds at most {reports.MAX_ROWS}: narrow the filter")
    columns = reports.incident_columns(p)
    rows, release = await ctx.readers.run(reports.incident_rows, p, ctx.cfg, f, words(lang))
    filt = json.dumps(f.as_query(), ensure_ascii=False, sort_keys=True)
    await _log_export(ctx, p, f"incidents.{fmt}", [c.key for c in columns] + [f"rows={len(rows)}", f"filter={filt}"])
    await ctx.log_release(p, release, "export")
    title = "告警记录" if lang == "zh" else "Incidents"
    if fmt == "xlsx":
        data = await ctx.readers.run(lambda _c: reports.to_xlsx(columns, rows, lang, title))
    else:
        data = await ctx.readers.run(lambda _c: reports.to_csv(columns, rows, lang))
    return _file(data, fmt, f"incidents-{_stamp(ctx)}")


@router.get(
    "/scorecard.{fmt}",
    summary="The scorecard of a period as CSV or .xlsx",
    response_class=Response,
    responses=FILE_RESPONSES,
)
async def export_scorecard(
    request: Request,
    fmt: Format,
    p: Annotated[Principal, Depends(require("scorecard.read"))],
    period: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$", description="YYYY-MM, YYYY-Qn or YYYY; default: now"),
    ] = None,
    lang: Lang = "zh",
) -> Response:
    ctx = ctx_of(request)
    if period is None:
        now = dt.datetime.now(ZoneInfo(ctx.cfg.gateway.timezone))
        period = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    raw = await ctx.readers.run(ticketing.scorecard_rows, ctx.cfg, period)
    rows = reports.scorecard_table(raw, words(lang))
    columns = reports.SCORECARD_COLUMNS
    await _log_export(ctx, p, f"scorecard.{fmt}", [c.key for c in columns] + [f"rows={len(rows)}", f"period={period}"])
    title = f"考评 {period}" if lang == "zh" else f"Scorecard {period}"
    if fmt == "xlsx":
        data = await ctx.readers.run(lambda _c: reports.to_xlsx(columns, rows, lang, title))
    else:
        data = await ctx.readers.run(lambda _c: reports.to_csv(columns, rows, lang))
    return _file(data, fmt, f"scorecard-{period}")


def _stamp(ctx: ApiContext) -> str:
    return dt.datetime.now(ZoneInfo(ctx.cfg.gateway.timezone)).strftime("%Y%m%d-%H%M")
