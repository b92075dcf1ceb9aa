"""/api/v1/stats/incidents: the figures behind the console's charts (gateway/api/stats.py)."""

from __future__ import annotations

import time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request

from gateway.api import stats
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require

router = APIRouter(prefix="/api/v1/stats", tags=["stats"])


@router.get(
    "/incidents",
    summary="Incidents per day by category, SLA misses, times per team, open incidents by age",
    responses=AUTH_ERRORS,
)
async def incident_stats(
    request: Request,
    p: Annotated[Principal, Depends(require("incidents.read"))],
    days: Annotated[int, Query(ge=1, le=92, description="Days back, today included.")] = 30,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    cfg = ctx.cfg
    out = await ctx.readers.run(stats.incident_stats, p, ZoneInfo(cfg.gateway.timezone), int(time.time() * 1000), days)
    for team in out["teams"]:
        t = cfg.team(team["team"]) if not str(team["team"]).startswith("grid:") else None
        team["name"] = t.name if t is not None else team["team"]
    return out
