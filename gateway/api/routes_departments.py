"""/api/v1/departments: how each district department answers the whistle (吹哨报到), per period."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from gateway.api import access
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require

router = APIRouter(tags=["departments"])


@router.get(
    "/api/v1/departments",
    summary="Departments on the scorecard: whistles, arrival and resolution against the SLA, share on time",
    responses=AUTH_ERRORS,
)
async def departments(
    request: Request,
    p: Annotated[Principal, Depends(require("scorecard.read"))],
    period: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$", description="YYYY-MM, YYYY-Qn or YYYY; default: now"),
    ] = None,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    cfg = ctx.cfg
    if period is None:
        now = dt.datetime.now(ZoneInfo(cfg.gateway.timezone))
        period = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    chosen = period

    def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        from gateway.tickets import departments as dep

        try:
            # a scoped caller (a grid worker, a compound's office) counts the whistles of its own places
            return dep.compute(
                conn, cfg, chosen, time.time_ns() // 1_000_000, visible=lambda s: access.in_scope(p, s.grid, s.compound)
            )
        except (ValueError, OverflowError) as exc:
            raise HTTPException(422, f"bad period: {exc}") from None

    return {"period": period, "rows": await ctx.readers.run(rows)}
