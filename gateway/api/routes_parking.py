"""/api/v1/parking: each parking area's lot plan with every space free, occupied or unknown now,
its open incidents (fire lane, no parking, overstay), counters, and occupancy by hour (today
against the 7 days before). See gateway/api/parking.py for where the live state comes from."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from gateway.api import access, db, parking
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, ingest_behind, require

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.api.deps import ApiContext

router = APIRouter(prefix="/api/v1/parking", tags=["parking"])
AreaId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _live(request: Request, ctx: ApiContext) -> tuple[parking.LiveParking, dict[str, list[str]]]:
    """The app's live listener, installed on first use (before any device row is read for it), and
    the space -> devices map of the running config (a reload may add sensors)."""
    state = request.app.state
    live: parking.LiveParking | None = getattr(state, "parking_live", None)
    cfg = ctx.cfg
    cached = getattr(state, "parking_spaces", None)
    if cached is None or cached[0] is not cfg:
        spaces = parking.space_devices(cfg)
        cached = (cfg, spaces)
        state.parking_spaces = cached
        if live is not None:
            live.watch(d for ds in spaces.values() for d in ds)
    if live is None:
        live = parking.LiveParking()
        live.watch(d for ds in cached[1].values() for d in ds)
        ctx.gw.add_listener(live.on_commit)
        state.parking_live = live
    return live, cached[1]


def _read(conn: sqlite3.Connection, devices: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    rows = {r["device_id"]: r for r in db.device_rows(conn, devices)} if devices else {}
    return rows, parking.open_parking_incidents(conn)


def _area_view(
    p: Principal,
    cfg: SiteConfig,
    area: Any,
    spaces_devices: dict[str, list[str]],
    rows: dict[str, dict[str, Any]],
    live: dict[str, tuple[bool | None, int]],
    open_inc: dict[str, Any],
) -> dict[str, Any]:
    counts = {"free": 0, "occupied": 0, "unknown": 0, "total": 0}
    spaces = []
    for sp in area.spaces:
        devs = spaces_devices.get(sp.id, [])
        s = parking.space_state(devs, rows, live)
        counts[s.state] += 1
        counts["total"] += 1
        incident = open_inc.get(sp.id)
        if incident is not None and not access.in_scope(p, incident.get("grid"), incident.get("compound")):
            incident = None
        spaces.append(
            {
                "id": sp.id,
                "kind": sp.kind,
                "max_stay_min": sp.max_stay_min,
                "row": sp.row,
                "position": sp.position,
                "polygon": [list(pt) for pt in sp.polygon] if sp.polygon else None,
                "state": s.state,
                "why": s.why,
                "ts_ms": s.ts_ms,
                "devices": devs,
                "incident": incident and {k: incident[k] for k in ("id", "type", "severity", "state", "first_ms")},
            }
        )
    comp = cfg.compound(area.compound)
    return {
        "id": area.id,
        "name": area.name,
        "compound": area.compound,
        "compound_name": comp.name if comp is not None else area.compound,
        "counts": counts,
        "spaces": spaces,
    }


def _areas(p: Principal, cfg: SiteConfig) -> list[Any]:
    return [a for a in cfg.site.parking_areas if access.in_scope(p, None, a.compound)]


@router.get("", summary="Parking areas: every space's state now, open incidents, counters", responses=AUTH_ERRORS)
async def parking_now(
    request: Request,
    p: Annotated[Principal, Depends(require("devices.read"))],
    seen: Annotated[
        int | None, Query(ge=0, le=2**53, description="The `version` the client shows: wait for a newer one.")
    ] = None,
    wait_ms: Annotated[int, Query(ge=0, le=1000, description="How long to wait for a change (ms).")] = 0,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    live, spaces_devices = _live(request, ctx)
    # At most a second, and never while ingest is behind: then the API serves one request at a time
    # (the Governor) and a waiting one would hold up the others.
    if seen is not None and wait_ms and not ingest_behind(ctx.gw):
        await live.changed(seen, wait_ms / 1000)
    version = live.version
    cfg = ctx.cfg
    areas = _areas(p, cfg)
    devices = [d for a in areas for sp in a.spaces for d in spaces_devices.get(sp.id, [])]
    rows, open_inc = await ctx.readers.run(_read, devices)
    snap = live.snapshot()
    return {
        "ts_ms": int(time.time() * 1000),
        "version": version,
        "areas": [_area_view(p, cfg, a, spaces_devices, rows, snap, open_inc) for a in areas],
    }


@router.get(
    "/{area_id}/hourly",
    summary="Occupancy % by hour: today and the mean of the 7 days before",
    responses={**AUTH_ERRORS, 404: {"description": "no such parking area"}},
)
async def parking_hourly(
    request: Request, area_id: AreaId, p: Annotated[Principal, Depends(require("devices.read"))]
) -> dict[str, Any]:
    ctx = ctx_of(request)
    cfg = ctx.cfg
    area = next((a for a in _areas(p, cfg) if a.id == area_id), None)
    if area is None:
        raise HTTPException(404, "no such parking area (or not in your compounds)")
    _, spaces_devices = _live(request, ctx)
    devices = {d: sp.id for sp in area.spaces for d in spaces_devices.get(sp.id, [])}
    tz = ZoneInfo(cfg.gateway.timezone)
    out = await ctx.readers.run(parking.hourly, devices, tz, int(time.time() * 1000))
    return {"area": area.id, **out}
