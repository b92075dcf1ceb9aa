"""/api/v1/devices: the configured devices with their state, and what installers fix or adopt
(dead letters, devices seen on the broker but not configured)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import StringConstraints

from gateway.api import access, db
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require
from gateway.api.device_views import static_view, static_views, visible_devices
from gateway.api.fastjson import FastJSONResponse
from gateway.api.models import DeadLetter, Device, Unconfigured

router = APIRouter(tags=["devices"])
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
DeviceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]

_DYNAMIC = ("online", "online_reason", "online_changed_ms", "last_seen_ms", "battery")

if TYPE_CHECKING:
    from edge_config import SiteConfig


def _with_state(view: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(view)
    for k in _DYNAMIC:
        out[k] = row[k] if row is not None else None
    out["values"] = row["values"] if row is not None else None
    return out


def device_view(p: Principal, cfg: SiteConfig, d: Any, row: dict[str, Any] | None) -> dict[str, Any]:
    return _with_state(static_view(p, static_views(cfg), d), row)


@router.get(
    "/api/v1/devices",
    response_model=list[Device],
    response_class=FastJSONResponse,
    summary="Devices and their state",
)
async def list_devices(
    request: Request,
    p: Annotated[Principal, Depends(require("devices.read"))],
    building: Annotated[Name | None, Query()] = None,
    online: Annotated[bool | None, Query()] = None,
    type: Annotated[Name | None, Query()] = None,
) -> Response:
    ctx = ctx_of(request)
    views = list(visible_devices(p, ctx.cfg).values())
    if building is not None:
        views = [v for v in views if v.get("building") == building]
    if type is not None:
        views = [v for v in views if v.get("type") == type]
    rows = {r["device_id"]: r for r in await ctx.readers.run(db.device_rows, None)}
    out = [_with_state(v, rows.get(v["id"])) for v in views]
    if online is not None:
        out = [o for o in out if o["online"] is online]
    return FastJSONResponse(out)  # built from plain dicts: skip re-validating 1,000 devices per request


# The two fixed paths below come before /{device_id}: routes match in order, and the id pattern
# would take "dead-letters" and "unconfigured" as device ids.
@router.get(
    "/api/v1/devices/dead-letters",
    response_model=list[DeadLetter],
    summary="Messages that could not be used (installers)",
    responses=AUTH_ERRORS,
)
async def list_dead_letters(
    request: Request,
    p: Annotated[Principal, Depends(require("devices.installer"))],
    reason: Annotated[Name | None, Query()] = None,
    cursor: Annotated[int | None, Query(ge=0, le=2**53, description="id of the last item seen")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return await ctx_of(request).readers.run(db.dead_letters, cursor, limit, reason)


@router.get(
    "/api/v1/devices/unconfigured",
    response_model=list[Unconfigured],
    summary="Devices seen on the broker but not in the config (installers adopt them)",
    responses=AUTH_ERRORS,
)
async def list_unconfigured(
    request: Request, p: Annotated[Principal, Depends(require("devices.installer"))]
) -> list[Any]:
    return await ctx_of(request).readers.run(db.unconfigured)


@router.get("/api/v1/devices/{device_id}", response_model=Device, summary="One device", responses=AUTH_ERRORS)
async def get_device(
    request: Request, device_id: DeviceId, p: Annotated[Principal, Depends(require("devices.read"))]
) -> dict[str, Any]:
    ctx = ctx_of(request)
    d = ctx.cfg.device(device_id)
    if d is None:
        raise HTTPException(404, "no such device")
    if not access.device_visible(p, ctx.cfg, device_id):
        raise HTTPException(403, "this device is outside your scope or in a resident's home")
    rows = await ctx.readers.run(db.device_rows, [device_id])
    return device_view(p, ctx.cfg, d, rows[0] if rows else None)
