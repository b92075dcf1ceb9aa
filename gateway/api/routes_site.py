"""/api/v1/site and /api/v1/scorecard: the community as configured and how its property companies
handle their tickets."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request

from gateway.api import access, ticketing
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require

router = APIRouter(tags=["site"])


@router.get("/api/v1/site", summary="Community topology from the config (no personal data)")
async def site(request: Request, p: Annotated[Principal, Depends(require("site.read"))]) -> dict[str, Any]:
    cfg = ctx_of(request).cfg
    s = cfg.site

    def visible(grid: str | None, compound: str | None) -> bool:
        return access.in_scope(p, grid, compound)

    compounds = []
    for c in s.compounds:
        buildings = [
            {
                "id": b.id,
                "name": b.name,
                "grid": b.grid,
                "floors": b.floors,
                "units": [{"id": u.id, "name": u.name, "households": u.households} for u in b.units],
            }
            for b in c.buildings
            if visible(b.grid, c.id)
        ]
        if buildings or visible(None, c.id):
            compounds.append(
                {
                    "id": c.id,
                    "name": c.name,
                    "property_company": {"name": c.property_company.name, "phone": c.property_company.phone},
                    "buildings": buildings,
                }
            )
    # Colleagues and teams by name, so a console shows who holds a ticket rather than a staff id.
    # Staff phones stay out; central platform clients have no use for the names.
    people = p.role in access.STAFF | {"department"}
    return {
        "gateway": {"id": cfg.gateway.id, "name": cfg.gateway.name, "timezone": cfg.gateway.timezone},
        "staff": [{"id": m.id, "name": m.name, "role": m.role} for m in cfg.staff] if people else [],
        "teams": [
            {"id": t.id, "name": t.name, "kind": t.kind, "department": t.department, "compound": t.compound}
            for t in cfg.teams
        ],
        "street": {"id": s.street.id, "name": s.street.name},
        "community": {"id": s.community.id, "name": s.community.name, "households": s.community.households},
        "grids": [{"id": g.id, "name": g.name, "households": g.households} for g in s.grids],
        "compounds": compounds,
        "parking_areas": [
            {
                "id": a.id,
                "name": a.name,
                "compound": a.compound,
                "spaces": [{"id": sp.id, "kind": sp.kind, "max_stay_min": sp.max_stay_min} for sp in a.spaces],
            }
            for a in s.parking_areas
            if visible(None, a.compound)
        ],
    }


@router.get("/api/v1/scorecard", summary="Property-company scorecard (ticket loop figures)", responses=AUTH_ERRORS)
async def scorecard(
    request: Request,
    p: Annotated[Principal, Depends(require("scorecard.read"))],
    period: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$", description="YYYY-MM, YYYY-Qn or YYYY; default: now"),
    ] = None,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    if period is None:
        now = dt.datetime.now(ZoneInfo(ctx.cfg.gateway.timezone))
        period = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    rows = await ctx.readers.run(ticketing.scorecard_rows, ctx.cfg, period)
    return {"period": period, "rows": rows}
