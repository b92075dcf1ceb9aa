"""/api/v1/history: every incident, open or closed, by filter and notes search; the whole timeline of
any incident. Served from the store with indexes (gateway/api/history.py), newest first, cursor
pagination; the same filters feed the exports (gateway/api/routes_reports.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from gateway.api import access, history
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require
from gateway.api.fastjson import FastJSONResponse
from gateway.api.models import Category, Event, Incident

router = APIRouter(prefix="/api/v1/history", tags=["history"])

Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
TypeQ = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
StateQ = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]
IdStr = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
Ms = Annotated[int | None, Query(ge=0, le=2**53)]


class HistoryItem(Incident):
    match: str | None = Field(default=None, description="With q: the first note of the incident that contains it.")


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_cursor: int | None = Field(description="Pass as ?cursor= for the next (older) page; null = last page.")
    total: int | None = Field(default=None, description="With ?total=true: how many incidents match in all.")


class TimelinePage(BaseModel):
    incident: Incident
    events: list[Event]
    next_after: int | None = Field(description="Pass as ?after= for the following events; null = the end.")


def history_filter(
    from_ms: Annotated[int | None, Query(ge=0, le=2**53, description="First trigger at or after (epoch ms).")] = None,
    to_ms: Annotated[int | None, Query(ge=0, le=2**53, description="First trigger before (epoch ms).")] = None,
    category: Annotated[list[Category] | None, Query()] = None,
    type: Annotated[list[TypeQ] | None, Query(description="Incident types, e.g. fire_lane_occupied.")] = None,
    state: Annotated[
        list[StateQ] | None, Query(description="States; 'open' and 'closed' stand for the groups.")
    ] = None,
    building: Annotated[list[Name] | None, Query()] = None,
    grid: Annotated[list[Name] | None, Query()] = None,
    compound: Annotated[list[Name] | None, Query()] = None,
    assignee: Annotated[Name | None, Query(description="Staff id the ticket is assigned to now.")] = None,
    sla_missed: Annotated[bool | None, Query(description="true: some SLA deadline was missed; false: none.")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description="Text in the notes (substring).")] = None,
) -> history.HistoryFilter:
    """The filters as one value (a dependency shared with the exports)."""
    return history.HistoryFilter(
        from_ms=from_ms,
        to_ms=to_ms,
        category=tuple(str(c) for c in category or ()),
        type=tuple(type or ()),
        state=tuple(state or ()),
        building=tuple(building or ()),
        grid=tuple(grid or ()),
        compound=tuple(compound or ()),
        assignee=assignee,
        sla_missed=sla_missed,
        q=q.strip() or None if q else None,
    )


@router.get(
    "/incidents",
    response_model=HistoryPage,
    response_class=FastJSONResponse,
    summary="Incidents of any age by filter and notes search (newest first, cursor pagination)",
    responses=AUTH_ERRORS,
)
async def list_history(
    request: Request,
    p: Annotated[Principal, Depends(require("incidents.read"))],
    f: Annotated[history.HistoryFilter, Depends(history_filter)],
    cursor: Annotated[int | None, Query(ge=0, le=2**53, description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    total: Annotated[bool, Query(description="Also count every match (one more query).")] = False,
) -> Response:
    ctx = ctx_of(request)
    rows, nxt, n = await ctx.readers.run(history.page, p, f, cursor, limit, total)
    release = access.Release()
    items = []
    for r in rows:
        item = access.present_incident(p, r, ctx.cfg, release)
        item["match"] = r.get("match")
        items.append(item)
    await ctx.log_release(p, release, "list")
    return FastJSONResponse({"items": items, "next_cursor": nxt, "total": n})


@router.get(
    "/incidents/{incident_id}/timeline",
    response_model=TimelinePage,
    summary="The whole timeline of one incident, open or closed (paged oldest first)",
    responses={**AUTH_ERRORS, 404: {"description": "no such incident"}},
)
async def incident_timeline(
    request: Request,
    incident_id: IdStr,
    p: Annotated[Principal, Depends(require("incidents.read"))],
    after: Annotated[int, Query(ge=0, le=2**53, description="seq of the last event seen; 0 = from the start.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    row, events, nxt = await ctx.readers.run(history.timeline_page, incident_id, after, limit)
    if row is None:
        raise HTTPException(404, "no such incident")
    if not access.incident_visible(p, row, ctx.cfg):
        raise HTTPException(403, "this incident is outside your grids/compounds or was not escalated to you")
    release = access.Release()
    out = access.present_incident(p, row, ctx.cfg, release)
    await ctx.log_release(p, release, "detail")
    return {"incident": out, "events": [access.present_event(p, e, row) for e in events], "next_after": nxt}
