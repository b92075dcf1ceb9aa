"""/api/v1/devices/page: the device list a page at a time (cursor: the last device id), with the
filters people use (place, type, category, state, battery, text) and a total. The whole list of a
1,200-device site is 468 KB; a phone asks for what it shows.

Registered before gateway/api/routes_devices.py: "page" would otherwise pass as a device id."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from gateway.api import db, device_index
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require
from gateway.api.device_views import visible_devices
from gateway.api.fastjson import FastJSONResponse
from gateway.api.models import Category, Device

router = APIRouter(tags=["devices"])
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
State = Literal["online", "offline", "unknown"]
_DYNAMIC = ("online", "online_reason", "online_changed_ms", "last_seen_ms", "battery", "values")


class DevicePage(BaseModel):
    items: list[Device]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null = last page.")
    total: int = Field(description="Devices matching the filters in all.")


def _state(row: dict[str, Any] | None) -> str:
    online = row.get("online") if row is not None else None
    return "unknown" if online is None else "online" if online else "offline"


@router.get(
    "/api/v1/devices/page",
    response_model=DevicePage,
    response_class=FastJSONResponse,
    summary="Devices a page at a time, by id, with filters",
    responses=AUTH_ERRORS,
)
async def device_page(
    request: Request,
    p: Annotated[Principal, Depends(require("devices.read"))],
    building: Annotated[list[Name] | None, Query()] = None,
    unit: Annotated[Name | None, Query(description="Unit within the building(s).")] = None,
    compound: Annotated[list[Name] | None, Query()] = None,
    grid: Annotated[list[Name] | None, Query()] = None,
    type: Annotated[list[Name] | None, Query(description="Device types, e.g. door_contact.")] = None,
    category: Annotated[list[Category] | None, Query()] = None,
    state: Annotated[list[State] | None, Query(description="online, offline, unknown (never heard).")] = None,
    battery_low: Annotated[bool | None, Query(description="At or below its type's battery_low_pct.")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=64, description="Text in the id or name.")] = None,
    cursor: Annotated[Name | None, Query(description="next_cursor of the previous page (a device id).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    ctx = ctx_of(request)
    cfg = ctx.cfg
    facts = await ctx.readers.run(lambda _c: device_index.facts(cfg))  # built once per config, off the loop
    views = sorted(visible_devices(p, cfg).values(), key=lambda v: str(v["id"]))
    needle = q.lower() if q else None

    def static_ok(v: dict[str, Any]) -> bool:
        f = facts.get(v["id"])
        return (
            (not building or v.get("building") in building)
            and (unit is None or v.get("unit") == unit)
            and (not compound or (f is not None and f.compound in compound))
            and (not grid or (f is not None and f.grid in grid))
            and (not type or v.get("type") in type)
            and (not category or v.get("category") in category)
            and (needle is None or needle in str(v["id"]).lower() or needle in str(v.get("name", "")).lower())
        )

    views = [v for v in views if static_ok(v)]
    dynamic = state is not None or battery_low is not None
    ids = None  # filters on live state need every row; otherwise only the page's rows are read
    if not dynamic:
        ids = [v["id"] for v in views if cursor is None or v["id"] > cursor][: limit + 1]
    rows = {r["device_id"]: r for r in await ctx.readers.run(db.device_rows, ids)} if ids != [] else {}
    if dynamic:
        views = [
            v
            for v in views
            if (state is None or _state(rows.get(v["id"])) in state)
            and (
                battery_low is None
                or device_index.battery_low(facts.get(v["id"]), (rows.get(v["id"]) or {}).get("battery")) is battery_low
            )
        ]
    total = len(views)
    after = [v for v in views if cursor is None or v["id"] > cursor]
    page = after[:limit]
    items = []
    for v in page:
        row = rows.get(v["id"])
        out = dict(v)
        for k in _DYNAMIC:
            out[k] = row[k] if row is not None else None
        items.append(out)
    nxt = page[-1]["id"] if len(after) > limit and page else None
    return FastJSONResponse({"items": items, "next_cursor": nxt, "total": total})
